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

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from shufflenet_edge.export.common import (
    atomic_path,
    check_writable,
    embed_identity,
    progress,
    tool_versions,
    write_sidecar,
)
from torch import nn

from shufflenet_edge.data import Preprocess
from shufflenet_edge.errors import EdgeError, UsageError
from shufflenet_edge.graph_fold import fold_graph
from shufflenet_edge.models import get_info
from shufflenet_edge.models.weights import file_sha256, load_model

ONNX_FORMS = ("auto", "reference", "gather", "transpose")
OPSET = 18


def _flat_outputs(y: Any) -> list[torch.Tensor]:
    return [t for t in torch.utils._pytree.tree_leaves(y) if isinstance(t, torch.Tensor)]


def output_names(n: int) -> list[str]:
    return ["logits"] if n == 1 else [f"output_{i}" for i in range(n)]


def _batch_dims(n_inputs: int) -> tuple[dict[int, Any], ...]:
    """torch.export's dynamic_shapes for a dynamic batch on every input (one shared dimension)."""
    batch = torch.export.Dim("batch", min=1, max=1024)
    return tuple({0: batch} for _ in range(n_inputs))


def _torch_to_onnx(model: nn.Module, x: Any, path: Path, dynamic_batch: bool, n_outputs: int = 1) -> None:
    import onnx

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


def time_onnx(paths: dict[str, Path], x: np.ndarray, threads: int = 1, rounds: int = 3, runs: int = 30) -> dict[str, Any]:
    """Interleaved timing of several graphs in one process (spinning off): median ms per round."""
    from shufflenet_edge.export.timing import interleaved_medians
    from shufflenet_edge.runtimes.runner import OnnxRunner

    runners = {k: OnnxRunner(str(p), threads=threads) for k, p in paths.items()}
    return interleaved_medians({k: (lambda r=r: r.invoke(x)) for k, r in runners.items()}, "onnxruntime", threads, rounds, runs)


def run_onnx_all(path: str | os.PathLike[str], xs: list[np.ndarray], threads: int = 1) -> list[np.ndarray]:
    """Every output of an ONNX graph for the batch `xs` (one array per graph input), in graph order."""
    import onnxruntime as ort

    from shufflenet_edge.runtimes.ort_session import session_options

    so = session_options(threads, check_numbers=True)
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    return [np.asarray(y) for y in sess.run(None, dict(zip(names, xs)))]


def export_onnx(
    model_name: str,
    out: str | os.PathLike[str],
    *,
    weights: str | None = None,
    form: str = "auto",
    batch: int = 1,
    dynamic_batch: bool = False,
    input_size: int = 224,
    int8: bool = False,
    calib: str | None = None,
    threads: int = 1,
    seed: int = 0,
    show_progress: bool = True,
    module: nn.Module | None = None,
    example_input: Any = None,
    source: dict[str, Any] | None = None,
    preprocess: Preprocess | None = None,
    keep_float: list[str] | None = None,
    calib_method: str | None = None,
    calib_images: int | None = None,
    int8_weights: str | None = None,
    gate: Any = None,
    tune_on: str = "local",
    tune_options: Any = None,
    tune_rounds: int | None = None,
    tune_runs: int | None = None,
) -> dict[str, Any]:
    """int8 options (issue 15) as in `export_tflite`; calibration methods are onnxruntime's (minmax default,
    histogram = Entropy, percentile).

    Export `model_name` (a registry name) or `module` (any eval-mode nn.Module, `model_name` then only its
    label; `example_input` a tensor or tuple of tensors, default (batch, 3, input_size, input_size)) to ONNX at
    `out` (+ sidecar). `source`: how to rebuild the reference (recorded in the sidecar). Returns the sidecar."""
    info = get_info(model_name) if module is None else None
    if form not in ONNX_FORMS:
        raise UsageError(f"unknown ONNX form {form!r}; valid: {', '.join(ONNX_FORMS)}")
    if info is not None and info.family == "mobilenet_v2" and form not in ("auto", "reference"):
        raise UsageError(f"{model_name} has no channel shuffle; use --form reference")
    if (batch != 1 or dynamic_batch) and form == "transpose":
        raise UsageError("the transpose form is rank 4 only for batch 1; use --form gather for --batch > 1 or --dynamic-batch")
    out_path = Path(out)
    check_writable(out_path)
    pre = preprocess or Preprocess.for_model(model_name if module is None else None, input_size)
    p = progress(show_progress)
    if calib is not None and int8:
        from shufflenet_edge.data import list_images

        list_images(calib)  # fail now, not after the export
    if module is None:
        ref = load_model(model_name, weights, seed=seed, warn=weights is None)
        x = torch.randn(batch, 3, input_size, input_size, generator=torch.Generator().manual_seed(0))
    else:
        ref = module.eval()
        x = example_input if example_input is not None else torch.randn(batch, 3, input_size, input_size,
                                                                          generator=torch.Generator().manual_seed(0))
    from shufflenet_edge.export.int8_options import check_choices, resolve_keep_float

    check_choices("onnx", calib_method, int8_weights)
    if not int8 and (keep_float or calib_method or calib_images or int8_weights):
        raise UsageError("--keep-float, --calib-method, --calib-images and --int8-weights are for --int8 exports")
    kept = resolve_keep_float(ref, keep_float)
    excluded: list[str] = []
    int8_loss = None
    xs = tuple(x) if isinstance(x, (tuple, list)) else (x,)
    if len(xs) != 1 and int8:
        raise UsageError("int8 ONNX export takes models with one input")
    with torch.no_grad():
        wants = [t.numpy() for t in _flat_outputs(ref(*xs))]
    if info is not None and info.family == "mobilenet_v2":
        form = "reference"
    # auto: the reference form (the graph as written) is a candidate too; the folded forms must earn their place.
    candidates = ["gather", "transpose", "reference"] if form == "auto" else [form]
    if form == "auto" and (batch != 1 or dynamic_batch):
        candidates = ["gather"]
    timings = None
    # A dynamic batch is traced at batch 2: torch.export specializes a size-1 dimension to the constant 1.
    dyn = _batch_dims(len(xs)) if dynamic_batch else None
    trace_xs = tuple(torch.cat([t, t]) if t.shape[0] == 1 else t for t in xs) if dynamic_batch else xs
    tmpdir = out_path.parent
    made: dict[str, Path] = {}
    fold_reports: dict[str, Any] = {}
    try:
        for f in candidates:
            tmp = tmpdir / f".{out_path.stem}.{f}.candidate.onnx"
            with p.step(f"exporting {model_name} ({f} form) to ONNX"):
                gm, rep = fold_graph(ref, trace_xs, form=f, split="split", dynamic_shapes=dyn)
                fold_reports[f] = rep
                _torch_to_onnx(gm, trace_xs, tmp, dynamic_batch, len(wants))
            made[f] = tmp
        chosen = candidates[0]
        if len(made) > 1:
            from shufflenet_edge.export.timing import TUNE_ROUNDS, TUNE_RUNS, decide, time_on_target

            rounds, runs = tune_rounds or TUNE_ROUNDS, tune_runs or TUNE_RUNS
            with p.step(f"timing the candidate forms on {'onnxruntime here' if tune_on == 'local' else tune_on} "
                        f"({threads} thread(s), {rounds} rounds)"):
                if tune_on == "local":
                    from shufflenet_edge.runtimes.runner import environment

                    timings = time_onnx(made, xs[0].numpy()[:1] if not dynamic_batch else xs[0].numpy(), threads=threads,
                                        rounds=rounds, runs=runs)
                    timings["environment"] = environment()
                else:
                    timings = time_on_target({k: str(v) for k, v in made.items()}, tune_on, threads, rounds=rounds,
                                             runs=runs, ssh_options=tune_options)
            decision = decide(timings["round_medians_ms"], preferred=candidates[0])
            chosen = decision["chosen"]
            timings.update(decision)
            timings["target"] = tune_on
            p.log(f"form: {decision['verdict']}")
        # Check the float graph against PyTorch before claiming anything: every output.
        gots = run_onnx_all(made[chosen], [t.numpy() for t in xs], threads=threads)
        errs = []
        for k, (got, want) in enumerate(zip(gots, wants)):
            e = float(np.abs(got - want).max())
            t = 1e-4 * max(1.0, float(np.abs(want).max()))
            errs.append({"output": k, "max_abs_error": e, "tolerance": t})
            if not e <= t:
                raise EdgeError(f"ONNX export of {model_name} ({chosen}) disagrees with PyTorch on output {k}: "
                                f"max abs error {e:.3g} > {t:.3g}")
        err = max(e["max_abs_error"] for e in errs)
        tol = errs[int(np.argmax([e["max_abs_error"] for e in errs]))]["tolerance"]
        precision = "fp32"
        calibration = None
        with atomic_path(out_path) as final_tmp:
            if int8:
                from shufflenet_edge.export.onnx_quantize import quantize_onnx_int8

                with p.step(f"calibrating and quantizing (int8 QDQ, {int8_weights or 'per-channel'})"):
                    calibration = quantize_onnx_int8(
                        made[chosen], final_tmp, pre, calib, batch=batch, input_hw=tuple(int(v) for v in xs[0].shape[2:]),
                        calib_method=calib_method, calib_images=calib_images,
                        per_channel=(int8_weights or "per-channel") == "per-channel", keep_float=kept,
                        excluded_out=excluded)
                precision = "int8"
                if xs[0].shape[0] == 1 and not dynamic_batch and len(wants) == 1 and wants[0].ndim == 2:
                    with p.step("int8 loss against the float model"):
                        int8_loss = _int8_loss(final_tmp, ref, pre, calib, calib_images, xs[0].shape[2:], gate)
            else:
                os.replace(made[chosen], final_tmp)
    finally:
        for tmp in made.values():
            if tmp.exists():
                tmp.unlink()
    import onnx

    m = onnx.load(str(out_path), load_external_data=False)
    i, o = m.graph.input[0], m.graph.output[0]
    want = wants[0]

    def dims(v: Any) -> list[Any]:
        return [d.dim_value if d.HasField("dim_value") else (d.dim_param or -1) for d in v.type.tensor_type.shape.dim]

    sidecar = {
        "format": "onnx",
        "path": str(out_path),
        "model": model_name,
        "num_classes": int(want.shape[1]) if len(wants) == 1 and want.ndim == 2 else None,
        "weights": {"path": str(weights), "sha256": file_sha256(weights)} if weights else None,
        "random_weights": weights is None and module is None,
        "seed": seed if weights is None and module is None else None,
        "source": source or {"kind": "registry", "name": model_name},
        "precision": precision,
        "form": chosen,
        "input": {"name": i.name, "shape": dims(i), "layout": "nchw", "dtype": "float32", "quantization": None},
        "output": {"name": o.name, "shape": dims(o), "dtype": "float32", "quantization": None},
        "outputs": [{"name": v.name, "shape": dims(v), "layout": "nchw" if len(dims(v)) == 4 else None,
                     "dtype": "float32"} for v in m.graph.output],
        "preprocess": pre.to_dict(),
        "labels": None,
        "calibration": calibration,
        "calibration_method": (calib_method or "minmax") if int8 else None,
        "int8_weights": (int8_weights or "per-channel") if int8 else None,
        "keep_float": kept if int8 else None,
        "float_nodes": excluded if int8 else None,
        "int8_loss": int8_loss,
        "float_check": {"max_abs_error_vs_torch": err, "tolerance": tol, "per_output": errs},
        "fold": fold_reports[chosen].to_dict(),
        "form_timings": timings,
        "opset": OPSET,
        "tools": tool_versions("onnx", "onnxruntime", "onnxslim", "onnxscript"),
        "graph": None,
    }
    embed_identity(out_path, sidecar)  # the artifact says what it is even without its sidecar
    sidecar["graph"] = graph_stats(out_path)
    write_sidecar(out_path, sidecar)
    return sidecar


def _int8_loss(path: Path, ref: nn.Module, pre: Preprocess, calib: str | None, calib_images: int | None,
               hw: Any, gate: Any) -> dict[str, Any]:
    """The int8 graph against the float model on the calibration images; per-layer SQNR when below the default
    int8 gate; the user's gate (raises: the atomic write leaves nothing behind)."""
    from shufflenet_edge.export import int8_report
    from shufflenet_edge.export.calibration import DEFAULT_CALIBRATION_IMAGES, calibration_set

    images = calibration_set(calib, pre, limit=calib_images or DEFAULT_CALIBRATION_IMAGES)
    xs = np.ascontiguousarray(images.images[: int8_report.N_LOSS_INPUTS], dtype=np.float32)
    if tuple(xs.shape[2:]) != tuple(int(v) for v in hw):
        return {"skipped": "calibration images do not have the model's input size"}
    got = np.concatenate([run_onnx_all(path, [xs[i : i + 1]])[0] for i in range(len(xs))])
    with torch.no_grad():
        want = ref(torch.from_numpy(xs)).numpy()
    desc = f"{len(xs)} calibration images"
    rep = int8_report.loss_report(got, want, None, desc)
    if rep["below_default_gate"] or (gate is not None and gate.any()):
        pl = int8_report.where_loss_starts(str(path), ref, xs, "nchw")
        if pl is not None:
            rep = int8_report.loss_report(got, want, None, desc, pl)
    int8_report.apply_gate(rep, got, want, gate)
    return rep
