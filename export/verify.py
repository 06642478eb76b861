"""The verify stage: what both backends prove about an artifact before it is written, with one comparison
(`shufflenet_edge.parity.compare`), one row per output, and one definition of an int8 output step.

- Float artifacts (fp32/fp16) against PyTorch on every output. The tolerance is relative to the output's largest
  value and never tighter than the model's own float noise (PyTorch fp32 against fp64 on the same inputs, times
  `NOISE_FACTOR`), so a correct file is not refused for rounding the model itself does.
- int8 artifacts: the graph passes move no int8 value (else an `InternalError`: our bug), and each output's
  distance to the quantization simulation in output steps. Far from the simulation is a warning with the numbers,
  not a refusal: the converter's fixed-point requantization rounds differently, and the loss against float is
  what `int8_loss` reports.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch

from shufflenet_edge.errors import EdgeError, InternalError
from shufflenet_edge.parity import compare

N_CHECK = 16  # check inputs (seeded normal images in the model's float domain)
FLOAT_TOLERANCE = {"fp32": 1e-4, "fp16": 0.05}  # of max(1, the output's largest |value|)
NOISE_FACTOR = 4.0  # an artifact may differ from PyTorch fp32 by this many times fp32's own distance to fp64
STEPS_WARNING = 0.9  # warn when fewer outputs than this are within 2 steps of the simulation


def torch_outputs(model: Any, xs: np.ndarray, dtype: torch.dtype = torch.float32) -> list[np.ndarray]:
    """Every output of `model` for NCHW inputs, one input at a time, each stacked over the inputs."""
    from torch.utils._pytree import tree_leaves

    outs = []
    with torch.no_grad():
        for i in range(len(xs)):
            y = model(torch.from_numpy(np.ascontiguousarray(xs[i : i + 1])).to(dtype))
            outs.append([t.to(torch.float64 if dtype == torch.float64 else torch.float32).numpy()
                         for t in tree_leaves(y) if isinstance(t, torch.Tensor)])
    return [np.concatenate(v) for v in zip(*outs)]


def float_noise(model: Any, xs: np.ndarray, wants: list[np.ndarray]) -> list[float] | None:
    """Per output, max |PyTorch fp32 - PyTorch fp64| on `xs`: how far the model's own float arithmetic moves it.
    None when the model does not run in float64 (some exported graphs do not)."""
    try:
        m64 = copy.deepcopy(model).double()
        exact = torch_outputs(m64, xs.astype(np.float64), torch.float64)
    except Exception:  # noqa: BLE001  (a module that cannot run in float64: fall back to the fixed tolerance)
        return None
    if len(exact) != len(wants):
        return None
    return [float(np.abs(w.astype(np.float64) - e).max()) for w, e in zip(wants, exact)]


CONVERSION_TOLERANCE = 1e-5  # of the output's own peak: float reassociation, far below a moved value


def conversion_tolerance(peak: float, noise: float | None) -> float:
    """How far a folded artifact may be from the same converter's conversion of the unfolded module before we say
    our fold or a pass moved a value. The fold moves data and permutes weights, which only reorders float sums: the
    difference is rounding, of the size of the model's own float noise (PyTorch fp32 against fp64, `NOISE_FACTOR`
    times), or a relative 1e-5 of the output's peak where the noise is smaller. Relative, never absolute: a box in
    pixels (hundreds) and a probability (1e-3) are held to the same standard. A moved value differs by the size of
    the values themselves."""
    return max(CONVERSION_TOLERANCE * peak, NOISE_FACTOR * (noise or 0.0), np.finfo(np.float32).tiny)


def check_float(gots: list[np.ndarray], wants: list[np.ndarray], precision: str, what: str,
                noise: list[float] | None = None, conversion: list[np.ndarray] | None = None,
                runtime_only: bool = False) -> dict[str, Any]:
    """Every output against PyTorch; the record of the check.

    Whose error is it? `conversion`: the same converter's outputs for the unfolded module (the reference
    candidate of --form auto). With it, the artifact must equal that conversion (else an InternalError: our fold or
    passes moved a value), and its distance to PyTorch is the converter's and runtime's: reported, not refused.
    `runtime_only`: the artifact is that conversion itself (the reference form shipped): reported, not refused.
    Otherwise the distance to PyTorch must stay within the tolerance (else an EdgeError with the numbers)."""
    if len(gots) != len(wants):
        raise InternalError(f"{what} has {len(gots)} outputs where the PyTorch module has {len(wants)}")
    rows = []
    for k, (got, want) in enumerate(zip(gots, wants)):
        if got.shape != want.shape:
            raise EdgeError(f"{what} output {k} has shape {got.shape}, PyTorch {want.shape}")
        top = float(np.abs(want).max())
        peak = max(1.0, top)
        err = float(np.abs(got - want).max())
        tol = FLOAT_TOLERANCE[precision] * peak
        n = noise[k] if noise is not None else None
        if n is not None:
            tol = max(tol, NOISE_FACTOR * n)
        st = compare(got, want)
        row = {"output": k, "shape": list(want.shape), "max_abs_error": err, "relative_error": err / peak,
               "tolerance": tol, "torch_fp64_noise": n,
               "psnr_db": st.to_dict()["psnr_db"], "top1_agreement": st.top1_agreement}
        rows.append(row)
        if conversion is not None:
            dc = float(np.abs(got - conversion[k]).max())
            ctol = conversion_tolerance(max(top, float(np.abs(conversion[k]).max())), n)
            row["vs_unfolded_conversion_max_abs_error"] = dc
            row["vs_unfolded_conversion_tolerance"] = ctol
            if not dc <= ctol:
                raise InternalError(f"{what} output {k} differs from the same converter's conversion of the unfolded "
                                    f"module by {dc:.3g} (> {ctol:.3g}, relative to its peak {top:.3g} and float noise "
                                    f"{'unknown' if n is None else f'{n:.3g}'}): the fold or a graph pass changed a value")
        if conversion is not None or runtime_only:
            row["within_tolerance"] = bool(err <= tol)  # the converter's and runtime's distance: the user's gate
            continue
        if not err <= tol:
            raise EdgeError(f"{what} disagrees with PyTorch on output {k}: max abs error {err:.3g} > {tol:.3g} on "
                            f"{len(got)} inputs (PyTorch's own fp32-vs-fp64 distance there: "
                            f"{'unknown' if n is None else f'{n:.3g}'})")
    worst = max(rows, key=lambda r: r["max_abs_error"] / r["tolerance"] if r["tolerance"] else 0.0)
    out: dict[str, Any] = {"inputs": len(gots[0]) if gots else 0, "per_output": rows,
                           "vs_torch_max_abs_error": max(r["max_abs_error"] for r in rows),
                           "tolerance": worst["tolerance"]}
    if len(rows) == 1 and rows[0]["top1_agreement"] is not None:
        out["top1_agreement"] = rows[0]["top1_agreement"]
    far = [r for r in rows if r.get("within_tolerance") is False]
    if far:
        out["warning"] = "; ".join(
            f"output {r['output']} is {r['max_abs_error']:.3g} from PyTorch (relative {r['relative_error']:.2g}, "
            f"tolerance {r['tolerance']:.3g})" for r in far) + (
            ": the converter's own conversion of the unfolded module is as far, so it is the runtime's float "
            "arithmetic, not the fold; gate it with parity's thresholds")
    return out


def output_step(scale: float | None, sim: np.ndarray) -> tuple[float, str]:
    """One int8 output step: the artifact's own output quantization scale; only where the graph has none (a float
    output with no int8 tensor before it), max |simulation| / 127, said so."""
    if scale:
        return float(scale), "output scale"
    return (float(np.abs(sim).max()) / 127.0 or 1.0), "estimated: max |simulation| / 127"


def check_moved(moved: int | None) -> dict[str, Any]:
    """The graph passes' record (`moved`: the largest change of a stored int8 output value the passes made; None =
    not measurable): data movement changes no value, so anything else is our bug."""
    if moved not in (None, 0):
        raise InternalError(f"graph passes changed int8 outputs by up to {moved} steps: a pass is not exact")
    return {"passes_max_int8_change": moved}


def check_int8(gots: list[np.ndarray], sims: list[np.ndarray], scales: list[float | None],
               moved: int | None) -> dict[str, Any]:
    """int8 artifact against its quantization simulation, output by output (same layout), and the passes' record
    (`check_moved`)."""
    check_moved(moved)
    rows = []
    for k, (got, sim, sc) in enumerate(zip(gots, sims, scales)):
        step, how = output_step(sc, sim)
        d = np.abs(got - sim)
        st = compare(got, sim)
        rows.append({"output": k, "max_abs_error_vs_simulation": float(d.max()), "output_step": step,
                     "output_step_source": how, "max_steps": float(d.max() / step),
                     "within_2_steps_fraction": float((d / step <= 2.0 + 1e-3).mean()),
                     "top1_agreement_vs_simulation": st.top1_agreement})
    out: dict[str, Any] = {"inputs": len(gots[0]) if gots else 0, "passes_max_int8_change": moved, "per_output": rows,
                           "vs_pt2e_simulation_max_steps": max(r["max_steps"] for r in rows),
                           "within_2_steps_fraction": min(r["within_2_steps_fraction"] for r in rows)}
    if len(rows) == 1:
        out["output_scale"] = rows[0]["output_step"]
        if rows[0]["top1_agreement_vs_simulation"] is not None:
            out["top1_agreement_vs_simulation"] = rows[0]["top1_agreement_vs_simulation"]
    far = [r for r in rows if r["within_2_steps_fraction"] < STEPS_WARNING]
    if far:
        out["warning"] = "; ".join(
            f"output {r['output']}: {r['within_2_steps_fraction']:.0%} of values within 2 steps of the quantization "
            f"simulation (up to {r['max_steps']:.0f} steps)" for r in far) + (
            ": the converted int8 graph rounds far from its simulation; see int8_loss for the distance to float")
    return out


def int8_loss(gots: list[np.ndarray], wants: list[np.ndarray], sims: list[np.ndarray] | None, inputs: str,
              per_layer: Any = None) -> dict[str, Any]:
    """The loss report for every output; its top-level numbers are the output that lost most (lowest PSNR)."""
    from shufflenet_edge.export import int8_report

    reps = [int8_report.loss_report(g, w, sims[k] if sims is not None else None, inputs)
            for k, (g, w) in enumerate(zip(gots, wants))]

    def psnr(r: dict[str, Any]) -> float:
        p = r["artifact_vs_float"]["psnr_db"]
        return float("inf") if p is None else p

    k = min(range(len(reps)), key=lambda i: psnr(reps[i]))
    rep = int8_report.loss_report(gots[k], wants[k], sims[k] if sims is not None else None, inputs, per_layer)
    rep["below_default_gate"] = any(r["below_default_gate"] for r in reps)
    if len(reps) > 1:
        rep["worst_output"] = k
        rep["per_output"] = [{"output": i, "artifact_vs_float": r["artifact_vs_float"],
                              "simulation_vs_float": r["simulation_vs_float"]} for i, r in enumerate(reps)]
    return rep
