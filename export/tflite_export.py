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
cpu recipes here; ``auto`` times delegate, the cpu recipes and the reference form (converted in a child process
beside the folded one: export/candidate_worker.py) and applies the rule of export/timing.py. The torch-level form
is the graph-level fold (shufflenet_edge.graph_fold) of any module: registry names and user modules
(`module=`) take the same path. MobileNetV2 (no shuffle) exports its reference form.

Outputs: every output of the module (tuples of feature maps too); rank-4 outputs are NHWC with
``layout="nhwc"`` (the sidecar's ``outputs`` says each one's layout).
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
from shufflenet_edge.graph_fold import fold_graph
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


def _nhwc(model: nn.Module, outputs: list[int] | None = None) -> nn.Module:
    import litert_torch

    return litert_torch.to_channel_last_io(model, args=[0], outputs=outputs or None).eval()


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


def _time_candidates(models: dict[str, bytes], x: np.ndarray, threads: int, tune_on: str,
                     tune_options: Any, tune_rounds: int | None = None, tune_runs: int | None = None) -> dict[str, Any]:
    """Interleaved round medians of the candidate graphs: in this process (`local`) or on a target through the
    bench machinery (`ssh://...`)."""
    import tempfile

    from shufflenet_edge.export.timing import TUNE_ROUNDS, TUNE_RUNS, time_on_target

    rounds, runs = (tune_rounds or TUNE_ROUNDS), (tune_runs or TUNE_RUNS)
    if tune_on == "local":
        t = time_tflite(models, x, threads, rounds=rounds, runs=runs)
        from shufflenet_edge.runtimes.runner import environment

        t["environment"] = environment()
        return t
    with tempfile.TemporaryDirectory() as td:
        paths = {}
        for k, b in models.items():
            paths[k] = str(Path(td) / f"candidate_{k}.tflite")
            Path(paths[k]).write_bytes(b)
        return time_on_target(paths, tune_on, threads, rounds=rounds, runs=runs, ssh_options=tune_options)


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
    keep_float: list[str] | None = None,
    calib_method: str | None = None,
    calib_images: int | None = None,
    int8_weights: str | None = None,
    gate: Any = None,
    module: nn.Module | None = None,
    example_input: Any = None,
    source: dict[str, Any] | None = None,
    preprocess: Preprocess | None = None,
    tune_on: str = "local",
    tune_options: Any = None,
    tune_rounds: int | None = None,
    tune_runs: int | None = None,
    tune_delegate: str = "cpu",
) -> dict[str, Any]:
    """Export `model_name` to TFLite at `out` (+ sidecar). `keep_candidates`: a folder that also receives
    every candidate graph the form considered (``<stem>.<recipe>.tflite``), for side-by-side use.

    int8 options (issue 15): `keep_float` unit names / globs that stay float; `calib_method` minmax |
    histogram (default) | percentile; `calib_images` how many calibration images; `int8_weights` per-channel
    (default) | per-tensor; `gate` a parity `Thresholds` the artifact must meet against the float model."""
    info = get_info(model_name) if module is None else None
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
    if info is not None and info.family == "mobilenet_v2":
        form = "reference"
    if batch != 1 and form != "reference":
        raise UsageError("the folded TFLite forms are built for batch 1; use --form reference for --batch > 1")
    if layout == "nchw" and form != "reference":
        raise UsageError("the folded TFLite forms are NHWC (what LiteRT and Android expect); use --layout nhwc or --form reference")
    out_path = Path(out)
    check_writable(out_path)
    pre = preprocess or Preprocess.for_model(model_name if module is None else None, input_size)
    p = progress(show_progress)
    if note:
        p.log(note)
    images = None
    from shufflenet_edge.export.int8_options import check_choices, module_paths, resolve_keep_float

    check_choices("tflite", calib_method, int8_weights)
    if precision != "int8" and (keep_float or calib_method or calib_images or int8_weights):
        raise UsageError("--keep-float, --calib-method, --calib-images and --int8-weights are for --int8 exports")
    if precision == "int8":
        with p.step("loading calibration images"):
            images = calibration_set(calib, pre, **({"limit": calib_images} if calib_images else {}))
    if module is None:
        ref = load_model(model_name, weights, seed=seed, warn=weights is None)
    else:
        ref = module.eval()
    kept = resolve_keep_float(ref, keep_float)
    gen = torch.Generator().manual_seed(0)
    x_nchw = torch.randn(batch, 3, input_size, input_size, generator=gen)
    if example_input is not None:
        if isinstance(example_input, (tuple, list)):
            if len(example_input) != 1:
                raise UsageError("TFLite export takes models with one input")
            example_input = example_input[0]
        x_nchw = example_input
        batch = int(x_nchw.shape[0])
    if images is not None and tuple(images.images.shape[1:]) != tuple(x_nchw.shape[1:]):
        images = _resize_images(images, tuple(x_nchw.shape[1:]))
    to_layout = (lambda a: np.ascontiguousarray(a.transpose(0, 2, 3, 1))) if layout == "nhwc" else (lambda a: a)
    x = torch.from_numpy(to_layout(x_nchw.numpy()))
    with torch.no_grad():
        ref_outs = _flat_outputs(ref(x_nchw))
    rank4 = [k for k, t in enumerate(ref_outs) if t.dim() == 4]
    out_layouts = [("nhwc" if layout == "nhwc" and t.dim() == 4 else ("nchw" if t.dim() == 4 else None)) for t in ref_outs]
    quantizer = None
    sim = None

    def quant(folded: bool) -> dict[str, Any] | None:
        return None if precision != "int8" else {
            "calib_method": calib_method or "histogram", "per_channel": (int8_weights or "per-channel") == "per-channel",
            "keep_float": module_paths(ref, kept, folded=folded)}

    calib_l = to_layout(images.images) if images is not None else None
    # --form auto: the reference form (the graph as written) is a candidate too, converted in a child process
    # beside this one when there are CPUs for it (export/candidate_worker.py; the same bytes either way). It
    # starts first, so its interpreter start-up overlaps the fold.
    ref_job = None
    if form == "auto":
        from shufflenet_edge.export.candidate_worker import start_reference

        ref_job = start_reference(ref, rank4 if layout == "nhwc" else None, layout, x, calib_l, quant(False))
    threads_before = torch.get_num_threads()
    if ref_job is not None:
        torch.set_num_threads(1)  # one CPU each while the child converts (more threads than CPUs only wait)
    try:  # the child never outlives this export (an error, Ctrl-C)
        fold_report = None
        step = "converting with litert-torch" + (" (int8: PT2E calibration first)" if precision == "int8" else "")
        try:
            if form == "reference":
                torch_form = ref
            else:
                torch_form, fold_report = fold_graph(ref, (x_nchw,), form="transpose", split="slice", int8_friendly=True)
            wrapped = _nhwc(torch_form, rank4 if layout == "nhwc" else None) if layout == "nhwc" else torch_form.eval()
            with p.step(f"{model_name}: {step}"):
                if precision == "int8":
                    sim, quantizer = pt2e_quantize(wrapped, x, calib_l, **quant(form != "reference"))  # type: ignore[arg-type]
                    base = convert(sim, x, quantizer)
                else:
                    base = convert(wrapped, x)
        finally:
            torch.set_num_threads(threads_before)
        # Check inputs: random normal images in the model's float domain.
        chk = to_layout(torch.randn(N_CHECK, *x_nchw.shape[1:], generator=gen).numpy()) if batch == 1 else None
        recipes = {"reference": [None], "delegate": ["delegate"], "cpu": list(CPU_RECIPES), "auto": ["delegate", *CPU_RECIPES]}[form]
        candidates: dict[str, bytes] = {}
        pass_reports: dict[str, list[dict[str, Any]]] = {}
        with p.step("graph passes (shuffle path, max-pool padding, I/O types)"):
            for r in recipes:
                key = r or "reference"
                candidates[key], pass_reports[key] = apply_passes(base, r, io, precision == "fp16")
                for rep in pass_reports[key]:
                    if (rep.get("pass") == "shuffle_path" and rep["rewritten"] == 0 and fold_report is not None
                            and fold_report.counts()["data_path"] > 0):
                        raise EdgeError(f"shuffle_path found no shuffle region to rewrite in {model_name}: {rep['skipped'][:1]}")
        timings = None
        chosen = next(iter(candidates))
        base_of = {k: base for k in candidates}
        sim_of = {k: sim for k in candidates}
        if form == "auto":
            # The reference form (the graph as written, converted the same way) is a candidate too: the folded
            # forms must earn their place on the target (issue 13).
            ref_wrapped = _nhwc(ref, rank4 if layout == "nhwc" else None) if layout == "nhwc" else ref.eval()
            sim_r = None
            with p.step(f"{model_name}: converting the reference form too (a candidate of --form auto)"):
                base_r = ref_job.result() if ref_job is not None else None
                if ref_job is not None and base_r is None:
                    p.log(f"reference candidate: the child conversion failed ({(((ref_job.error or '').strip().splitlines()) or ['?'])[-1][:160]}); "
                          "converting it here")
                if base_r is None:  # no child, or it failed: convert here
                    if precision == "int8":
                        sim_r, q_r = pt2e_quantize(ref_wrapped, x, calib_l, **quant(False))  # type: ignore[arg-type]
                        base_r = convert(sim_r, x, q_r)
                    else:
                        base_r = convert(ref_wrapped, x)
            candidates["reference"], pass_reports["reference"] = apply_passes(base_r, None, io, precision == "fp16")
            base_of["reference"], sim_of["reference"] = base_r, sim_r
    finally:
        if ref_job is not None:
            ref_job.cancel()
    if len(candidates) > 1:
        from shufflenet_edge.export.timing import TUNE_ROUNDS, decide

        where = "LiteRT here" if tune_on == "local" else tune_on
        with p.step(f"timing {len(candidates)} candidate graphs on {where} ({threads} thread(s), "
                    f"{tune_rounds or TUNE_ROUNDS} rounds)"):
            timings = _time_candidates(candidates, to_layout(x_nchw.numpy()[:1]), threads, tune_on, tune_options,
                                       tune_rounds, tune_runs)
        # The preferred form: `delegate` (fewest ops, rank 4) when the artifact is meant for a GPU/NPU delegate,
        # else the simplest folded CPU recipe.
        preferred = "delegate" if tune_delegate == "gpu" and "delegate" in candidates else (
            "cpu" if "cpu" in candidates else next(iter(candidates)))
        decision = decide(timings["round_medians_ms"], preferred=preferred)
        chosen = decision["chosen"]
        timings.update(decision)
        timings["target"] = tune_on
        p.log(f"form: {decision['verdict']}")
    base, sim = base_of[chosen], sim_of[chosen]
    if sim is None and precision == "int8":  # the reference form won and was converted in the child: its
        # simulation for the checks (calibration is deterministic: the same observers see the same images)
        torch.set_num_threads(1)  # as the child calibrated
        try:
            sim, _ = pt2e_quantize(ref_wrapped, x, calib_l, **quant(False))  # type: ignore[arg-type]
        finally:
            torch.set_num_threads(threads_before)
    final = candidates[chosen]
    if keep_candidates is not None:
        kd = Path(keep_candidates)
        kd.mkdir(parents=True, exist_ok=True)
        for k, b in candidates.items():
            with atomic_path(kd / f"{out_path.stem}.{k}.tflite") as tmp:
                tmp.write_bytes(b)
    if len(ref_outs) == 1 and ref_outs[0].dim() == 2:
        checks = _check(final, base, ref, sim, chk, to_layout, precision, io, x_nchw_chk=None)
    else:
        checks = _check_outputs(final, base, ref, sim, chk, precision, io, out_layouts, layout)
    if precision == "int8" and batch == 1 and len(ref_outs) == 1 and ref_outs[0].dim() == 2:
        assert images is not None
        with p.step("int8 loss against the float model"):
            checks["int8_loss"] = _int8_loss(final, ref, sim, images, to_layout, layout, gate)
    with atomic_path(out_path) as tmp:
        tmp.write_bytes(final)
    from shufflenet_edge.export.inspect import inspect_tflite

    g = inspect_tflite(out_path, analyze_gpu=True)
    chosen_form = "reference" if chosen == "reference" else ("delegate" if chosen == "delegate" else "cpu")
    sidecar = {
        "format": "tflite",
        "path": str(out_path),
        "model": model_name,
        "num_classes": int(g["outputs"][0]["shape"][-1]) if len(ref_outs) == 1 and ref_outs[0].dim() == 2 else None,
        "weights": {"path": str(weights), "sha256": file_sha256(weights)} if weights else None,
        "random_weights": weights is None and module is None,
        "seed": seed if weights is None and module is None else None,
        "source": source or {"kind": "registry", "name": model_name},
        "precision": precision,
        "form": chosen_form,
        "recipe": chosen,
        "input": {**g["inputs"][0], "layout": layout},
        "output": g["outputs"][0],
        "outputs": [{**o, "layout": lay, "torch_shape": list(t.shape)}
                    for o, lay, t in zip(_signature_outputs(final, g["outputs"]), out_layouts, ref_outs)],
        "preprocess": pre.to_dict(),
        "labels": None,
        "calibration": images.source if images is not None else None,
        "quantization_scheme": (f"PT2E static, {int8_weights or 'per-channel'} symmetric int8 weights, int8 activations "
                                f"({calib_method or 'histogram'} calibration)") if precision == "int8" else None,
        "calibration_method": (calib_method or "histogram") if precision == "int8" else None,
        "keep_float": kept if precision == "int8" else None,
        "checks": checks,
        "form_timings": timings,
        "passes": pass_reports[chosen],
        "fold": fold_report.to_dict() if fold_report is not None else {"form": "reference", "counts": None},
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
    # requantization): a step or two at the output is expected. Far more is recorded, not refused: on a model
    # that quantizes badly (issue 15: a torchvision-made checkpoint at 19 dB) the rounding differences grow through
    # depth, and the loss is the quantization's; `int8_loss` says how far both are from float.
    out["within_2_steps_fraction"] = float((np.abs(got - want) / scale <= 2.0 + 1e-3).mean()) if scale else None
    return out


def _int8_loss(final: bytes, ref: nn.Module, sim: Any, images: Any, to_layout: Any, layout: str, gate: Any) -> dict[str, Any]:
    """The artifact and the PT2E simulation against the float model on the calibration images; per-layer SQNR
    when below the default int8 gate; the user's gate (raises, nothing written)."""
    import tempfile

    from shufflenet_edge.export import int8_report

    xs = np.ascontiguousarray(images.images[: int8_report.N_LOSS_INPUTS], dtype=np.float32)
    xl = to_layout(xs)
    got = _run(final, xl)
    with torch.no_grad():
        want = ref(torch.from_numpy(xs)).numpy()
        sim_out = torch.cat([sim(torch.from_numpy(np.ascontiguousarray(xl[i : i + 1]))) for i in range(len(xl))]).numpy()
    rep = int8_report.loss_report(got, want, sim_out, f"{len(xs)} calibration images")
    if rep["below_default_gate"] or (gate is not None and gate.any()):
        with tempfile.NamedTemporaryFile(suffix=".tflite") as f:
            f.write(final)
            f.flush()
            pl = int8_report.where_loss_starts(f.name, ref, xs, layout)
        if pl is not None:
            rep = int8_report.loss_report(got, want, sim_out, f"{len(xs)} calibration images", pl)
    int8_report.apply_gate(rep, got, want, gate)
    return rep


def _flat_outputs(y: Any) -> list[torch.Tensor]:
    return [t for t in torch.utils._pytree.tree_leaves(y) if isinstance(t, torch.Tensor)]


def _resize_images(images: Any, chw: tuple[int, ...]) -> Any:
    """Calibration images at the model's own (possibly non-square) input size: bilinear resize, stated."""
    import dataclasses

    t = torch.nn.functional.interpolate(torch.from_numpy(np.ascontiguousarray(images.images, dtype=np.float32)),
                                        size=tuple(int(v) for v in chw[1:]), mode="bilinear", align_corners=False)
    new = dataclasses.replace(images, images=t.numpy()) if dataclasses.is_dataclass(images) else images
    if dataclasses.is_dataclass(images) and hasattr(images, "source"):
        new = dataclasses.replace(new, source=f"{images.source}, resized to {chw[1]}x{chw[2]} (bilinear)")
    return new


def run_tflite_all(buf_or_path: bytes | str, x: np.ndarray, raw: bool = False) -> list[np.ndarray]:
    """Every output of a .tflite in signature order (output_0, output_1, ...), one input at a time; float
    unless `raw` (then the stored integers of quantized outputs)."""
    from ai_edge_litert.interpreter import Interpreter

    kw = {"model_content": buf_or_path} if isinstance(buf_or_path, bytes) else {"model_path": buf_or_path}
    it = Interpreter(num_threads=1, **kw)
    it.allocate_tensors()
    inp = it.get_input_details()[0]
    outs_d = _ordered_output_details(it)
    res: list[list[np.ndarray]] = [[] for _ in outs_d]
    for i in range(len(x)):
        xi = x[i : i + 1].astype(np.float32)
        if inp["dtype"] in (np.int8, np.uint8):
            s, z = inp["quantization"]
            info = np.iinfo(inp["dtype"])
            xi = np.clip(np.round(xi / s) + z, info.min, info.max).astype(inp["dtype"])
        it.set_tensor(inp["index"], xi)
        it.invoke()
        for k, d in enumerate(outs_d):
            y = it.get_tensor(d["index"]).copy()
            if not raw and d["dtype"] in (np.int8, np.uint8):
                s, z = d["quantization"]
                y = (y.astype(np.float32) - z) * s
            res[k].append(y)
    return [np.concatenate(r) for r in res]


def _ordered_output_details(it: Any) -> list[dict[str, Any]]:
    details = it.get_output_details()
    sigs = it.get_signature_list()
    if sigs:
        key = next(iter(sigs))
        names = sigs[key]["outputs"]
        runner = it.get_signature_runner(key)
        idx = runner.get_output_details()
        order = sorted(names, key=lambda n: int(n.rsplit("_", 1)[-1]) if n.rsplit("_", 1)[-1].isdigit() else 0)
        by_index = {d["index"]: d for d in details}
        return [by_index[idx[n]["index"]] for n in order]
    return list(details)


def _signature_outputs(buf: bytes, outs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The inspect rows of the outputs, reordered to signature order."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=buf)
    ordered = _ordered_output_details(it)
    by_name = {o.get("name"): o for o in outs}
    rows = []
    for d in ordered:
        row = by_name.get(d["name"]) or {"name": d["name"], "shape": [int(v) for v in d["shape"]]}
        rows.append(row)
    return rows


def _check_outputs(final: bytes, base: bytes, ref: nn.Module, sim: Any, chk: np.ndarray | None, precision: str,
                   io: str, layouts: list[str | None], in_layout: str = "nhwc") -> dict[str, Any]:
    """Every output: fp32 within 1e-4 of PyTorch (relative to its largest value); int8: the passes move no
    value, and the artifact is within a few output steps of the PT2E simulation. Per output."""
    if chk is None:
        return {"skipped": "checks run for batch 1 only"}
    nchw = lambda a: np.ascontiguousarray(a.transpose(0, 3, 1, 2))  # noqa: E731
    x_nchw = torch.from_numpy(nchw(chk)) if in_layout == "nhwc" else torch.from_numpy(chk)
    gots = run_tflite_all(final, chk)
    gots = [nchw(g) if lay == "nhwc" else g for g, lay in zip(gots, layouts)]
    per: list[dict[str, Any]] = []
    if precision in ("fp32", "fp16"):
        with torch.no_grad():
            wants = [torch.cat(v).numpy() for v in zip(*[_flat_outputs(ref(x_nchw[i : i + 1])) for i in range(len(chk))])]
        for k, (got, want) in enumerate(zip(gots, wants)):
            if got.shape != want.shape:
                raise EdgeError(f"TFLite output {k} has shape {got.shape}, PyTorch {want.shape}")
            err = float(np.abs(got - want).max())
            tol = (1e-4 if precision == "fp32" else 0.05) * max(1.0, float(np.abs(want).max()))
            per.append({"output": k, "max_abs_error": err, "tolerance": tol})
            if not err <= tol:
                raise EdgeError(f"TFLite {precision} disagrees with PyTorch on output {k}: max abs error {err:.3g} > {tol:.3g} "
                                f"on {len(chk)} inputs")
        return {"inputs": len(chk), "per_output": per, "vs_torch_max_abs_error": max(p["max_abs_error"] for p in per)}
    before = run_tflite_all(base, chk, raw=True)
    after = run_tflite_all(final, chk, raw=True)
    moved = max(int(np.abs(b.astype(np.int64) - a.astype(np.int64)).max()) for b, a in zip(before, after)) if io == "int8" else None
    if moved not in (None, 0):
        raise EdgeError(f"graph passes changed int8 outputs by up to {moved} steps: a pass is not exact")
    with torch.no_grad():
        wants = [torch.cat(v).numpy() for v in zip(*[_flat_outputs(sim(torch.from_numpy(chk[i : i + 1]))) for i in range(len(chk))])]
    for k, (got, want) in enumerate(zip(run_tflite_all(final, chk), wants)):
        scale = float(np.abs(want).max()) / 127.0 or 1.0
        per.append({"output": k, "max_abs_error_vs_simulation": float(np.abs(got - want).max()),
                    "within_2_steps_fraction": float((np.abs(got - want) / scale <= 2.0 + 1e-3).mean())})
    return {"inputs": len(chk), "passes_max_int8_change": moved, "per_output": per}


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
