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
cpu recipes here; ``blocks`` is a ShuffleNetV2 on planned channel orders (no shuffle left); ``auto`` times
delegate and the cpu recipes, all from one conversion of the fold, and applies the rule of export/timing.py. The
torch-level form is the graph-level fold (shufflenet_edge.graph_fold) of any module: registry names and user modules
(`module=`) take the same path. MobileNetV2 (no shuffle) exports its reference form.

Outputs: every output of the module (tuples of feature maps too); rank-4 outputs are NHWC with
``layout="nhwc"`` (the sidecar's ``outputs`` says each one's layout).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import logging
import os
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from shufflenet_edge.export.calibration import calibration_set
from shufflenet_edge.export.common import (
    atomic_path,
    embed_identity,
    progress,
    tool_versions,
    write_sidecar,
)
from shufflenet_edge.export.config import ExportConfig
from shufflenet_edge.export import verify
from shufflenet_edge.export.pipeline import Job, Prepared, failure_line
from shufflenet_edge.export.tflite_quantize import pt2e_quantize
from torch import nn

from shufflenet_edge.errors import EdgeError, InternalError, UsageError, eval_mode
from shufflenet_edge.graph_fold import fold_graph
from shufflenet_edge.models.weights import file_sha256

CPU_RECIPES = ("cpu", "reference3")


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
    from shufflenet_edge.export.passes import (concat_fanin, fp16_weights, io_types, maxpool_pad, mean_layout,
                                               resize_nearest, shuffle_path)
    from shufflenet_edge.export.passes.graph import Graph

    g = Graph(buf)
    reports = []
    if recipe is not None:
        if recipe != "blocks":  # the planned channel order has no shuffle left to rewrite
            reports.append(shuffle_path.run(g, recipe))
        else:  # and no transpose but the head's, before its global average pool
            reports.append(mean_layout.run(g))
        reports.append(maxpool_pad.run(g))
        reports.append(resize_nearest.run(g))
        reports.append(concat_fanin.run(g))
    if io_type != "int8" and not fp16 and _has_int8_io(g):
        reports.append(io_types.run(g, io_type))
    if fp16:
        reports.append(fp16_weights.run(g))
    return g.finish(), reports


def _has_int8_io(g: Any) -> bool:
    return any(g.dtype(int(i)) == np.int8 for i in list(g.sg.inputs) + list(g.sg.outputs))


def _write_temp(folder: Path, key: str, buf: bytes) -> str:
    path = folder / f"candidate_{key}.tflite"
    path.write_bytes(buf)
    return str(path)


@dataclasses.dataclass
class _Job(Job):
    """One TFLite export's state, filled stage by stage (export_tflite runs them in order).

    Graphs: `bases` holds each conversion before the passes ("folded": the graph-level fold converted; "reference":
    the module as written), `candidates` the graphs after a recipe's passes, `base_of` which base each candidate
    was built on (a recipe falls back to the reference conversion when the fold or its conversion failed)."""

    form: str = "auto"
    images: Any = None  # calibration set (int8), at the model's input size
    kept: list[str] = dataclasses.field(default_factory=list)  # --keep-float units
    x_nchw: Any = None
    x: Any = None  # the example input in the artifact's layout
    chk: np.ndarray | None = None  # check inputs in the artifact's layout (batch 1 only)
    ref_outs: list[torch.Tensor] = dataclasses.field(default_factory=list)
    out_layouts: list[str | None] = dataclasses.field(default_factory=list)
    calib_l: np.ndarray | None = None
    fold_report: Any = None
    torch_form: Any = None  # the graph-level fold of the module (what the folded base was converted from)
    blocks_form: Any = None  # the module on planned channel orders (what the blocks base was converted from)
    fold_error: str | None = None  # why the graph-level fold is missing (its failure, or the converter's refusal)
    reference_error: str | None = None  # why the module as written did not convert (the converter's refusal)
    bases: dict[str, bytes] = dataclasses.field(default_factory=dict)
    sims: dict[str, Any] = dataclasses.field(default_factory=dict)  # per base: its PT2E simulation (int8)
    candidates: dict[str, bytes] = dataclasses.field(default_factory=dict)
    pass_reports: dict[str, list[dict[str, Any]]] = dataclasses.field(default_factory=dict)
    base_of: dict[str, str] = dataclasses.field(default_factory=dict)
    checks_of: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    expected: Any = None  # PyTorch's outputs on the check inputs and its float noise (computed once)
    unfolded: bytes | None = None  # the reference conversion after its I/O passes: what "exact" is measured against
    timings: dict[str, Any] | None = None
    chosen: str = ""
    int8_inputs: Any = None  # the int8 check (int8_report.Check), made once

    @property
    def precision(self) -> str:
        return self.cfg.precision

    @property
    def layout(self) -> str:
        return self.cfg.tflite_layout

    def to_layout(self, a: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(a.transpose(0, 2, 3, 1)) if self.layout == "nhwc" else a

    def rank4(self) -> list[int] | None:
        return [k for k, t in enumerate(self.ref_outs) if t.dim() == 4] if self.layout == "nhwc" else None

    def quant(self, folded: bool) -> dict[str, Any] | None:
        from shufflenet_edge.export.int8_options import module_paths

        q = self.cfg.int8
        return None if q is None else {"calib_method": q.method_for("tflite"), "per_channel": q.per_channel,
                                       "keep_float": module_paths(self.prep.module, self.kept, folded=folded)}

    def wrapped(self, module: nn.Module) -> nn.Module:
        return _nhwc(module, self.rank4()) if self.layout == "nhwc" else eval_mode(module)

    def lower(self, module: nn.Module, folded: bool) -> tuple[bytes, Any]:
        """litert-torch's conversion of `module` (PT2E int8 first when asked): (flatbuffer, simulation or None)."""
        wrapped = self.wrapped(module)
        if self.precision != "int8":
            return convert(wrapped, self.x), None
        sim, quantizer = pt2e_quantize(wrapped, self.x, self.calib_l, **self.quant(folded))  # type: ignore[arg-type]
        return convert(sim, self.x, quantizer), sim

    def finish(self, base: bytes, recipe: str | None) -> tuple[bytes, list[dict[str, Any]]]:
        return apply_passes(base, recipe, self.cfg.tflite_io, self.precision == "fp16")


def export_tflite(prep: Prepared, out_path: Path, cfg: ExportConfig) -> dict[str, Any]:
    """The TFLite backend of the pipeline (export/pipeline.py): `prep`'s module to `out_path` as `cfg` says;
    returns the sidecar. `cfg.keep_candidates`: a folder that also receives every candidate graph the form
    considered (``<stem>.<recipe>.tflite``), for side-by-side use."""
    if prep.qat:
        return _export_qat(prep, out_path, cfg)
    form = cfg.form
    if prep.family == "mobilenet_v2" and form != "reference":
        form = "reference"  # no channel shuffle to fold: the graph as written is the only candidate
    job = _Job(prep, cfg, out_path, progress(cfg.progress), form=form)
    _inputs(job)
    _candidates(job)
    _check_candidates(job)
    _select(job)
    checks = _verify_stage(job)
    return _write(job, checks)


def _inputs(job: _Job) -> None:
    """Calibration images, the example and check inputs, and the reference outputs' ranks and layouts."""
    from shufflenet_edge.export.int8_options import resolve_keep_float

    q, prep = job.cfg.int8, job.prep
    if q is not None:
        with job.p.step("loading calibration images"):
            job.images = calibration_set(q.calib, prep.preprocess, **({"limit": q.images} if q.images else {}))
    job.kept = resolve_keep_float(prep.module, list(q.keep_float) if q else None)
    if len(prep.example) != 1:
        raise UsageError("TFLite export takes models with one input")
    gen = torch.Generator().manual_seed(0)
    job.x_nchw = prep.example[0]
    torch.randn(*job.x_nchw.shape, generator=gen)  # the check inputs are the draws after the example's
    if job.images is not None and tuple(job.images.images.shape[1:]) != tuple(job.x_nchw.shape[1:]):
        job.images = _resize_images(job.images, tuple(job.x_nchw.shape[1:]))
    job.x = torch.from_numpy(job.to_layout(job.x_nchw.numpy()))
    with torch.no_grad():
        job.ref_outs = _flat_outputs(prep.module(job.x_nchw))
    job.out_layouts = [("nhwc" if job.layout == "nhwc" and t.dim() == 4 else ("nchw" if t.dim() == 4 else None))
                       for t in job.ref_outs]
    job.calib_l = job.to_layout(job.images.images) if job.images is not None else None
    if int(job.x_nchw.shape[0]) == 1:  # random normal images in the model's float domain
        job.chk = job.to_layout(torch.randn(verify.N_CHECK, *job.x_nchw.shape[1:], generator=gen).numpy())
    if q is not None and job.chk is not None:
        from shufflenet_edge.export import int8_report

        job.int8_inputs = int8_report.check_once(q, prep.preprocess, tuple(job.x_nchw.shape[1:]),
                                                 len(job.images.images), prep.module)


RECIPES = {"reference": [None], "delegate": ["delegate"], "cpu": list(CPU_RECIPES), "blocks": ["blocks"],
           "auto": ["delegate", *CPU_RECIPES]}


def _candidates(job: _Job) -> None:
    """Fold, convert (PT2E int8 first when asked) and apply each recipe's passes: every shuffle recipe is derived
    from one conversion of the graph-level fold (the TFLite passes), so --form auto costs one conversion. The module
    as written is converted only when the fold or its conversion failed (the recipes are then built on it: the
    passes rewrite shuffle regions by themselves) or when asked (--form reference); it is not a timed candidate
    otherwise: no measured model ran faster as written than folded (benchmarks/results/zoo.md, tflite_fold*.md),
    and its conversion costs as much as the fold's. The planned channel order (--form blocks) is a different graph
    and so a conversion of its own: asked for, not timed by auto (its gain over cpu measured 1-3% on V2 1.0x/2.0x
    fp32, a tie in int8, a loss at 0.5x: benchmarks/results/tflite_fold_blocks*.md). A recipe whose passes failed
    is dropped with the reason."""
    if job.form == "blocks":
        _convert_blocks(job)
    elif job.form != "reference":
        _convert_folded(job)
    if job.form == "reference" or ("folded" not in job.bases and any(r not in (None, "blocks")
                                                                       for r in RECIPES[job.form])):
        _reference_base(job)  # asked for, or the shuffle recipes are built on the graph as written instead
    if not job.bases and _reference_base(job) is None:
        raise _no_conversion(job)
    base = "folded" if "folded" in job.bases else "reference"
    with job.p.step("graph passes (shuffle path, max-pool padding, nearest upsampling, I/O types)"):
        for r in RECIPES[job.form]:
            on = "reference" if r is None else ("blocks" if r == "blocks" else base)
            if on in job.bases:
                _add_candidate(job, r or "reference", on, r)
        if job.form == "auto" and "reference" in job.bases:  # the fold failed: the graph as written competes
            _add_candidate(job, "reference", "reference", None)


def _add_candidate(job: _Job, key: str, base: str, recipe: str | None) -> None:
    if key in job.candidates:
        return
    try:
        job.candidates[key], job.pass_reports[key] = job.finish(job.bases[base], recipe)
        job.base_of[key] = base
    except Exception as e:  # noqa: BLE001  (our pass failed on this graph: the other candidates go on)
        job.drop(key, f"the {recipe or 'I/O'} graph passes failed: {failure_line(e)}")


def _convert_folded(job: _Job) -> None:
    """The graph-level fold, converted: `job.bases["folded"]`, or the reason it is missing in `job.fold_error`."""
    step = "converting with litert-torch" + (" (int8: PT2E calibration first)" if job.precision == "int8" else "")
    try:
        torch_form, job.fold_report = fold_graph(job.prep.module, (job.x_nchw,), form="transpose", split="slice",
                                                 int8_friendly=True)
        job.torch_form = torch_form
    except Exception as e:  # noqa: BLE001  (the fold is an optimization: the graph as written still converts)
        job.fold_error = f"the graph-level fold failed: {failure_line(e)}"
        job.drop("fold", job.fold_error)
        return
    with job.p.step(f"{job.prep.label}: {step}"):
        try:
            job.bases["folded"], job.sims["folded"] = job.lower(torch_form, folded=True)
        except Exception as e:  # noqa: BLE001  (the converter refused the folded graph, not the model)
            job.fold_error = f"litert-torch refused the folded graph: {failure_line(e)}"
            job.drop("fold", job.fold_error)


def _convert_blocks(job: _Job) -> None:
    """The planned channel order (shufflenet_edge.channel_plan: contiguous channel blocks, no transpose), converted:
    `job.bases["blocks"]`; a usage error for a model it is not built for (ShuffleNetV2 with torchvision's units)."""
    from shufflenet_edge.channel_plan import plan_v2, plannable

    why = plannable(job.prep.module)
    if why is not None:
        raise UsageError(f"--form blocks: {why}; use --form auto, cpu or delegate")
    job.blocks_form = plan_v2(job.prep.module)
    with job.p.step(f"{job.prep.label}: converting the planned channel order (blocks)"):
        try:
            job.bases["blocks"], job.sims["blocks"] = job.lower(job.blocks_form, folded=True)
        except Exception as e:  # noqa: BLE001  (an optimization: the graph as written still converts)
            job.drop("blocks", f"the planned channel order did not convert: {failure_line(e)}")


def _reference_base(job: _Job) -> bytes | None:
    """The module as written, converted (once); None when the converter refuses it (the reason is
    `job.reference_error`)."""
    if "reference" in job.bases or job.reference_error is not None:
        return job.bases.get("reference")
    with job.p.step(f"{job.prep.label}: converting the module as written (the reference form)"):
        try:
            job.bases["reference"], job.sims["reference"] = job.lower(job.prep.module, folded=False)
        except Exception as e:  # noqa: BLE001  (the converter's refusal of the user's graph: said, not raised here)
            job.reference_error = f"litert-torch could not convert the module as written: {failure_line(e)}"
            return None
    return job.bases["reference"]


def _no_conversion(job: _Job) -> Exception:
    """Nothing converted: the converter refused the model as written (the user's to act on), or our part failed."""
    if job.reference_error is not None and (job.fold_error is None or "refused" in job.fold_error):
        return EdgeError(job.reference_error + (f"; the folded graph: {job.fold_error}" if job.fold_error else ""))
    why = "; ".join(v for v in (job.fold_error, job.reference_error) if v) or "no candidate"
    return InternalError(f"no TFLite candidate of {job.prep.label} could be built: {why}")


def _check_candidates(job: _Job) -> None:
    """Every candidate's own check before the choice (export/verify.py): one that our fold or passes made wrong is
    dropped with the reason. Float: against PyTorch, and against the reference conversion when the distance is
    beyond PyTorch's own float noise (the converter's distance is reported, not refused). int8: the passes must
    move no stored value. An explicit --form left with nothing ships the reference conversion, said so."""
    unrunnable: BaseException | None = None  # the reference conversion's own failure to run
    for key in list(job.candidates):
        try:
            job.checks_of[key] = _verify(job, key)
        except InternalError as e:
            del job.candidates[key]
            job.drop(key, str(e).split(". This is a bug")[0])
        except Exception as e:  # noqa: BLE001  (LiteRT cannot run it: left out, as one that runs wrong would be)
            del job.candidates[key]
            if key == "reference":  # the converter's own graph: a folded candidate that runs may still ship
                unrunnable = e
                continue
            job.drop(key, f"the {key} candidate does not run on LiteRT: {failure_line(e)}")
    if not job.candidates and unrunnable is not None:
        raise _runtime_refuses(job, unrunnable) from unrunnable
    if not job.candidates and job.form != "reference":
        base = _reference_base(job)
        if base is None:
            raise _no_conversion(job)
        _add_candidate(job, "reference", "reference", None)
        if "reference" in job.candidates:
            try:
                job.checks_of["reference"] = _verify(job, "reference")
            except EdgeError:
                raise
            except Exception as e:  # noqa: BLE001  (the converter's own graph does not run: not ours to fix)
                raise _runtime_refuses(job, e) from e
    if not job.candidates:
        raise InternalError(f"every TFLite candidate of {job.prep.label} was left out: "
                            + "; ".join(f"{k}: {v}" for k, v in job.dropped.items()))


def _runtime_refuses(job: _Job, e: BaseException) -> EdgeError:
    """The converter's own graph of the module as written fails to run on LiteRT (seen: an int8 GATHER_ND whose
    indices LiteRT finds out of bounds, in the folded and the unfolded conversion alike): no form of it runs, so
    nothing is written."""
    return EdgeError(f"LiteRT could not run litert-torch's conversion of the module as written ({job.prep.label}): "
                     f"{failure_line(e)}; nothing was written (if litert-torch's own conversion of this model runs, "
                     "that is a bug in shufflenet-edge: please report it with the command)")


def _select(job: _Job) -> None:
    """Time the candidates interleaved (here or on the tuning target) and apply the rule (export/timing.py)."""
    job.chosen = next(iter(job.candidates))
    if len(job.candidates) > 1:
        from shufflenet_edge.export.timing import time_and_decide

        t = job.cfg.tune
        where = "LiteRT here" if t.target == "local" else t.target
        # The preferred form: `delegate` (fewest ops, rank 4) when the artifact is meant for a GPU/NPU delegate, else
        # the simplest folded CPU recipe; it ships unless another is measurably faster.
        order = ["delegate", "cpu"] if t.prefer == "gpu" else ["cpu", "reference3", "delegate"]
        preferred = next((k for k in order if k in job.candidates), next(iter(job.candidates)))
        why = ("the fewest data moves and rank 4, for the GPU/NPU delegate named (--tune-delegate gpu)"
               if preferred == "delegate" and t.prefer == "gpu" else "the preferred form for a CPU (XNNPACK)")
        with job.p.step(f"timing {len(job.candidates)} candidate graphs on {where} ({t.threads} thread(s))"):
            with tempfile.TemporaryDirectory() as td:
                paths = {k: _write_temp(Path(td), k, b) for k, b in job.candidates.items()}
                timings = time_and_decide(paths, job.to_layout(job.x_nchw.numpy()[:1]), t, preferred, why,
                                          spent_s=time.monotonic() - job.started)
        graphs = {k: _graph_summary(b) for k, b in job.candidates.items()}
        job.chosen = timings["chosen"]
        if job.chosen == "reference":
            timings["verdict"] += "; " + _reference_cost(graphs)
        timings["target"] = t.target
        timings["candidate_graphs"] = graphs
        job.p.log(f"form: {timings['verdict']}")
        job.timings = timings
    if job.cfg.keep_candidates is not None:
        kd = Path(job.cfg.keep_candidates)
        kd.mkdir(parents=True, exist_ok=True)
        for k, b in job.candidates.items():
            with atomic_path(kd / f"{job.out_path.stem}.{k}.tflite") as tmp:
                tmp.write_bytes(b)


def _verify_stage(job: _Job) -> dict[str, Any]:
    """The checks of the chosen graph (export/verify.py) and, for int8, the loss against the float model; an int8
    artifact that misses the user's gate starts the search for the fewest float units (export/int8_search.py)."""
    from shufflenet_edge.export import int8_report

    chosen = job.chosen
    checks = _verify(job, chosen, sims=_sim_outputs(job, job.base_of[chosen], job.chk)) if job.precision == "int8" \
        else job.checks_of[chosen]
    if job.precision == "int8" and chosen != "reference" and checks.get("warning"):
        checks = _int8_against_reference(job, checks)
    if job.precision == "int8" and job.chk is not None:
        with job.p.step("int8 loss against the float model"):
            rep = _int8_loss(job)
        if (rep.get("gate") or {}).get("failures"):
            q = job.cfg.int8
            if not q or q.search_tries <= 0:
                raise int8_report.refusal(rep)
            checks, rep = _budget_search(job, rep)
        checks["int8_loss"] = rep
    return checks


def _int8_against_reference(job: _Job, checks: dict[str, Any]) -> dict[str, Any]:
    """The chosen folded int8 graph rounds far from its simulation. When litert-torch's conversion of the module as
    written does not, the converter treated the folded graph differently and the fold would cost accuracy: that
    candidate is left out (said in the fallback warning) and the graph as written ships. When both are far, the
    distance is the converter's own: the warning stays, reported."""
    if _reference_base(job) is None:
        return checks
    _add_candidate(job, "reference", "reference", None)
    if "reference" not in job.candidates:
        return checks
    try:
        ref = _verify(job, "reference", sims=_sim_outputs(job, "reference", job.chk))
    except Exception:  # noqa: BLE001  (the graph as written does not run: keep the folded one, with its warning)
        return checks
    if ref.get("warning"):
        return checks
    job.drop(job.chosen, f"the folded int8 graph rounds far from its quantization simulation "
                         f"({checks['within_2_steps_fraction']:.0%} of values within 2 steps) where litert-torch's "
                         f"conversion of the module as written does not ({ref['within_2_steps_fraction']:.0%})")
    job.chosen = "reference"
    return ref


ARTIFACT_RETRIES = 2  # conversions after the chosen set's own when the converted artifact misses the budget


def _budget_search(job: _Job, rep: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The fully-int8 artifact missed the user's budget: rank the units, search the fewest float ones in the PT2E
    simulation (export/int8_search.py), convert the chosen set in the form that won and check the artifact (when it
    misses, the next-ranked unit joins the set, ARTIFACT_RETRIES times at most), and time it against the fully-int8
    one and the float conversion of the same form (the two ends of the curve).
    Nothing that meets the budget: ParityError, nothing written."""
    from shufflenet_edge.export import int8_report, int8_search
    from shufflenet_edge.export.int8_options import head_ends, output_paths, unit_names, weight_bytes

    q = job.cfg.int8
    assert q is not None
    units = unit_names(job.prep.module)
    ends = head_ends(job.prep.module, job.x_nchw[:1])
    paths = output_paths(job.prep.module, job.x_nchw[:1], [*units, *ends])
    xs, wants, budget = job.int8_inputs.xs, job.int8_inputs.wants, job.int8_inputs.budget
    rows = rep.get("per_layer")
    if rows is None:  # several outputs: the report went without it; the ranking needs it
        with tempfile.NamedTemporaryFile(suffix=".tflite") as f:
            f.write(job.candidates[job.chosen])
            f.flush()
            pl = int8_report.where_loss_starts(f.name, job.prep.module, xs, job.layout)
        rows = (pl or {}).get("rows") or []
    quant = {"calib_method": q.method_for("tflite"), "per_channel": q.per_channel}
    wrapped = job.wrapped(job.prep.module)
    exported = torch.export.export(wrapped, (job.x,)).module()  # once for every try

    def evaluate(float_units: tuple[str, ...]) -> int8_search.Trial:
        sim, _ = pt2e_quantize(wrapped, job.x, job.calib_l, keep_float=list(float_units), exported=exported,
                               **quant)  # type: ignore[arg-type]
        return budget.judge(float_units, _predict_tflite(job, sim, xs), wants,
                            lambda x: _predict_tflite(job, sim, x))

    fully = rep["judged"]
    chosen, record = int8_search.find(job.p, evaluate, units, rows, rep, budget, q.search_tries, job.kept,
                                      "simulated quantizations",
                                      "each set simulated (PT2E, the export's calibration) on the int8 check's "
                                      "inputs; only the chosen set converted and judged on the artifact", ends, paths,
                                      lambda fl: weight_bytes(job.prep.module, fl))
    fully_int8 = job.candidates[job.chosen]
    base = job.base_of[job.chosen]
    module = {"folded": job.torch_form, "blocks": job.blocks_form}.get(base, job.prep.module)
    recipe = None if job.chosen == "reference" else job.chosen
    misses: list[dict[str, Any]] = []
    for _ in range(1 + ARTIFACT_RETRIES):
        job.kept = chosen
        with job.p.step(f"converting with {' '.join(job.kept)} in float"):
            job.bases[base], job.sims[base] = job.lower(module, folded=base == "folded")
            job.candidates[job.chosen], job.pass_reports[job.chosen] = job.finish(job.bases[base], recipe)
        checks = _verify(job, job.chosen, sims=_sim_outputs(job, base, job.chk))
        with job.p.step("int8 loss against the float model (the chosen float units)"):
            rep = _int8_loss(job)
        if not rep["gate"]["failures"]:
            break
        # The converter rounds a little differently from the simulation: a set that met the budget in simulation
        # can miss it converted. The next unit of the ranking joins the set, converted again (bounded).
        misses.append({"float_units": list(chosen), "artifact": rep["judged"]})
        nxt = next((u for u in record["ranking"] if u not in chosen and not any(u.startswith(c + ".") for c in chosen)),
                   None)
        if nxt is None:
            break
        chosen = [u for u in [*units, *ends] if u in {*chosen, nxt}]
    record["artifact_misses"] = misses
    if misses:
        record["chosen_in_simulation"], record["chosen"] = record["chosen"], list(chosen)
    if rep["gate"]["failures"]:
        rep["search"] = record
        raise int8_report.refusal(rep, f"the simulation of {' '.join(misses[0]['float_units'])} in float met it, the "
                                       f"converted artifact does not ({len(misses)} conversion(s), each adding the "
                                       "next-ranked unit)")
    with job.p.step("converting the float end of the curve (the same form, fp32)"):
        float_end = apply_passes(convert(job.wrapped(module), job.x), recipe, "float", False)[0]
    judged_float = budget.judge(tuple(units), _predict_tflite(job, float_end, xs), wants,
                                lambda x: _predict_tflite(job, float_end, x))
    with job.p.step("timing the chosen artifact against the fully-int8 and float ones"), \
            tempfile.TemporaryDirectory() as td:
        paths = {k: _write_temp(Path(td), k, b) for k, b in
                 (("fully_int8", fully_int8), ("chosen", job.candidates[job.chosen]), ("float", float_end))}
        record["latency"] = int8_search.latency_cost(paths, job.to_layout(job.x_nchw.numpy()[:1]), job.cfg.tune)
    record["curve"] = int8_search.curve(record, {"fully_int8": fully, "chosen": rep["judged"],
                                                 "float": judged_float.to_dict()})
    rep["search"] = record
    return checks, rep


def _write(job: _Job, checks: dict[str, Any]) -> dict[str, Any]:
    """The artifact (atomic), its identity embedded, and its record."""
    from shufflenet_edge.export.inspect import inspect_tflite

    final, chosen, prep, q = job.candidates[job.chosen], job.chosen, job.prep, job.cfg.int8
    with atomic_path(job.out_path) as tmp:
        tmp.write_bytes(final)
    g = inspect_tflite(job.out_path, analyze_gpu=True)
    logits = len(job.ref_outs) == 1 and job.ref_outs[0].dim() == 2
    sidecar = {
        "format": "tflite",
        "path": str(job.out_path),
        "model": prep.label,
        "num_classes": int(g["outputs"][0]["shape"][-1]) if logits else None,
        "weights": {"path": str(prep.weights), "sha256": file_sha256(prep.weights)} if prep.weights else None,
        "random_weights": prep.random_weights,
        "seed": job.cfg.seed if prep.random_weights else None,
        "source": prep.source,
        "precision": job.precision,
        "form": chosen if chosen in ("reference", "delegate", "blocks") else "cpu",
        "recipe": chosen,
        "input": {**g["inputs"][0], "layout": job.layout},
        "output": g["outputs"][0],
        "outputs": [{**o, "layout": lay, "torch_shape": list(t.shape)}
                    for o, lay, t in zip(_signature_outputs(final, g["outputs"]), job.out_layouts, job.ref_outs)],
        "preprocess": prep.preprocess.to_dict(),
        "labels": None,
        "calibration": job.images.source if job.images is not None else None,
        "quantization_scheme": (f"PT2E static, {q.weights} symmetric int8 weights, int8 activations "
                                f"({q.method_for('tflite')} calibration)") if q else None,
        "calibration_method": q.method_for("tflite") if q else None,
        "keep_float": job.kept if q else None,
        "checks": checks,
        "form_timings": job.timings,
        "passes": job.pass_reports[chosen],
        "fold": _fold_record(job),
        "fallback": job.fallback(chosen, job.cfg.form),
        "note": (f"{job.reference_error}; the folded graph converts" if job.reference_error else None),
        "tools": tool_versions("litert-torch", "ai-edge-litert", "torchao"),
        "graph": {k: g[k] for k in ("ops", "op_histogram", "data_movement_ops", "max_rank", "xnnpack_partitions",
                                    "quantize_ops", "size_bytes", "gpu_compatibility")},
    }
    embed_identity(job.out_path, sidecar)  # the artifact says what it is even without its sidecar
    sidecar["graph"]["size_bytes"] = job.out_path.stat().st_size
    return write_sidecar(job.out_path, sidecar)


def _fold_record(job: _Job) -> dict[str, Any]:
    """The sidecar's `fold`: the graph-level fold's report when the shipped graph was built on it, and the shuffle
    regions of the converted graph the shuffle_path pass left as converted, each with its reason."""
    fold, chosen = job.fold_report, job.chosen
    left = [r for rep in job.pass_reports.get(chosen, []) if rep.get("pass") == "shuffle_path"
            for r in rep.get("skipped", [])]
    if chosen == "reference":
        return {"form": "reference", "counts": None, "found_in_candidates": fold.counts() if fold is not None else None}
    if chosen == "blocks":
        from shufflenet_edge.channel_plan import blocks_per_unit

        return {"form": "blocks: the planned channel order (no shuffle left to fold)", "counts": None,
                "blocks_per_unit": blocks_per_unit(job.blocks_form), "left_alone_in_graph": []}
    if job.base_of[chosen] != "folded":
        sp = next((r for r in job.pass_reports.get(chosen, []) if r.get("pass") == "shuffle_path"), {})
        return {"form": f"{chosen} passes on the graph as written", "counts": None, "error": job.fold_error,
                "graph_pass": {k: sp.get(k, 0) for k in ("regions", "rewritten", "absorbed_in_weights")},
                "left_alone_in_graph": left}
    return {**fold.to_dict(), "left_alone_in_graph": left}


def _graph_summary(buf: bytes) -> dict[str, Any]:
    """What a candidate graph costs where delegates are concerned: ops, data movement, max rank, XNNPACK partitions."""
    import tempfile

    from shufflenet_edge.export.inspect import inspect_tflite

    with tempfile.TemporaryDirectory() as td:
        f = Path(td) / "candidate.tflite"
        f.write_bytes(buf)
        g = inspect_tflite(f, analyze_gpu=False)
    return {k: g[k] for k in ("ops", "data_movement_ops", "max_rank", "xnnpack_partitions")}


def _reference_cost(graphs: dict[str, dict[str, Any]]) -> str:
    """What shipping the graph as written costs on a GPU/NPU delegate, against the best folded candidate."""
    r = graphs["reference"]
    folded = {k: g for k, g in graphs.items() if k != "reference"}
    best = min(folded, key=lambda k: (folded[k]["data_movement_ops"], k)) if folded else None
    text = (f"the reference graph has max rank {r['max_rank']}, {r['xnnpack_partitions']} XNNPACK partition(s) and "
            f"{r['data_movement_ops']} data-movement ops")
    if best is not None:
        b = folded[best]
        text += (f" (folded {best}: rank {b['max_rank']}, {b['xnnpack_partitions']} partition(s), "
                 f"{b['data_movement_ops']})")
    if r["max_rank"] > 4:
        text += "; GPU/NPU delegates (NNAPI, older GPU delegates) refuse rank 5"
    return text + ": --form cpu, or --tune-delegate gpu with --tune-on adb, keeps the folded graph"


def _nchw_outputs(ys: list[np.ndarray], layouts: list[str | None]) -> list[np.ndarray]:
    return [np.ascontiguousarray(y.transpose(0, 3, 1, 2)) if lay == "nhwc" and y.ndim == 4 else y
            for y, lay in zip(ys, layouts)]


def _verify(job: _Job, key: str, sims: list[np.ndarray] | None = None) -> dict[str, Any]:
    """The verify stage for TFLite (export/verify.py) of candidate `key`: float against PyTorch (and against the
    converter's own conversion of the unfolded module); int8: the passes moved no stored value, and with `sims` (the
    PT2E simulation's outputs on the check inputs) every output's distance to it in output steps."""
    if job.chk is None:
        return {"skipped": "checks run for batch 1 only"}
    final = job.candidates[key]
    if job.precision in ("fp32", "fp16"):
        return _check_float(job, key, final)
    moved = None
    if job.cfg.tflite_io == "int8":  # the passes must not change a single stored value (they move data only)
        base = job.bases[job.base_of[key]]
        before, after = run_tflite_all(base, job.chk, raw=True), run_tflite_all(final, job.chk, raw=True)
        moved = max(int(np.abs(b.astype(np.int64) - a.astype(np.int64)).max()) for b, a in zip(before, after))
    if sims is None:
        return verify.check_moved(moved)
    # The simulation takes the artifact's input layout and gives its output layout: compared as they are.
    return verify.check_int8(run_tflite_all(final, job.chk), sims, _output_scales(final), moved)


def _sim_outputs(job: _Job, base: str, xs: np.ndarray | None) -> list[np.ndarray] | None:
    """The outputs of `base`'s PT2E simulation on `xs` (the artifact's layout); None for a float base, or without
    inputs (no check inputs for a batch above 1)."""
    sim = job.sims.get(base)
    return None if sim is None or xs is None else verify.torch_outputs(sim, xs)


def _check_float(job: _Job, key: str, final: bytes) -> dict[str, Any]:
    """One float candidate against PyTorch; when it is farther than the tolerance, against the reference conversion
    too, which tells the converter's distance (reported) from a value our fold or passes moved (InternalError)."""
    x_nchw = np.ascontiguousarray(job.chk.transpose(0, 3, 1, 2)) if job.layout == "nhwc" else job.chk
    if job.expected is None:
        wants = verify.torch_outputs(job.prep.module, x_nchw)
        job.expected = (wants, verify.float_noise(job.prep.module, x_nchw, wants))
    wants, noise = job.expected
    gots = _nchw_outputs(run_tflite_all(final, job.chk), job.out_layouts)
    what = f"TFLite {job.precision} ({key})"
    if key == "reference":  # the conversion itself: its distance to PyTorch is the converter's, reported
        return verify.check_float(gots, wants, job.precision, what, noise, runtime_only=True)
    conv = _unfolded_outputs(job) if "reference" in job.candidates else None
    try:
        return verify.check_float(gots, wants, job.precision, what, noise, conversion=conv)
    except EdgeError:
        conv = _unfolded_outputs(job)
        if conv is None:  # the module as written does not convert: nothing to tell the distances apart
            raise
        return verify.check_float(gots, wants, job.precision, what, noise, conversion=conv)


def _unfolded_outputs(job: _Job) -> list[np.ndarray] | None:
    """The reference conversion's outputs on the check inputs (converted here, once, when no candidate has them)."""
    if job.unfolded is None:
        if "reference" in job.candidates:
            job.unfolded = job.candidates["reference"]
        else:
            base = _reference_base(job)
            if base is None:
                return None
            job.unfolded = job.finish(base, None)[0]
    return _nchw_outputs(run_tflite_all(job.unfolded, job.chk), job.out_layouts)


def _int8_loss(job: _Job) -> dict[str, Any]:
    """Every output of the chosen int8 artifact and of its PT2E simulation against the float model, on the inputs
    `parity` uses by default (so export and parity give one verdict), the user's budget judged
    (int8_report.judged_report; the caller refuses or searches)."""
    from shufflenet_edge.export import int8_report

    final, check = job.candidates[job.chosen], job.int8_inputs
    xl = np.ascontiguousarray(job.to_layout(check.xs))
    gots = _nchw_outputs(run_tflite_all(final, xl), job.out_layouts)
    sim_outs = _sim_outputs(job, job.base_of[job.chosen], xl)
    assert sim_outs is not None  # an int8 base always has its simulation
    sims = _nchw_outputs(sim_outs, job.out_layouts)

    def per_layer() -> dict[str, Any] | None:
        with tempfile.NamedTemporaryFile(suffix=".tflite") as f:
            f.write(final)
            f.flush()
            return int8_report.where_loss_starts(f.name, job.prep.module, check.xs, job.layout)

    return int8_report.judged_report(gots, sims, check, job.kept, lambda x: _predict_tflite(job, final, x), per_layer)


def _predict_tflite(job: _Job, graph: Any, x: np.ndarray) -> list[np.ndarray]:
    """A TFLite graph (flatbuffer) or PT2E simulation (module) on float NCHW inputs, outputs as PyTorch lays them."""
    xl = np.ascontiguousarray(job.to_layout(np.asarray(x, dtype=np.float32)))
    ys = run_tflite_all(graph, xl) if isinstance(graph, bytes | str) else verify.torch_outputs(graph, xl)
    return _nchw_outputs(ys, job.out_layouts)


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


def _output_scales(buf: bytes) -> list[float | None]:
    """Per output (signature order), its int8 quantization scale: the output tensor's own when it is int8, else
    that of the int8 tensor its DEQUANTIZE reads; None for a float output with no int8 tensor before it."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.interpreter import Interpreter

    m = schema.ModelT.InitFromPackedBuf(buf, 0)
    sg = m.subgraphs[0]
    producer = {o: op for op in sg.operators for o in op.outputs}

    def int8_scale(t_index: int) -> float | None:
        t = sg.tensors[t_index]
        q = t.quantization
        if t.type in (9, 3) and q is not None and q.scale is not None and len(q.scale) == 1:  # INT8, UINT8
            return float(q.scale[0])
        return None

    scales = []
    for d in _ordered_output_details(Interpreter(model_content=buf)):
        sc = int8_scale(d["index"])
        op = producer.get(d["index"])
        if sc is None and op is not None and op.inputs is not None and len(op.inputs) == 1:
            sc = int8_scale(op.inputs[0])  # DEQUANTIZE (or another one-input op) of an int8 tensor
        scales.append(sc)
    return scales


def _export_qat(prep: Prepared, out_path: Path, cfg: ExportConfig) -> dict[str, Any]:
    """A graph fine-tuned with shufflenet_edge.qat: full-integer int8 with the scales it learned (NHWC input).
    Its float reference is the model it started from (`prep.source`), which `parity` rebuilds when recorded."""
    from shufflenet_edge import qat
    from shufflenet_edge.export.inspect import inspect_tflite

    prepared = prep.module
    meta = getattr(prepared, qat.QAT_MARK)
    converted = qat.convert(prepared)
    _, c, h, w = prep.example[0].shape
    x = torch.randn(1, h, w, c, generator=torch.Generator().manual_seed(0))
    wrapped = qat.NHWCInput(converted)
    wrapped.training = False  # not .eval(): torchao refuses train/eval calls on the converted graph
    base = convert(wrapped, x, meta["quantizer"])
    final, passes = apply_passes(base, None, cfg.tflite_io, False)
    with atomic_path(out_path) as tmp:
        tmp.write_bytes(final)
    g = inspect_tflite(out_path, analyze_gpu=False)
    sidecar = {
        "format": "tflite", "path": str(out_path), "model": prep.label,
        "num_classes": int(g["outputs"][0]["shape"][-1]) if len(g["outputs"]) == 1 else None,
        "weights": None, "random_weights": False, "seed": None, "source": prep.source,
        "precision": "int8", "form": "reference", "recipe": "qat",
        "input": {**g["inputs"][0], "layout": "nhwc"},
        "outputs": [{**o, "layout": "nhwc" if len(o["shape"]) == 4 else None} for o in g["outputs"]],
        "preprocess": prep.preprocess.to_dict(), "labels": None,
        "calibration": "none: quantization-aware training (learned scales)",
        "quantization_scheme": f"PT2E QAT, {'per-channel' if meta['per_channel'] else 'per-tensor'} symmetric int8 weights, "
                               "int8 activations (moving-average ranges learned in training)",
        "keep_float": meta["keep_float"], "qat": True, "passes": passes,
        "checks": {"skipped": "a QAT graph is its own simulation: judge it with parity against the float model it "
                              "started from"},
        "tools": tool_versions("litert-torch", "ai-edge-litert", "torchao"),
        "graph": {k: g[k] for k in ("ops", "op_histogram", "data_movement_ops", "max_rank", "xnnpack_partitions",
                                    "quantize_ops", "size_bytes")},
    }
    embed_identity(out_path, sidecar)
    sidecar["graph"]["size_bytes"] = out_path.stat().st_size
    return write_sidecar(out_path, sidecar)
