"""One generated model (tests/model_gen.py) through every path a user takes, classified.

Paths: ``fold`` (the graph-level fold in PyTorch, both forms, exact by its own check), ``onnx`` (ONNX fp32, defaults),
``tflite`` (TFLite fp32, defaults), ``tflite_int8`` (TFLite int8, defaults: synthetic calibration). Each export is
followed by `shufflenet_edge.parity` with its default gate. Defaults except one: `--form auto` times its candidates for
at most `TUNE_SECONDS`.

Outcomes, per path:
- ``exported``: an artifact was written (``fallback`` says when a folded candidate was left out to get it);
- ``refused``: a one-line `EdgeError`/`UsageError` naming the problem (the converter cannot take the model as written);
- ``internal``: an `InternalError`, or any other exception escaping our code (a crash): the goal is none;
- ``wrong``: an artifact whose numbers are ours to blame: fp32 beyond parity's default gate where the converter's own
  conversion of the unfolded module is within it, int8 far from its quantization simulation where the converter's
  own int8 conversion of the unfolded module is not; the fold's own exactness check failing. The goal is none.
"""

from __future__ import annotations

import dataclasses
import time
import traceback
import warnings
from pathlib import Path
from typing import Any

import model_gen
import numpy as np
import torch

PATHS = ("fold", "onnx", "tflite", "tflite_int8")
N_PARITY = 8
# --form auto's timing budget (default 60 s): which form ships is not what these cases check, and an undecided
# comparison on a busy machine would spend the whole budget on every export.
TUNE_SECONDS = 2.0


@dataclasses.dataclass
class PathResult:
    path: str
    outcome: str  # exported | refused | internal | wrong
    detail: str = ""
    seconds: float = 0.0
    form: str | None = None
    fallback: str | None = None  # the export's warning when a folded candidate was left out
    metrics: dict[str, Any] = dataclasses.field(default_factory=dict)


def _line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}"[:300]


def run_case(seed: int, work: Path, paths: tuple[str, ...] = PATHS) -> dict[str, Any]:
    """Every path in `paths` for the model of `seed`; a JSON-able record (the spec, one result per path)."""
    spec = model_gen.draw(seed)
    model, shape = model_gen.build(spec)
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(seed))
    results = []
    for path in paths:
        t0 = time.perf_counter()
        try:
            r = _fold(model, x) if path == "fold" else _export_path(model, x, path, work / f"case{seed}_{path}")
        except Exception as e:  # noqa: BLE001  (the classification itself: anything escaping is a crash of ours)
            r = PathResult(path, "internal", _line(e) + " | " + traceback.format_exc(limit=-3).replace("\n", " ")[-400:])
        r.path, r.seconds = path, round(time.perf_counter() - t0, 2)
        results.append(r)
    return {"seed": seed, "summary": spec.summary(), "spec": spec.to_dict(),
            "results": [dataclasses.asdict(r) for r in results]}


def _fold(model: torch.nn.Module, x: torch.Tensor) -> PathResult:
    from shufflenet_edge.graph_fold import fold_graph

    found = {}
    for form in ("transpose", "gather"):
        try:
            _, rep = fold_graph(model, (x,), form=form, split="slice" if form == "transpose" else "split",
                                int8_friendly=form == "transpose")
        except AssertionError as e:  # the fold's own exactness check
            return PathResult("fold", "wrong", f"{form}: {_line(e)}")
        found[form] = rep.counts()
    return PathResult("fold", "exported", metrics=found["transpose"])


def _export_path(model: torch.nn.Module, x: torch.Tensor, path: str, out_stem: Path) -> PathResult:
    from shufflenet_edge.export.pipeline import FoldFallbackWarning

    import shufflenet_edge as se
    from shufflenet_edge.errors import EdgeError, InternalError

    fmt = "onnx" if path == "onnx" else "tflite"
    out = out_stem.with_suffix(f".{fmt}")
    int8 = path == "tflite_int8"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", FoldFallbackWarning)
        try:
            art = se.export(model, out, example_input=x, target=fmt, int8=int8, show_progress=False,
                            tune_seconds=TUNE_SECONDS)
        except InternalError as e:
            return PathResult(path, "internal", _line(e).split(". This is a bug")[0])
        except EdgeError as e:  # UsageError included: a one-line refusal
            return PathResult(path, "refused", _line(e))
    side = dict(art)
    fb = next((str(w.message) for w in caught if issubclass(w.category, FoldFallbackWarning)), None)
    r = PathResult(path, "exported", form=side.get("recipe") or side.get("form"), fallback=fb)
    rep = se.parity(str(out), model, N_PARITY)
    r.metrics = {"parity_passed": bool(rep["passed"]), "worst_psnr_db": _worst_psnr(rep)}
    if int8:
        return _judge_int8(r, side, model, x, out_stem)
    if not rep["passed"]:
        return _judge_float(r, rep, model, x, out_stem, fmt)
    return r


def _worst_psnr(rep: dict[str, Any]) -> float | None:
    vals = [o["metrics"].get("psnr_db") for o in rep.get("outputs") or []]
    finite = [v for v in vals if v is not None]  # None: identical outputs (infinite PSNR)
    return min(finite) if finite else None


def _judge_float(r: PathResult, rep: dict[str, Any], model: Any, x: torch.Tensor, out_stem: Path,
                 fmt: str) -> PathResult:
    """Parity's default gate missed: ours only if the converter's own conversion of the module as written meets it."""
    import shufflenet_edge as se

    from shufflenet_edge.errors import EdgeError

    ref = out_stem.with_name(out_stem.name + "_reference").with_suffix(f".{fmt}")
    try:
        se.export(model, ref, example_input=x, target=fmt, form="reference", show_progress=False)
    except EdgeError as e:  # the converter refuses the module as written: nothing to hold ours against
        r.detail = f"parity's default gate fails ({_failures(rep)}); the unfolded conversion: {_line(e)}"
        return r
    ref_rep = se.parity(str(ref), model, N_PARITY)
    r.metrics["reference_parity_passed"] = bool(ref_rep["passed"])
    if ref_rep["passed"]:
        r.outcome, r.detail = "wrong", f"parity's default gate fails ({_failures(rep)}) where the unfolded conversion passes"
    else:
        r.detail = f"the converter's own distance: its unfolded conversion fails the gate too ({_failures(ref_rep)})"
    return r


def _judge_int8(r: PathResult, side: dict[str, Any], model: Any, x: torch.Tensor, out_stem: Path) -> PathResult:
    """int8 against its quantization simulation (the export's own check): far from it is ours only if litert-torch's
    int8 conversion of the module as written is close to its own simulation."""
    import shufflenet_edge as se

    checks = side.get("checks") or {}
    frac = checks.get("within_2_steps_fraction")
    r.metrics.update({"within_2_steps_fraction": frac, "max_steps": checks.get("vs_pt2e_simulation_max_steps"),
                      "psnr_vs_float_db": ((checks.get("int8_loss") or {}).get("artifact_vs_float") or {}).get("psnr_db")})
    if frac is None or frac >= 0.9 or side.get("recipe") == "reference":
        return r
    from shufflenet_edge.errors import EdgeError

    ref = out_stem.with_name(out_stem.name + "_reference").with_suffix(".tflite")
    try:
        ref_side = dict(se.export(model, ref, example_input=x, target="tflite", int8=True, form="reference",
                                  show_progress=False))
    except EdgeError as e:  # the converter refuses the module as written: nothing to hold ours against
        r.detail = f"{frac:.0%} of outputs within 2 steps of the simulation; the unfolded conversion: {_line(e)}"
        return r
    ref_frac = (ref_side.get("checks") or {}).get("within_2_steps_fraction") or 0.0
    r.metrics["reference_within_2_steps_fraction"] = ref_frac
    if ref_frac >= 0.9:
        r.outcome = "wrong"
        r.detail = f"{frac:.0%} of outputs within 2 steps of the simulation; the unfolded conversion: {ref_frac:.0%}"
    return r


def _failures(rep: dict[str, Any]) -> str:
    fails = rep.get("failures") or []
    return "; ".join(str(f) for f in fails)[:200] if fails else "failed"


def tally(cases: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts per path and outcome, the refusals' and failures' one-line reasons with their seeds."""
    out: dict[str, Any] = {"cases": len(cases), "per_path": {}}
    for path in PATHS:
        rows = [(c["seed"], r) for c in cases for r in c["results"] if r["path"] == path]
        if not rows:
            continue
        per = {k: sum(1 for _, r in rows if r["outcome"] == k) for k in ("exported", "refused", "internal", "wrong")}
        per["fallback"] = sum(1 for _, r in rows if r.get("fallback"))
        per["seconds_median"] = float(np.median([r["seconds"] for _, r in rows]))
        per["reasons"] = [{"seed": s, "outcome": r["outcome"], "detail": r["detail"] or r.get("fallback")}
                          for s, r in rows if r["outcome"] != "exported" or r.get("fallback")]
        out["per_path"][path] = per
    return out
