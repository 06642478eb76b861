"""ONNX export: fold, torch's dynamo exporter, onnxslim, full checker, shape inference, sidecar.

`form`:
- ``reference``: the model's graph as written (for comparisons);
- ``gather`` / ``transpose``: the two folded forms of the graph-level fold (shufflenet_edge.graph_fold),
  which finds the channel shuffles in any module's `torch.export` graph;
- ``auto``: export both folded forms, time them interleaved on onnxruntime (CPU, the given threads) and
  keep the faster, recording the timings in the sidecar. A model without channel shuffles (MobileNetV2)
  exports its graph as written.

Registry names and user modules (`module=`, the Python API `shufflenet_edge.export`, `--model-file`) go
through the same code: a name is only a way to build the module.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import os
import tempfile
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from shufflenet_edge.export.common import (
    atomic_path,
    embed_identity,
    progress,
    tool_versions,
    write_sidecar,
)
from shufflenet_edge.export import verify
from shufflenet_edge.export.config import ExportConfig
from shufflenet_edge.export.pipeline import Job, Prepared, failure_line
from torch import nn

from shufflenet_edge.data import Preprocess
from shufflenet_edge.errors import EdgeError, InternalError, UsageError
from shufflenet_edge.graph_fold import fold_graph
from shufflenet_edge.models.weights import file_sha256

OPSET = 18


def _flat_outputs(y: Any) -> list[torch.Tensor]:
    return [t for t in torch.utils._pytree.tree_leaves(y) if isinstance(t, torch.Tensor)]


def output_names(n: int) -> list[str]:
    return ["logits"] if n == 1 else [f"output_{i}" for i in range(n)]


def _batch_dims(n_inputs: int) -> tuple[dict[int, Any], ...]:
    """torch.export's dynamic_shapes for a dynamic batch on every input (one shared dimension)."""
    batch = torch.export.Dim("batch", min=1, max=1024)
    return tuple({0: batch} for _ in range(n_inputs))


@functools.cache
def _read_torchlib_signatures_once() -> None:
    """torch.onnx builds its op registry on every export by re-parsing the source of onnxscript's ~500 ATen functions
    (about 4 s a time here, a third of a small model's export). They cannot change within a process, so the first
    reading is kept for every later export (`--form auto` exports three forms). Any other onnxscript layout is left
    alone: it only costs time."""
    try:
        from torch.onnx._internal import _lazy_import

        apis = importlib.import_module(_lazy_import.onnxscript_apis._name)
        read = apis.get_torchlib_ops
    except (ImportError, AttributeError):
        return
    apis.get_torchlib_ops = functools.cache(read)


def _torch_to_onnx(model: nn.Module, x: Any, path: Path, dynamic_batch: bool, n_outputs: int = 1) -> None:
    import onnx

    _read_torchlib_signatures_once()

    xs = tuple(x) if isinstance(x, (tuple, list)) else (x,)
    kwargs: dict[str, Any] = {}
    if dynamic_batch:
        kwargs["dynamic_shapes"] = _batch_dims(len(xs))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import logging

        logging.getLogger("torch.onnx").setLevel(logging.ERROR)
        torch.onnx.export(
            model, xs, str(path), dynamo=True, opset_version=OPSET,
            input_names=["input"] if len(xs) == 1 else [f"input_{i}" for i in range(len(xs))],
            output_names=output_names(n_outputs), external_data=False, verbose=False, **kwargs,
        )
    m = onnx.load(str(path))
    from shufflenet_edge.export.onnx_quantize import fx_module_paths, keep_scopes, restore_scopes

    scopes = keep_scopes(m, fx_module_paths(model))  # module per node, for int8 --keep-float (onnxslim drops it)
    try:
        import onnxslim

        m = onnxslim.slim(m)
        restore_scopes(m, scopes)
    except Exception as e:  # noqa: BLE001  (simplification is best-effort; the checker decides)
        warnings.warn(f"onnxslim failed ({e}); keeping the unsimplified graph", stacklevel=2)
    m = onnx.shape_inference.infer_shapes(m, check_type=True, strict_mode=True)
    onnx.checker.check_model(m, full_check=True)
    onnx.save(m, str(path))


def graph_stats(path: str | os.PathLike[str]) -> dict[str, Any]:
    from shufflenet_edge.export.inspect import inspect_artifact

    info = inspect_artifact(str(path))
    return {k: info[k] for k in ("ops", "op_histogram", "data_movement_ops", "max_rank", "shape_ops", "size_bytes")}


def run_onnx_all(path: str | os.PathLike[str], xs: list[np.ndarray], threads: int = 1) -> list[np.ndarray]:
    """Every output of an ONNX graph for the batch `xs` (one array per graph input), in graph order; the session
    checks numbers (exact int8 kernels where the CPU needs them: runtimes/ort_session.py)."""
    import onnxruntime as ort

    from shufflenet_edge.runtimes.ort_session import session_options

    sess = ort.InferenceSession(str(path), session_options(threads, check_numbers=True),
                                providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    return [np.asarray(y) for y in sess.run(None, dict(zip(names, xs)))]


def run_onnx_samples(path: str | os.PathLike[str], x: np.ndarray, optimization: str = "all",
                     notes: dict[str, Any] | None = None) -> list[np.ndarray]:
    """Every output for the one-input samples `x`, run one at a time in one session that checks numbers;
    `optimization` "none" runs a QDQ graph as its float simulation. `notes` receives "int8_kernels" when
    onnxruntime could not open the graph in its exact int8 mode and its default kernels ran instead."""
    from shufflenet_edge.runtimes.runner import OnnxRunner

    r = OnnxRunner(str(path), optimization=optimization, check_numbers=True)
    if r.precise_mode_failed and notes is not None:
        notes["int8_kernels"] = ("onnxruntime's default int8 kernels: its exact mode (session.x64quantprecision) "
                                 f"could not open this graph ({r.precise_mode_failed[-160:]})")
    return [np.concatenate(v) for v in zip(*(r.run_all(x[i : i + 1]) for i in range(len(x))))]


@dataclasses.dataclass
class _Job(Job):
    """One ONNX export's state, filled stage by stage (export_onnx runs them in order)."""

    xs: tuple[torch.Tensor, ...] = ()
    wants: list[np.ndarray] = dataclasses.field(default_factory=list)
    kept: list[str] = dataclasses.field(default_factory=list)
    made: dict[str, Path] = dataclasses.field(default_factory=dict)  # candidate files beside the output
    fold_reports: dict[str, Any] = dataclasses.field(default_factory=dict)
    float_checks: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    expected: Any = None  # PyTorch's outputs on the check inputs and its float noise (computed once)
    reference_error: str | None = None  # why torch.onnx could not export the module as written
    timings: dict[str, Any] | None = None
    chosen: str = ""


def export_onnx(prep: Prepared, out_path: Path, cfg: ExportConfig) -> dict[str, Any]:
    """The ONNX backend of the pipeline (export/pipeline.py): `prep`'s module to `out_path` as `cfg` says (int8:
    onnxruntime's calibration methods, minmax default, histogram = Entropy, percentile); returns the sidecar."""
    from shufflenet_edge.export.int8_options import resolve_keep_float

    if prep.family == "mobilenet_v2" and cfg.form not in ("auto", "reference"):
        raise UsageError(f"{prep.label} has no channel shuffle; use --form reference")
    if len(prep.example) != 1 and cfg.precision == "int8":
        raise UsageError("int8 ONNX export takes models with one input")
    job = _Job(prep, cfg, out_path, progress(cfg.progress), xs=prep.example)
    job.kept = resolve_keep_float(prep.module, list(cfg.int8.keep_float) if cfg.int8 else None)
    with torch.no_grad():
        job.wants = [t.numpy() for t in _flat_outputs(prep.module(*job.xs))]
    try:
        _candidates(job)
        _check_candidates(job)
        _select(job)
        checks, calibration, excluded = _write_chosen(job)
    finally:
        for tmp in job.made.values():
            tmp.unlink(missing_ok=True)
    return _record(job, checks, calibration, excluded)


def _candidate_forms(job: _Job) -> list[str]:
    form, cfg = job.cfg.form, job.cfg
    if job.prep.family == "mobilenet_v2":
        return ["reference"]  # no channel shuffle to fold: the graph as written is the only candidate
    if form != "auto":
        return [form]
    # auto: the reference form (the graph as written) is a candidate too; the folded forms must earn their place.
    return ["gather"] if cfg.batch != 1 or cfg.dynamic_batch else ["gather", "transpose", "reference"]


def _candidates(job: _Job) -> None:
    """Each candidate form: the graph-level fold, torch.onnx (dynamo), onnxslim, the full checker. A folded form that
    fails is dropped with its reason (the fold is an optimization); the graph as written failing is the converter's
    refusal of the user's model."""
    for f in _candidate_forms(job):
        _make_candidate(job, f)
    if not job.made:
        _fall_back_to_reference(job)


def _make_candidate(job: _Job, f: str) -> Path | None:
    dynamic = job.cfg.dynamic_batch
    # A dynamic batch is traced at batch 2: torch.export specializes a size-1 dimension to the constant 1.
    dyn = _batch_dims(len(job.xs)) if dynamic else None
    trace_xs = tuple(torch.cat([t, t]) if t.shape[0] == 1 else t for t in job.xs) if dynamic else job.xs
    tmp = job.out_path.parent / f".{job.out_path.stem}.{f}.candidate.onnx"
    with job.p.step(f"exporting {job.prep.label} ({f} form) to ONNX"):
        try:
            gm, job.fold_reports[f] = fold_graph(job.prep.module, trace_xs, form=f, split="split", dynamic_shapes=dyn)
            job.made[f] = tmp
            _torch_to_onnx(gm, trace_xs, tmp, dynamic, len(job.wants))
        except Exception as e:  # noqa: BLE001  (one candidate's failure; the others go on)
            job.made.pop(f, None)
            tmp.unlink(missing_ok=True)
            if f == "reference":
                job.reference_error = f"torch.onnx could not export the module as written: {failure_line(e)}"
            else:
                job.drop(f, f"the {f} fold or its export failed: {failure_line(e)}")
            return None
    return tmp


def _fall_back_to_reference(job: _Job) -> None:
    """Nothing folded survived: the graph as written, or the converter's refusal (EdgeError) / our bug."""
    if "reference" not in job.made and job.reference_error is None:
        _make_candidate(job, "reference")
    if "reference" in job.made:
        return
    why = "; ".join(f"{k}: {v}" for k, v in job.dropped.items())
    if job.reference_error is not None:
        raise EdgeError(job.reference_error + (f" (the folded forms: {why})" if why else ""))
    raise InternalError(f"no ONNX candidate of {job.prep.label} could be built: {why}")


def _check_candidates(job: _Job) -> None:
    """Every candidate's float check before the choice: one our fold made wrong (it differs from torch.onnx's own
    export of the unfolded module beyond float rounding) is dropped with the reason."""
    for f in list(job.made):
        try:
            job.float_checks[f] = _verify_float(job, f)
        except InternalError as e:
            job.made.pop(f).unlink(missing_ok=True)
            job.drop(f, str(e).split(". This is a bug")[0])
        except EdgeError:
            raise
        except Exception as e:  # noqa: BLE001  (onnxruntime cannot run it: left out, as one that runs wrong would be)
            if f == "reference":
                raise EdgeError(f"onnxruntime could not run torch.onnx's export of the module as written: "
                                f"{failure_line(e)}; nothing was written") from e
            job.made.pop(f).unlink(missing_ok=True)
            job.drop(f, f"the {f} candidate does not run on onnxruntime: {failure_line(e)}")
    if not job.made:
        _fall_back_to_reference(job)
        job.float_checks["reference"] = _verify_float(job, "reference")


def _select(job: _Job) -> None:
    """Time the candidates interleaved (here or on the tuning target) and apply the rule (export/timing.py)."""
    # an explicit form's reference export (made only to tell whose a distance is) is a fallback, not a candidate
    cands = {k: v for k, v in job.made.items() if k in _candidate_forms(job)} or dict(job.made)
    job.chosen = next(iter(cands))
    if len(cands) < 2:
        return
    from shufflenet_edge.export.timing import time_and_decide

    t = job.cfg.tune
    x = job.xs[0].numpy() if job.cfg.dynamic_batch else job.xs[0].numpy()[:1]
    preferred = next(iter(cands))
    with job.p.step(f"timing the candidate forms on {'onnxruntime here' if t.target == 'local' else t.target} "
                    f"({t.threads} thread(s))"):
        timings = time_and_decide({k: str(v) for k, v in cands.items()}, x, t, preferred,
                                  f"the preferred folded form ({preferred})", spent_s=time.monotonic() - job.started)
    graphs = {k: {g: v for g, v in graph_stats(path).items() if g in ("ops", "data_movement_ops", "max_rank")}
              for k, path in cands.items()}
    job.chosen = timings["chosen"]
    if job.chosen == "reference":
        r = graphs["reference"]
        timings["verdict"] += (f"; the reference graph has max rank {r['max_rank']} and {r['data_movement_ops']} "
                               "data-movement ops" + (" (rank 5: NNAPI and older GPU delegates refuse it)"
                                                      if r["max_rank"] > 4 else "")
                               + f": --form {preferred} keeps the folded graph")
    timings["candidate_graphs"] = graphs
    timings["target"] = t.target
    job.p.log(f"form: {timings['verdict']}")
    job.timings = timings


def _write_chosen(job: _Job) -> tuple[dict[str, Any], str | None, list[str]]:
    """The chosen graph to the output (atomic): the graph itself, or its int8 QDQ quantization with the int8 checks
    and loss. A folded graph the quantizer fails on is dropped and the next candidate quantized. Returns (checks,
    calibration, nodes left float)."""
    while True:
        try:
            return _verify_and_write(job)
        except EdgeError:
            raise  # the user's to act on (a --keep-float that names nothing, a gate missed)
        except Exception as e:  # noqa: BLE001  (the quantizer failed on a folded graph: the next candidate)
            if job.cfg.int8 is None or job.chosen == "reference" or len(job.made) < 2:
                raise
            job.made.pop(job.chosen).unlink(missing_ok=True)
            job.drop(job.chosen, f"int8 quantization of the folded graph failed: {failure_line(e)}")
            job.chosen = "reference" if "reference" in job.made else next(iter(job.made))


def _verify_and_write(job: _Job) -> tuple[dict[str, Any], str | None, list[str]]:
    cfg, chosen, xs = job.cfg, job.chosen, job.xs
    checks = job.float_checks[chosen]
    calibration, excluded = None, []
    with atomic_path(job.out_path) as final_tmp:
        q = cfg.int8
        if q is None:
            os.replace(job.made[chosen], final_tmp)
            return checks, calibration, excluded
        from shufflenet_edge.export.onnx_quantize import quantize_onnx_int8

        with job.p.step(f"calibrating and quantizing (int8 QDQ u8s8, {q.weights})"):
            calibration = quantize_onnx_int8(
                job.made[chosen], final_tmp, job.prep.preprocess, dataclasses.replace(q, keep_float=tuple(job.kept)),
                batch=cfg.batch, input_hw=tuple(int(v) for v in xs[0].shape[2:]), excluded_out=excluded)
        if xs[0].shape[0] == 1 and not cfg.dynamic_batch:
            float_checks = checks
            with job.p.step("int8 against its QDQ simulation and against the float model"):
                checks = {"float": float_checks, **_verify_int8(final_tmp, xs[0].shape[1:])}
                rep, checked = _int8_loss(final_tmp, job.prep.module, job.prep.preprocess, xs[0].shape[1:],
                                           dataclasses.replace(q, keep_float=tuple(job.kept)))
            if (rep.get("gate") or {}).get("failures"):
                from shufflenet_edge.export import int8_report

                if q.search_tries <= 0:
                    raise int8_report.refusal(rep)
                excluded.clear()
                rep = _budget_search(job, final_tmp, rep, checked, excluded)
                checks = {"float": float_checks, **_verify_int8(final_tmp, xs[0].shape[1:])}
            checks["int8_loss"] = rep
            checks["int8_speed"] = _int8_speed(job, final_tmp)
    return checks, calibration, excluded


def _int8_speed(job: _Job, int8_path: Path) -> dict[str, Any]:
    """The int8 graph against the float graph it was quantized from, in paired rounds where --tune-on says (the
    rule of export/timing.py, int8 the preferred form): onnxruntime's int8 kernels can be slower than its fp32 ones
    (x86-64 without VNNI), and the export says so for the host it measured. `int8_over_fp32` < 1: int8 faster."""
    from shufflenet_edge.export.timing import paired, ratio_ci, time_and_decide

    t = job.cfg.tune
    where = "onnxruntime here" if t.target == "local" else t.target
    with job.p.step(f"timing int8 against fp32 on {where} ({t.threads} thread(s))"):
        got = time_and_decide({"int8": str(int8_path), "fp32": str(job.made[job.chosen])}, job.xs[0].numpy()[:1], t,
                              "int8", "int8 was asked for", spent_s=time.monotonic() - job.started)
    per = got["round_medians_ms"]
    c = ratio_ci(*paired(per["int8"], per["fp32"]))
    int8_is = {"faster": "faster", "slower": "slower", "tie": "a tie", "undecided": "too noisy to tell"}[c["verdict"]]
    env = got.get("environment") or {}
    return {"int8_over_fp32": c["ratio"], "ci95": [c["low"], c["high"]], "rounds": c["rounds"],
            "int8_is": int8_is, "tie_band": got["tie_band"], "target": t.target, "threads": t.threads,
            "runtime": got.get("runtime"), "host": {k: env[k] for k in ("cpu_model", "machine", "isa") if k in env}}


def _budget_search(job: _Job, final: Path, rep: dict[str, Any], checked: Any, excluded: list[str]) -> dict[str, Any]:
    """The QDQ graph missed the user's budget: the fewest units kept float that meet it (export/int8_search.py). Each
    try is onnxruntime's quantization of the chosen float graph with those units excluded, run on the int8 check's
    inputs (`checked`: the export's int8_report.Check, from `_int8_loss`; for ONNX the QDQ graph is its own simulation); the chosen set is written to
    `final` and judged as any int8 graph is, and timed against the fully-int8 graph and the float one (the two ends
    of the curve). Nothing meets the budget: ParityError, nothing written."""
    import shutil

    from shufflenet_edge.export import int8_report, int8_search
    from shufflenet_edge.export.int8_options import head_ends, output_paths, unit_names, weight_bytes
    from shufflenet_edge.export.onnx_quantize import quantize_onnx_int8

    q, pre, chw = job.cfg.int8, job.prep.preprocess, job.xs[0].shape[1:]
    assert q is not None
    xs, wants, budget = checked.xs, checked.wants, checked.budget
    units = unit_names(job.prep.module)
    ends = head_ends(job.prep.module, job.xs[0][:1])
    paths = output_paths(job.prep.module, job.xs[0][:1], [*units, *ends])
    rows = rep.get("per_layer")
    if rows is None:  # several outputs: the report went without it; the ranking needs it
        rows = (int8_report.where_loss_starts(str(final), job.prep.module, xs, "nchw") or {}).get("rows") or []
    hw = tuple(int(v) for v in chw[1:])
    fully = rep["judged"]
    with tempfile.TemporaryDirectory() as td:
        def quantize(float_units: Sequence[str], dst: Path, out: list[str] | None = None) -> None:
            quantize_onnx_int8(job.made[job.chosen], dst, pre, dataclasses.replace(q, keep_float=tuple(float_units)),
                               batch=job.cfg.batch, input_hw=hw, excluded_out=out)

        def evaluate(float_units: tuple[str, ...]) -> int8_search.Trial:
            trial = Path(td) / "trial.onnx"
            quantize(float_units, trial)
            return budget.judge(float_units, run_onnx_samples(trial, xs), wants, _predictor(trial))

        chosen, record = int8_search.find(job.p, evaluate, units, rows, rep, budget, q.search_tries, job.kept,
                                          "quantizations", "each set quantized by onnxruntime (its own calibration "
                                          "pass) and run on the int8 check's inputs", ends, paths,
                                          lambda fl: weight_bytes(job.prep.module, fl))
        fully_int8 = Path(td) / "fully_int8.onnx"
        shutil.copyfile(final, fully_int8)
        job.kept = chosen
        with job.p.step(f"quantizing with {' '.join(job.kept)} in float"):
            quantize(job.kept, final, excluded)
        rep, _ = _int8_loss(final, job.prep.module, pre, chw, dataclasses.replace(q, keep_float=tuple(chosen)),
                            checked)
        float_end = job.made[job.chosen]
        judged_float = budget.judge(tuple(units), run_onnx_samples(float_end, xs), wants, _predictor(float_end))
        with job.p.step("timing the chosen graph against the fully-int8 and float ones"):
            record["latency"] = int8_search.latency_cost(
                {"fully_int8": str(fully_int8), "chosen": str(final), "float": str(float_end)},
                job.xs[0].numpy()[:1], job.cfg.tune)
    record["curve"] = int8_search.curve(record, {"fully_int8": fully, "chosen": rep["judged"],
                                                 "float": judged_float.to_dict()})
    rep["search"] = record
    if rep["gate"]["failures"]:
        raise int8_report.refusal(rep, f"the search's quantization of {' '.join(job.kept)} in float met it, the "
                                       "written graph does not")
    return rep


def _record(job: _Job, checks: dict[str, Any], calibration: str | None, excluded: list[str]) -> dict[str, Any]:
    """The written artifact's identity embedded in it, and its record beside it."""
    import onnx

    from shufflenet_edge.export import onnx_quantize

    prep, q, out_path = job.prep, job.cfg.int8, job.out_path
    m = onnx.load(str(out_path), load_external_data=False)
    i, o = m.graph.input[0], m.graph.output[0]
    want = job.wants[0]

    def dims(v: Any) -> list[Any]:
        return [d.dim_value if d.HasField("dim_value") else (d.dim_param or -1) for d in v.type.tensor_type.shape.dim]

    sidecar = {
        "format": "onnx",
        "path": str(out_path),
        "model": prep.label,
        "num_classes": int(want.shape[1]) if len(job.wants) == 1 and want.ndim == 2 else None,
        "weights": {"path": str(prep.weights), "sha256": file_sha256(prep.weights)} if prep.weights else None,
        "random_weights": prep.random_weights,
        "seed": job.cfg.seed if prep.random_weights else None,
        "source": prep.source,
        "precision": job.cfg.precision,
        "form": job.chosen,
        "input": {"name": i.name, "shape": dims(i), "layout": "nchw", "dtype": "float32", "quantization": None},
        "output": {"name": o.name, "shape": dims(o), "dtype": "float32", "quantization": None},
        "outputs": [{"name": v.name, "shape": dims(v), "layout": "nchw" if len(dims(v)) == 4 else None,
                     "dtype": "float32"} for v in m.graph.output],
        "preprocess": prep.preprocess.to_dict(),
        "labels": None,
        "calibration": calibration,
        "calibration_method": q.method_for("onnx") if q else None,
        "int8_weights": q.weights if q else None,
        "quantization_scheme": f"{onnx_quantize.SCHEME}, {q.weights} weights" if q else None,
        "keep_float": job.kept if q else None,
        "float_nodes": excluded if q else None,
        "checks": checks,
        "fold": job.fold_reports[job.chosen].to_dict(),
        "fallback": job.fallback(job.chosen, job.cfg.form),
        "note": (f"{job.reference_error}; the folded graph exports" if job.reference_error else None),
        "form_timings": job.timings,
        "opset": OPSET,
        "tools": tool_versions("onnx", "onnxruntime", "onnxslim", "onnxscript"),
        "graph": None,
    }
    if q is not None:
        from shufflenet_edge.runtimes.ort_session import describe_int8_mode

        sidecar["deployment_note"] = (
            "onnxruntime on x86-64 without VNNI (AVX2 only): its default u8s8 int8 kernels can saturate and move "
            "outputs far from this graph's numbers; open the session with the config entry "
            "session.x64quantprecision = 1 there for exact numbers (measured on such a host: still faster than the "
            "fp32 graph; checked here with: " + describe_int8_mode(True) + ")")
    embed_identity(out_path, sidecar)  # the artifact says what it is even without its sidecar
    sidecar["graph"] = graph_stats(out_path)
    return write_sidecar(out_path, sidecar)


def _check_inputs(shape: Any) -> np.ndarray:
    """The check inputs: seeded normal images in the model's float domain, one at a time."""
    g = torch.Generator().manual_seed(1)
    return torch.randn(verify.N_CHECK, *[int(v) for v in shape], generator=g).numpy()


def _verify_float(job: _Job, form: str) -> dict[str, Any]:
    """The verify stage for ONNX float (export/verify.py) of one candidate: every output against PyTorch, on the
    check inputs for a one-input batch-1 model, else on the example input. A folded candidate farther than the
    tolerance is compared with torch.onnx's own export of the unfolded module (exported here when --form auto did
    not): equal within float rounding, the distance is the converter's (reported); not equal, our fold moved a
    value (InternalError)."""
    path, ref, xs = job.made[form], job.prep.module, job.xs
    what = f"ONNX export of {job.prep.label} ({form})"
    if not (len(xs) == 1 and xs[0].shape[0] == 1 and not job.cfg.dynamic_batch):
        return verify.check_float(run_onnx_all(path, [t.numpy() for t in xs]), job.wants, "fp32", what,
                                  runtime_only=form == "reference")
    x = _check_inputs(xs[0].shape[1:])
    if job.expected is None:
        wants = verify.torch_outputs(ref, x)
        job.expected = (wants, verify.float_noise(ref, x, wants))
    wants, noise = job.expected
    gots = run_onnx_samples(path, x)
    if form == "reference":
        return verify.check_float(gots, wants, "fp32", what, noise, runtime_only=True)
    conv = run_onnx_samples(job.made["reference"], x) if "reference" in job.made else None
    try:
        return verify.check_float(gots, wants, "fp32", what, noise, conversion=conv)
    except EdgeError:
        if conv is not None or job.reference_error is not None or _make_candidate(job, "reference") is None:
            raise
        return verify.check_float(gots, wants, "fp32", what, noise, conversion=run_onnx_samples(job.made["reference"], x))


def _verify_int8(path: Path, chw: Any) -> dict[str, Any]:
    """The QDQ graph as onnxruntime runs it (int8 kernels) against the same graph unoptimized (its float
    simulation), in output steps; no graph pass runs after quantization, so nothing can have moved."""
    x = _check_inputs(chw)
    sims = run_onnx_samples(path, x, optimization="none")
    notes: dict[str, Any] = {}
    check = verify.check_int8(run_onnx_samples(path, x, notes=notes), sims, _output_scales(path), None)
    if notes and check.get("warning"):
        check["warning"] += ("; onnxruntime ran its default int8 kernels (they saturate on x86 without VNNI): its "
                             "exact mode could not open this graph")
    return {**check, **notes}


def _output_scales(path: Path) -> list[float | None]:
    """Per graph output, the scale of the DequantizeLinear that produces it (None if none does)."""
    import onnx
    from onnx import numpy_helper

    m = onnx.load(str(path), load_external_data=False)
    inits = {i.name: i for i in m.graph.initializer}
    producer = {o: n for n in m.graph.node for o in n.output}
    out = []
    for o in m.graph.output:
        n = producer.get(o.name)
        sc = None
        if n is not None and n.op_type == "DequantizeLinear" and n.input[1] in inits:
            arr = numpy_helper.to_array(inits[n.input[1]])
            sc = float(arr) if arr.size == 1 else None
        out.append(sc)
    return out


def _int8_loss(path: Path, ref: nn.Module, pre: Preprocess, chw: Any, q: Any, check: Any = None
               ) -> tuple[dict[str, Any], Any]:
    """Every output of the int8 graph against the float model on the inputs `parity` uses by default (so export and
    parity give one verdict), the user's budget judged (int8_report.judged_report; the caller refuses or searches;
    the atomic write leaves nothing behind). Returns the report and the export's `int8_report.Check`, made on the
    first call and passed back on the next; the float-unit search judges its tries on it."""
    from shufflenet_edge.export import int8_report
    from shufflenet_edge.export.calibration import DEFAULT_CALIBRATION_IMAGES

    if check is None:
        check = int8_report.check_once(q, pre, chw, q.images or DEFAULT_CALIBRATION_IMAGES, ref)
    rep = int8_report.judged_report(run_onnx_samples(path, check.xs), None, check, q.keep_float, _predictor(path),
                                    lambda: int8_report.where_loss_starts(str(path), ref, check.xs, "nchw"))
    return rep, check


def _predictor(path: Path) -> Any:
    """An ONNX graph on any float NCHW batch (the user's validation function calls it)."""
    def predict(x: np.ndarray) -> list[np.ndarray]:
        return run_onnx_samples(path, np.ascontiguousarray(x, dtype=np.float32))

    return predict
