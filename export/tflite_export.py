"""TFLite export through litert-torch: NHWC input, fp32 / fp16 / full-integer int8, folded forms.

Stages (each a named step; graph passes live one per file in export/passes/):
1. model -> fold(transpose form) -> NHWC I/O wrapper (litert_torch.to_channel_last_io);
2. int8: PT2E static quantization (per-channel weights, symmetric), calibrated on an image folder
   through the model's own preprocessing, or the stated synthetic fallback; litert_torch.convert;
3. passes: shuffle_path (the fold's data path, recipe per form), maxpool_pad (one XNNPACK partition),
   io_types (float / uint8 I/O for int8 models), fp16_weights (fp16);
4. checks: fp32 against PyTorch on 16 inputs; int8 against the PT2E-converted PyTorch module (the
   quantization simulation) in units of the output scale; every pass against the graph before it.

Forms: ``reference`` converts the torchvision form as litert-torch does by default; ``delegate`` is
the fewest-ops rank-4 path (GPU/NPU/NNAPI); ``cpu`` is the fastest XNNPACK recipe found by timing the
cpu recipes here; ``auto`` times delegate and the cpu recipes and keeps the fastest. Models the fold does
not know (``ModelInfo.foldable`` False: megvii_*) and MobileNetV2 export the reference form under
``auto``; the folded forms are refused for them with a usage error.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from shufflenet_edge.export.calibration import calibration_set
from shufflenet_edge.export.common import (
    atomic_path,
    check_writable,
    embed_identity,
    progress,
    tool_versions,
    write_sidecar,
)
from shufflenet_edge.export.tflite_quantize import pt2e_quantize
from shufflenet_edge.export.timing import interleaved_medians
from torch import nn

from shufflenet_edge.data import Preprocess
from shufflenet_edge.errors import EdgeError, UsageError
from shufflenet_edge.fold import fold
from shufflenet_edge.models import get_info
from shufflenet_edge.models.weights import file_sha256, load_model

TFLITE_FORMS = ("auto", "reference", "cpu", "delegate")
CPU_RECIPES = ("cpu", "reference3")
N_CHECK = 16


@contextlib.contextmanager
def _quiet() -> Any:
    """litert-torch prints progress lines and TF logs; keep the user's terminal readable."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    logging.getLogger("litert_torch").setLevel(logging.ERROR)
    buf = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(buf):
        warnings.simplefilter("ignore")
        yield


def _nhwc(model: nn.Module) -> nn.Module:
    import litert_torch

    return litert_torch.to_channel_last_io(model, args=[0]).eval()


def convert(model: nn.Module, x: torch.Tensor, quantizer: Any = None) -> bytes:
    import litert_torch

    kwargs = {}
    if quantizer is not None:
        from litert_torch.quantize.quant_config import QuantConfig

        kwargs["quant_config"] = QuantConfig(pt2e_quantizer=quantizer)
    with _quiet():
        edge = litert_torch.convert(model, (x,), **kwargs)
        return bytes(edge.model_content())


def apply_passes(buf: bytes, recipe: str | None, io_type: str, fp16: bool) -> tuple[bytes, list[dict[str, Any]]]:
    from shufflenet_edge.export.passes import fp16_weights, io_types, maxpool_pad, shuffle_path
    from shufflenet_edge.export.passes.graph import Graph

    g = Graph(buf)
    reports = []
    if recipe is not None:
        reports.append(shuffle_path.run(g, recipe))
        reports.append(maxpool_pad.run(g))
    if io_type != "int8" and not fp16 and _has_int8_io(g):
        reports.append(io_types.run(g, io_type))
    if fp16:
        reports.append(fp16_weights.run(g))
    return g.finish(), reports


def _has_int8_io(g: Any) -> bool:
    return any(g.dtype(int(i)) == np.int8 for i in list(g.sg.inputs) + list(g.sg.outputs))


def time_tflite(models: dict[str, bytes], x: np.ndarray, threads: int, rounds: int = 3, runs: int = 30) -> dict[str, Any]:
    """Interleaved medians of several candidate graphs in one LiteRT process."""
    import tempfile

    from shufflenet_edge.runtimes.runner import TFLiteRunner

    with tempfile.TemporaryDirectory() as td:
        runners = {}
        for k, b in models.items():
            p = Path(td) / f"{k}.tflite"
            p.write_bytes(b)
            runners[k] = TFLiteRunner(str(p), threads=threads)
        prepared = {k: r.prepare(x) for k, r in runners.items()}
        return interleaved_medians({k: (lambda r=r, px=prepared[k]: r.invoke(px)) for k, r in runners.items()},
                                   "litert", threads, rounds, runs)


def _run(buf: bytes, x: np.ndarray, raw: bool = False) -> np.ndarray:
    import tempfile

    from shufflenet_edge.runtimes.runner import TFLiteRunner

    with tempfile.NamedTemporaryFile(suffix=".tflite") as f:
        f.write(buf)
        f.flush()
        r = TFLiteRunner(f.name, threads=1)
        outs = []
        for i in range(len(x)):
            r.invoke(r.prepare(x[i : i + 1]))
            outs.append(r.raw_output() if raw else r.output().copy())
        return np.concatenate(outs)


def export_tflite(
    model_name: str,
    out: str | os.PathLike[str],
    *,
    weights: str | None = None,
    form: str = "auto",
    precision: str = "fp32",
    io: str = "int8",
    layout: str = "nhwc",
    batch: int = 1,
    input_size: int = 224,
    calib: str | None = None,
    threads: int = 1,
    seed: int = 0,
    show_progress: bool = True,
    keep_candidates: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Export `model_name` to TFLite at `out` (+ sidecar). `keep_candidates`: a folder that also receives
    every candidate graph the form considered (``<stem>.<recipe>.tflite``), for side-by-side use."""
    info = get_info(model_name)
    if form not in TFLITE_FORMS:
        raise UsageError(f"unknown TFLite form {form!r}; valid: {', '.join(TFLITE_FORMS)}")
    if precision not in ("fp32", "fp16", "int8"):
        raise UsageError(f"precision must be fp32, fp16 or int8, got {precision!r}")
    if precision != "int8":
        io = "float"
    if io not in ("float", "int8", "uint8"):
        raise UsageError(f"--io must be float, int8 or uint8, got {io!r}")
    if layout not in ("nhwc", "nchw"):
        raise UsageError(f"--layout must be nhwc or nchw, got {layout!r}")
    note = None
    if info.family == "mobilenet_v2":
        form = "reference"
    elif not info.foldable:
        if form not in ("auto", "reference"):
            raise UsageError(f"{model_name} has no folded TFLite form yet (the fold knows only the torchvision-style "
                             f"ShuffleNets); use --form reference (or auto, which exports the reference form for it)")
        if form == "auto":
            note = f"note: {model_name} has no folded form yet; exporting the reference form"
        form = "reference"
    if batch != 1 and form != "reference":
        raise UsageError("the folded TFLite forms are built for batch 1; use --form reference for --batch > 1")
    if layout == "nchw" and form != "reference":
        raise UsageError("the folded TFLite forms are NHWC (what LiteRT and Android expect); use --layout nhwc or --form reference")
    out_path = Path(out)
    check_writable(out_path)
    pre = Preprocess.for_size(input_size)
    p = progress(show_progress)
    if note:
        p.log(note)
    images = None
    if precision == "int8":
        with p.step("loading calibration images"):
            images = calibration_set(calib, pre)
    ref = load_model(model_name, weights, seed=seed, warn=weights is None)
    gen = torch.Generator().manual_seed(0)
    x_nchw = torch.randn(batch, 3, input_size, input_size, generator=gen)
    to_layout = (lambda a: np.ascontiguousarray(a.transpose(0, 2, 3, 1))) if layout == "nhwc" else (lambda a: a)
    x = torch.from_numpy(to_layout(x_nchw.numpy()))
    torch_form = ref if form == "reference" else fold(ref, "transpose", slice_halves=True, avgpool_as_conv=True)
    wrapped = _nhwc(torch_form) if layout == "nhwc" else torch_form.eval()
    quantizer = None
    sim = None
    step = "converting with litert-torch" + (" (int8: PT2E calibration first)" if precision == "int8" else "")
    with p.step(f"{model_name}: {step}"):
        if precision == "int8":
            assert images is not None
            sim, quantizer = pt2e_quantize(wrapped, x, to_layout(images.images))
            base = convert(sim, x, quantizer)
        else:
            base = convert(wrapped, x)
    # Check inputs: random normal images in the model's float domain.
    chk = to_layout(torch.randn(N_CHECK, 3, input_size, input_size, generator=gen).numpy()) if batch == 1 else None
    recipes = {"reference": [None], "delegate": ["delegate"], "cpu": list(CPU_RECIPES), "auto": ["delegate", *CPU_RECIPES]}[form]
    candidates: dict[str, bytes] = {}
    pass_reports: dict[str, list[dict[str, Any]]] = {}
    with p.step("graph passes (shuffle path, max-pool padding, I/O types)"):
        for r in recipes:
            key = r or "reference"
            candidates[key], pass_reports[key] = apply_passes(base, r, io, precision == "fp16")
            for rep in pass_reports[key]:
                if rep.get("pass") == "shuffle_path" and rep["rewritten"] == 0 and info.family != "mobilenet_v2":
                    raise EdgeError(f"shuffle_path found no shuffle region to rewrite in {model_name}: {rep['skipped'][:1]}")
    timings = None
    chosen = next(iter(candidates))
    if len(candidates) > 1:
        with p.step(f"timing {len(candidates)} candidate graphs on LiteRT ({threads} thread(s))"):
            timings = time_tflite(candidates, to_layout(x_nchw.numpy()[:1]), threads)
        chosen = min(timings["median_ms"], key=timings["median_ms"].get)
        timings["chosen"] = chosen
    final = candidates[chosen]
    if keep_candidates is not None:
        kd = Path(keep_candidates)
        kd.mkdir(parents=True, exist_ok=True)
        for k, b in candidates.items():
            with atomic_path(kd / f"{out_path.stem}.{k}.tflite") as tmp:
                tmp.write_bytes(b)
    checks = _check(final, base, ref, sim, chk, to_layout, precision, io, x_nchw_chk=None)
    with atomic_path(out_path) as tmp:
        tmp.write_bytes(final)
    from shufflenet_edge.export.inspect import inspect_tflite

    g = inspect_tflite(out_path, analyze_gpu=True)
    chosen_form = "reference" if chosen == "reference" else ("delegate" if chosen == "delegate" else "cpu")
    sidecar = {
        "format": "tflite",
        "path": str(out_path),
        "model": model_name,
        "num_classes": int(g["outputs"][0]["shape"][-1]),
        "weights": {"path": str(weights), "sha256": file_sha256(weights)} if weights else None,
        "random_weights": weights is None,
        "seed": seed if weights is None else None,
        "precision": precision,
        "form": chosen_form,
        "recipe": chosen,
        "input": {**g["inputs"][0], "layout": layout},
        "output": g["outputs"][0],
        "preprocess": pre.to_dict(),
        "labels": None,
        "calibration": images.source if images is not None else None,
        "quantization_scheme": "PT2E static, per-channel symmetric int8 weights, int8 activations" if precision == "int8" else None,
        "checks": checks,
        "form_timings": timings,
        "passes": pass_reports[chosen],
        "tools": tool_versions("litert-torch", "ai-edge-litert", "torchao"),
        "graph": {k: g[k] for k in ("ops", "op_histogram", "data_movement_ops", "max_rank", "xnnpack_partitions", "quantize_ops", "size_bytes", "gpu_compatibility")},
    }
    embed_identity(out_path, sidecar)  # the artifact says what it is even without its sidecar
    sidecar["graph"]["size_bytes"] = out_path.stat().st_size
    write_sidecar(out_path, sidecar)
    return sidecar


def _check(final: bytes, base: bytes, ref: nn.Module, sim: Any, chk: np.ndarray | None, to_layout: Any,
           precision: str, io: str, x_nchw_chk: Any) -> dict[str, Any]:
    """Prove the artifact: fp32 vs PyTorch; int8 vs the PT2E simulation and vs the unpassed graph."""
    if chk is None:
        return {"skipped": "checks run for batch 1 only"}
    out: dict[str, Any] = {"inputs": len(chk)}
    got = _run(final, chk)
    if precision in ("fp32", "fp16"):
        with torch.no_grad():
            want = ref(torch.from_numpy(np.ascontiguousarray(chk.transpose(0, 3, 1, 2)) if chk.shape[-1] == 3 else torch.from_numpy(chk))).numpy()
        err = float(np.abs(got - want).max())
        scale = max(1.0, float(np.abs(want).max()))  # float32 rounding grows with the logits' size
        tol = (1e-4 if precision == "fp32" else 0.05) * scale
        out.update({"vs_torch_max_abs_error": err, "tolerance": tol,
                    "top1_agreement": float((got.argmax(1) == want.argmax(1)).mean())})
        if err > tol:
            raise EdgeError(f"TFLite {precision} disagrees with PyTorch: max abs logit error {err:.3g} > {tol:.3g} on {len(chk)} inputs")
        return out
    # int8: the passes must not change a single value (data movement only).
    before = _run(base, chk, raw=True)
    after_raw = _run(final, chk, raw=io == "int8")
    if io == "int8":
        moved = int(np.abs(before.astype(np.int32) - after_raw.astype(np.int32)).max())
    else:
        moved = None
    with torch.no_grad():
        want = torch.cat([sim(torch.from_numpy(chk[i : i + 1])) for i in range(len(chk))]).numpy()
    m = _tflite_model_from_bytes(final)
    scale = _output_scale(m)
    steps = float(np.abs(got - want).max() / scale) if scale else None
    out.update({"passes_max_int8_change": moved, "output_scale": scale,
                "vs_pt2e_simulation_max_steps": steps,
                "top1_agreement_vs_simulation": float((got.argmax(1) == want.argmax(1)).mean())})
    if moved not in (None, 0):
        raise EdgeError(f"graph passes changed int8 outputs by up to {moved} steps: a pass is not exact")
    # The converter's int8 kernels round differently from the float simulation (fixed-point
    # requantization): a step or two at the output is expected; far more means a broken conversion.
    out["within_2_steps_fraction"] = float((np.abs(got - want) / scale <= 2.0 + 1e-3).mean()) if scale else None
    if out["within_2_steps_fraction"] is not None and out["within_2_steps_fraction"] < 0.5:
        raise EdgeError(f"int8 TFLite differs from the PT2E simulation: only {out['within_2_steps_fraction']:.0%} of logits "
                        f"within 2 output quantization steps (worst {steps:.1f} steps)")
    return out


def _tflite_model_from_bytes(buf: bytes) -> Any:
    from ai_edge_litert import schema_py_generated as schema

    return schema.ModelT.InitFromPackedBuf(buf, 0)


def _output_scale(m: Any) -> float | None:
    sg = m.subgraphs[0]
    # The scale of the last int8 tensor before any float output conversion.
    for op in reversed(sg.operators):
        for o in op.outputs:
            t = sg.tensors[o]
            if t.quantization is not None and t.quantization.scale is not None and len(t.quantization.scale) == 1 and t.type == 9:
                return float(t.quantization.scale[0])
    return None
