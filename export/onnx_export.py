"""ONNX export: fold, torch's dynamo exporter, onnxslim, full checker, shape inference, sidecar.

`form`:
- ``reference``: the unfolded torchvision graph (for comparisons);
- ``gather`` / ``transpose``: the two folded forms (shufflenet_edge.fold);
- ``auto``: export both folded forms, time them interleaved on onnxruntime (CPU, the given threads) and
  keep the faster, recording the timings in the sidecar. For models the fold does not know
  (``ModelInfo.foldable`` False: megvii_*) and MobileNetV2, ``auto`` exports the reference form and the
  folded forms are refused with a usage error.
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
from shufflenet_edge.fold import fold
from shufflenet_edge.models import get_info
from shufflenet_edge.models.weights import file_sha256, load_model

ONNX_FORMS = ("auto", "reference", "gather", "transpose")
OPSET = 18


def _torch_to_onnx(model: nn.Module, x: torch.Tensor, path: Path, dynamic_batch: bool) -> None:
    import onnx

    kwargs: dict[str, Any] = {}
    if dynamic_batch:
        kwargs["dynamic_shapes"] = ({0: torch.export.Dim("batch", min=1, max=1024)},)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import logging

        logging.getLogger("torch.onnx").setLevel(logging.ERROR)
        torch.onnx.export(
            model, (x,), str(path), dynamo=True, opset_version=OPSET, input_names=["input"],
            output_names=["logits"], external_data=False, verbose=False, **kwargs,
        )
    m = onnx.load(str(path))
    try:
        import onnxslim

        m = onnxslim.slim(m)
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
) -> dict[str, Any]:
    """Export `model_name` to ONNX at `out` (+ sidecar). Returns the sidecar dict."""
    info = get_info(model_name)
    if form not in ONNX_FORMS:
        raise UsageError(f"unknown ONNX form {form!r}; valid: {', '.join(ONNX_FORMS)}")
    if info.family == "mobilenet_v2" and form not in ("auto", "reference"):
        raise UsageError(f"{model_name} has no channel shuffle; use --form reference")
    if not info.foldable and form not in ("auto", "reference"):
        raise UsageError(f"{model_name} has no folded ONNX form yet (the fold knows only the torchvision-style "
                         f"ShuffleNets); use --form reference (or auto, which exports the reference form for it)")
    if (batch != 1 or dynamic_batch) and form == "transpose":
        raise UsageError("the transpose form is rank 4 only for batch 1; use --form gather for --batch > 1 or --dynamic-batch")
    out_path = Path(out)
    check_writable(out_path)
    pre = Preprocess.for_size(input_size)
    p = progress(show_progress)
    if calib is not None and int8:
        from shufflenet_edge.data import list_images

        list_images(calib)  # fail now, not after the export
    ref = load_model(model_name, weights, seed=seed, warn=weights is None)
    x = torch.randn(batch, 3, input_size, input_size, generator=torch.Generator().manual_seed(0))
    if info.family == "mobilenet_v2":
        form = "reference"
    elif not info.foldable and form == "auto":
        p.log(f"note: {model_name} has no folded form yet; exporting the reference form")
        form = "reference"
    candidates = ["gather", "transpose"] if form == "auto" else [form]
    if form == "auto" and (batch != 1 or dynamic_batch):
        candidates = ["gather"]
    timings = None
    tmpdir = out_path.parent
    made: dict[str, Path] = {}
    try:
        for f in candidates:
            tmp = tmpdir / f".{out_path.stem}.{f}.candidate.onnx"
            with p.step(f"exporting {model_name} ({f} form) to ONNX"):
                _torch_to_onnx(fold(ref, f), x, tmp, dynamic_batch)
            made[f] = tmp
        chosen = candidates[0]
        if len(made) > 1:
            with p.step("timing the candidate forms on onnxruntime"):
                timings = time_onnx(made, x.numpy()[:1] if not dynamic_batch else x.numpy(), threads=threads)
            chosen = min(timings["median_ms"], key=timings["median_ms"].get)
            timings["chosen"] = chosen
        # Check the float graph against PyTorch before claiming anything.
        from shufflenet_edge.runtimes.runner import OnnxRunner

        with torch.no_grad():
            want = ref(x).numpy()
        got = OnnxRunner(str(made[chosen]), threads=threads)(x.numpy())
        err = float(np.abs(got - want).max())
        tol = 1e-4 * max(1.0, float(np.abs(want).max()))
        if err > tol:
            raise EdgeError(f"ONNX export of {model_name} ({chosen}) disagrees with PyTorch: max abs error {err:.3g} > {tol:.3g}")
        precision = "fp32"
        calibration = None
        with atomic_path(out_path) as final_tmp:
            if int8:
                from shufflenet_edge.export.onnx_quantize import quantize_onnx_int8

                with p.step("calibrating and quantizing (int8 QDQ, per-channel)"):
                    calibration = quantize_onnx_int8(made[chosen], final_tmp, pre, calib, batch=batch)
                precision = "int8"
            else:
                os.replace(made[chosen], final_tmp)
    finally:
        for tmp in made.values():
            if tmp.exists():
                tmp.unlink()
    import onnx

    m = onnx.load(str(out_path), load_external_data=False)
    i, o = m.graph.input[0], m.graph.output[0]

    def dims(v: Any) -> list[Any]:
        return [d.dim_value if d.HasField("dim_value") else (d.dim_param or -1) for d in v.type.tensor_type.shape.dim]

    sidecar = {
        "format": "onnx",
        "path": str(out_path),
        "model": model_name,
        "num_classes": int(want.shape[1]),
        "weights": {"path": str(weights), "sha256": file_sha256(weights)} if weights else None,
        "random_weights": weights is None,
        "seed": seed if weights is None else None,
        "precision": precision,
        "form": chosen,
        "input": {"name": i.name, "shape": dims(i), "layout": "nchw", "dtype": "float32", "quantization": None},
        "output": {"name": o.name, "shape": dims(o), "dtype": "float32", "quantization": None},
        "preprocess": pre.to_dict(),
        "labels": None,
        "calibration": calibration,
        "float_check": {"max_abs_error_vs_torch": err, "tolerance": tol},
        "form_timings": timings,
        "opset": OPSET,
        "tools": tool_versions("onnx", "onnxruntime", "onnxslim", "onnxscript"),
        "graph": None,
    }
    embed_identity(out_path, sidecar)  # the artifact says what it is even without its sidecar
    sidecar["graph"] = graph_stats(out_path)
    write_sidecar(out_path, sidecar)
    return sidecar
