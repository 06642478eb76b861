"""What int8 cost: the artifact and the quantization simulation against the float model, where the loss starts,
and the user's gate. Shared by the TFLite and ONNX exporters.

The export does not refuse an int8 model because it is far from float: that loss is the quantization's, and the
user needs the artifact and a diagnosis, not a refusal. It refuses only when the user asked for a gate
(`--min-psnr`, `--min-top1-agreement`, ... the flags of `parity`) and the artifact misses it. The exporters'
own consistency checks (a graph pass changing int8 values) stay hard errors: those are our bugs.
"""

from __future__ import annotations

import dataclasses
import warnings

from typing import Any

import numpy as np

from shufflenet_edge.errors import EdgeError
from shufflenet_edge.parity import ParityError, compare, default_gate, fmt_psnr, violations

PER_LAYER_SAMPLES = 4


def remedies(first_weak: str | None) -> str:
    keep = f"--keep-float {first_weak}" if first_weak else "--keep-float UNIT"
    return (f"remedies: {keep} (keep that unit in float), --calib-method percentile|minmax, --calib DIR with "
            "real images, or QAT (shufflenet_edge.qat.prepare, docs/int8.md)")


def loss_report(
    artifact_out: np.ndarray,
    float_out: np.ndarray,
    sim_out: np.ndarray | None,
    inputs: str,
    per_layer: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The sidecar's `int8_loss` entry."""
    a = compare(artifact_out, float_out)
    rep: dict[str, Any] = {
        "inputs": inputs,
        "artifact_vs_float": a.to_dict(),
        "simulation_vs_float": compare(sim_out, float_out).to_dict() if sim_out is not None else None,
        "below_default_gate": bool(violations(a, default_gate("int8"))),
        "default_gate": default_gate("int8").to_dict(),
    }
    if per_layer is not None:
        rep["first_weak_point"] = per_layer.get("first_weak_point")
        rep["per_layer"] = [{k: r.get(k) for k in ("point", "sqnr_db", "cosine")} for r in per_layer["rows"]]
    return rep


def summary_line(rep: dict[str, Any]) -> str:
    a = rep["artifact_vs_float"]
    s = rep.get("simulation_vs_float")
    def psnr(m: dict[str, Any]) -> str:
        return fmt_psnr(m["psnr_db"] if m["psnr_db"] is not None else float("inf"))

    def top1(m: dict[str, Any], lead: str) -> str:
        return "" if m.get("top1_agreement") is None else f"{lead}{m['top1_agreement']:.1%}"

    worst = f" (worst of {len(rep['per_output'])} outputs: output {rep['worst_output']})" if rep.get("per_output") else ""
    line = f"int8 vs float on {rep['inputs']}{worst}: PSNR {psnr(a)} dB{top1(a, ', top-1 agreement ')}"
    if s is not None:
        line += f" (quantization simulation: {psnr(s)} dB{top1(s, ', ')})"
    if rep.get("first_weak_point"):
        line += f"; loss starts at {rep['first_weak_point']}"
    return line


@dataclasses.dataclass
class Check:
    """The int8 check of one export, made once: the inputs (parity's default for the artifact, `parity.check_inputs`,
    float NCHW at the model's size), the float model's outputs on them, the budget (its float score computed), the
    inputs' sidecar spec and where they came from. Every int8 graph the export judges is judged on it."""

    xs: np.ndarray
    wants: list[np.ndarray]
    budget: Any  # int8_search.Budget
    spec: dict[str, Any]
    source: str


def check_once(q: Any, pre: Any, chw: Any, calibration_limit: int, model: Any) -> Check:
    """The export's `Check` (`q`: its Int8Config; `model`: the float reference)."""
    from shufflenet_edge.errors import UsageError
    from shufflenet_edge.export import int8_search, verify
    from shufflenet_edge.parity import check_images, check_inputs, inputs_spec, map_labels

    ins = check_inputs(q.calib, calibration_limit, q.check_images, q.labels)
    xs, source, folder_labels, classes = check_images(ins, pre, (int(chw[0]), int(chw[1]), int(chw[2])))
    xs = np.ascontiguousarray(xs, dtype=np.float32)
    wants = verify.torch_outputs(model, xs)
    how: str | None
    if folder_labels is None:
        labels, how = None, "the check images have no labels (--images DIR with one sub-folder per class)"
    elif wants[0].ndim == 2:
        labels, how = map_labels(folder_labels, classes, wants[0].shape[1], ins.label_names, ins.label_source)
    else:
        labels, how = None, "the model's first output is not logits"
    if labels is None and q.gate is not None and q.gate.max_accuracy_drop is not None:
        raise UsageError(f"--max-accuracy-drop needs labelled images and a classifier: {how}")
    budget = int8_search.Budget.of(q, labels, lambda x: verify.torch_outputs(model, x))
    return Check(xs, wants, budget, inputs_spec(ins), source)


def judged_report(gots: list[np.ndarray], sims: list[np.ndarray] | None, check: Check, kept: Any,
                  predict: Any, per_layer: Any) -> dict[str, Any]:
    """The sidecar's `int8_loss` for one int8 graph: every output (`gots`, and its simulation's `sims`) against the
    float model on the check inputs; per-layer SQNR (`per_layer()`, computed only when needed: one-output models below
    the default gate or with a budget); the budget judged with `kept` float (`predict` runs the graph on any batch,
    for a validation function) and recorded (the caller refuses or searches)."""
    from shufflenet_edge.export import verify

    desc = f"parity's default inputs for this artifact, {check.source}"
    rep = verify.int8_loss(gots, check.wants, sims, desc)
    if len(gots) == 1 and (rep["below_default_gate"] or check.budget.any()):
        pl = per_layer()
        if pl is not None:
            rep = verify.int8_loss(gots, check.wants, sims, desc, pl)
    judged = check.budget.judge(tuple(kept), gots, check.wants, predict)
    rep["gate"] = check.budget.record(judged)
    rep["judged"] = judged.to_dict()
    rep["inputs_spec"] = check.spec
    return rep


def refusal(rep: dict[str, Any], why: str | None = None) -> ParityError:
    """The int8 export's refusal when the artifact misses the user's gate (`why`: what the float-unit search found)."""
    bad = (rep.get("gate") or {}).get("failures") or []
    return ParityError(f"int8 export refused by the gate: {'; '.join(bad)} ({summary_line(rep)})"
                       + (f"; {why}" if why else "") + f"; {remedies(rep.get('first_weak_point'))}; nothing was written")


def where_loss_starts(artifact_path: str, model: Any, x_nchw: np.ndarray, layout: str) -> dict[str, Any] | None:
    """Per-layer SQNR of the artifact (first PER_LAYER_SAMPLES inputs); None when it cannot be computed."""
    from shufflenet_edge import per_layer as pl

    try:
        diag = pl.diagnose(artifact_path, model, x_nchw[:PER_LAYER_SAMPLES], layout=layout,
                           sidecar={"precision": "int8"})
    except EdgeError:
        return None
    except Exception as e:  # noqa: BLE001  (a report that helps read the loss; never a reason to lose the artifact)
        warnings.warn(f"per-layer SQNR could not be computed ({type(e).__name__}: {e}); the int8 loss report goes "
                      "without it", stacklevel=2)
        return None
    return diag.to_dict()
