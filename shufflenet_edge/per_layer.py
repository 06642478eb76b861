"""Per-layer parity: where does an artifact's error first grow? (the role of onnx2tf's `-cotof`)

The PyTorch reference gives one tensor per *point*: the stem (`conv1`, `maxpool`), every unit
(`stage3.2`), `conv5` for V2 and the head (`fc`). The artifact gives every intermediate tensor:
- ONNX: each node output is added as a graph output (types from `onnx.shape_inference`), and
  onnxruntime runs the graph with optimizations off;
- TFLite: LiteRT with `experimental_preserve_all_tensors=True` and no default delegate (XNNPACK would hide
  the tensors inside its partitions), read op by op in execution order; int8 tensors are dequantized.

Matching does not depend on tensor names, because names change with every exporter and graph pass:
1. if the sidecar has `graph.unit_outputs` ({point: tensor name}), or a tensor is named exactly
   `unit:<point>` or `<point>`, that tensor is used;
2. otherwise points are matched in order: for each point, among the tensors that come after the previous
   point's match and have the same number of elements, the one closest to the reference wins, after trying
   the views a folded graph may hold: NCHW, NHWC (transposed), and the channel order *before* a channel
   shuffle (concat order, as the fold's concat leaves it) for the model's shuffle groups.
A point is "ok" while its max abs error is within atol + rtol * max|ref|; the first point beyond that is
where the error first grows.

int8 artifacts (TFLite full-integer, ONNX QDQ) carry quantization error at every point, so for them each point
also gets its SQNR, 10·log10(sum ref² / sum (artifact - ref)²) in dB, and the first point whose SQNR is below
`min_sqnr` (default DEFAULT_INT8_MIN_SQNR) is named: that is where int8 loses the signal, and the unit to try
with `export --keep-float`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from shufflenet_edge.errors import EdgeError

DEFAULT_ATOL = 1e-5
DEFAULT_RTOL = 1e-4
# The int8 TFLite of the digits-trained V2 (32x32) stays above 24 dB at every point (worst: conv5, 24.6 dB;
# 47 dB at conv1); the planted outlier unit of benchmarks/int8_rescue.py falls to a few dB. SQNR 15 dB ~ 18% rms error.
DEFAULT_INT8_MIN_SQNR = 15.0
EXPAND = ("stage", "features")  # top-level containers whose children are units


# ------------------------------------------------------------------------------------------- reference


def reference_points(model: Any) -> list[tuple[str, Any]]:
    """(point name, module) in forward order: stem, every unit, conv5, head."""
    pts: list[tuple[str, Any]] = []
    for name, child in model.named_children():
        if name.startswith(EXPAND):
            pts += [(f"{name}.{i}", u) for i, u in child.named_children()]
        else:
            pts.append((name, child))
    return pts


def shuffle_groups(model: Any) -> list[int]:
    """Group counts of the channel shuffles a unit's output may still be 'before' in a folded graph."""
    g = {2}
    groups = getattr(model, "groups", None)
    if isinstance(groups, int) and groups > 1:
        g.add(groups)
    return sorted(g)


def reference_tensors(model: Any, x: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """Each point's output for float NCHW inputs x: arrays (N, 1, ...) — one batch-1 run per sample."""
    import torch

    pts = reference_points(model)
    captured: dict[str, list[np.ndarray]] = {n: [] for n, _ in pts}
    seen: set[str] = set()  # points that already gave this sample's output
    hooks = []
    for n, mod in pts:
        def hook(_m: Any, _i: Any, out: Any, n: str = n) -> None:
            if n in seen:  # a module called twice in one forward (a neck's shared upsample): its first call
                return
            if isinstance(out, (list, tuple)):  # a multi-branch module (Lite-HRNet's stages): its first branch
                out = next((t for t in out if isinstance(t, torch.Tensor)), None)
            if isinstance(out, torch.Tensor):
                seen.add(n)
                captured[n].append(out.detach().clone().numpy())
        hooks.append(mod.register_forward_hook(hook))
    try:
        with torch.no_grad():
            for i in range(len(x)):
                seen.clear()
                model(torch.from_numpy(np.ascontiguousarray(x[i : i + 1])))
    finally:
        for h in hooks:
            h.remove()
    return [(n, np.stack(captured[n])) for n, _ in pts if captured[n]]


# ------------------------------------------------------------------------------------------- artifact


@dataclasses.dataclass
class ArtifactTensor:
    pos: int  # index of the producing node (ONNX) / operator (TFLite) in execution order
    name: str
    array: np.ndarray  # (N, *per-sample shape), float32


def onnx_tensors(path: str, x: np.ndarray) -> list[ArtifactTensor]:
    """Every float intermediate of an ONNX graph, in node order, for inputs x (already in its layout)."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto

    try:
        model = onnx.load(path)
    except Exception as e:  # noqa: BLE001  (protobuf raises its own types)
        raise EdgeError(f"cannot read ONNX model {path}: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from e
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # noqa: BLE001  (fall back to the value infos the file has)
        inferred = model
    g = inferred.graph
    vi = {v.name: v for v in list(g.value_info) + list(g.output)}
    order: list[str] = []
    node_of: dict[str, int] = {}
    for k, node in enumerate(g.node):
        for o in node.output:
            if o and o in vi and vi[o].type.tensor_type.elem_type == TensorProto.FLOAT and o not in node_of:
                order.append(o)
                node_of[o] = k
    have = {o.name for o in g.output}
    for name in order:
        if name not in have:
            g.output.append(vi[name])
    from shufflenet_edge.runtimes.ort_session import session_options

    so = session_options(1, check_numbers=True)
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    try:
        sess = ort.InferenceSession(inferred.SerializeToString(), so, providers=["CPUExecutionProvider"])
    except Exception as e:  # noqa: BLE001
        raise EdgeError(f"cannot load ONNX model {path} for per-layer outputs: {str(e).splitlines()[0]}") from e
    inp = sess.get_inputs()[0]
    names = [o.name for o in sess.get_outputs()]
    runs: dict[str, list[np.ndarray]] = {n: [] for n in names}
    for i in range(len(x)):
        xi = x[i : i + 1].astype(np.float32)
        for n, v in zip(names, sess.run(names, {inp.name: xi})):
            runs[n].append(np.asarray(v))
    out = [ArtifactTensor(node_of.get(n, len(g.node)), n, np.stack(runs[n]).astype(np.float32)) for n in names
           if runs[n] and runs[n][0].dtype == np.float32]
    return sorted(out, key=lambda t: t.pos)


def tflite_tensors(path: str, x: np.ndarray) -> list[ArtifactTensor]:
    """Every op output of a .tflite in execution order (int8 dequantized), for inputs x (in its layout)."""
    try:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType
    except ImportError as e:
        raise EdgeError("per-layer TFLite parity needs LiteRT: pip install ai-edge-litert") from e
    try:
        interp = Interpreter(
            model_path=path,
            experimental_preserve_all_tensors=True,
            experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
        )
        interp.allocate_tensors()
    except (ValueError, RuntimeError) as e:
        raise EdgeError(f"cannot load TFLite model {path}: {str(e).strip().splitlines()[0]}") from e
    inp = interp.get_input_details()[0]
    ops = interp._get_ops_details()
    order: list[int] = []
    op_of: dict[int, int] = {}
    for op in ops:
        for t in op["outputs"]:
            if t >= 0 and t not in op_of:
                order.append(int(t))
                op_of[int(t)] = int(op["index"])
    details = {t: interp._get_tensor_details(t, 0) for t in order}
    runs: dict[int, list[np.ndarray]] = {t: [] for t in order}
    scale, zp = inp["quantization"]
    for i in range(len(x)):
        xi = x[i : i + 1].astype(np.float32)
        if np.dtype(inp["dtype"]) in (np.int8, np.uint8) and scale:
            info = np.iinfo(inp["dtype"])
            xi = np.clip(np.round(xi / scale) + zp, info.min, info.max).astype(inp["dtype"])
        interp.set_tensor(inp["index"], xi.astype(inp["dtype"]))
        interp.invoke()
        for t in order:
            try:
                v = interp.get_tensor(t)
            except ValueError:
                continue
            d = details[t]
            s, z = d["quantization"]
            if v.dtype in (np.int8, np.uint8, np.int16) and s:
                v = (v.astype(np.float32) - z) * s
            elif v.dtype != np.float32:
                continue
            runs[t].append(np.array(v, np.float32))
    return [ArtifactTensor(op_of[t], str(details[t]["name"]), np.stack(runs[t])) for t in order
            if len(runs[t]) == len(x)]


# ------------------------------------------------------------------------------------------- matching


def _unshuffle_index(c: int, g: int) -> np.ndarray:
    """idx with shuffle(z, g)[:, r] == z[:, idx[r]]: compare a concat-order tensor with a shuffled reference."""
    r = np.arange(c)
    return (r % g) * (c // g) + r // g


def _views(arr: np.ndarray, ref_shape: tuple[int, ...], groups: list[int]) -> Iterator[tuple[str, np.ndarray]]:
    """Ways an artifact tensor (N, *s) may hold a reference tensor of shape (N, *ref_shape)."""
    s = arr.shape[1:]
    bases = []
    if s == ref_shape:
        bases.append(("nchw" if len(s) == 4 else "same", arr))
    if len(s) == 4 and len(ref_shape) == 4 and s[0] == ref_shape[0] and s[1:] == (ref_shape[2], ref_shape[3], ref_shape[1]):
        bases.append(("nhwc", arr.transpose(0, 1, 4, 2, 3)))
    for how, b in bases:
        yield how, b
        if len(ref_shape) == 4:
            c = ref_shape[1]
            for g in groups:
                if c % g == 0 and c > g:
                    yield f"{how}, before shuffle g={g}", b[:, :, _unshuffle_index(c, g)]


def _rel(a: np.ndarray, ref: np.ndarray) -> float:
    d = float(np.linalg.norm((a - ref).ravel()))
    r = float(np.linalg.norm(ref.ravel()))
    return d / r if r > 0 else (0.0 if d == 0 else math.inf)


@dataclasses.dataclass
class LayerRow:
    point: str
    shape: list[int]
    tensor: str | None
    position: int | None  # producing node / operator index
    view: str | None
    matched_by: str  # "name", "value" or "none"
    max_abs_error: float | None = None
    mean_abs_error: float | None = None
    rel_rms_error: float | None = None
    cosine: float | None = None
    sqnr_db: float | None = None  # 10·log10(sum ref² / sum err²); None when identical
    max_abs_ref: float | None = None
    tolerance: float | None = None
    ok: bool | None = None


@dataclasses.dataclass
class PerLayerReport:
    artifact: str
    rows: list[LayerRow]
    first_divergence: str | None
    largest_jump: str | None
    atol: float
    rtol: float
    samples: int
    note: str | None = None
    min_sqnr: float | None = None  # set for quantized artifacts
    first_weak_point: str | None = None  # first point with SQNR below min_sqnr

    def to_dict(self) -> dict[str, Any]:
        return {
            "artifact": self.artifact,
            "samples": self.samples,
            "atol": self.atol,
            "rtol": self.rtol,
            "first_divergence": self.first_divergence,
            "largest_jump": self.largest_jump,
            "min_sqnr": self.min_sqnr,
            "first_weak_point": self.first_weak_point,
            "note": self.note,
            "rows": [dataclasses.asdict(r) for r in self.rows],
        }

    def message(self) -> str:
        if self.min_sqnr is not None:
            if self.first_weak_point is None:
                return f"per-layer: every point keeps SQNR >= {self.min_sqnr:g} dB"
            row = next(r for r in self.rows if r.point == self.first_weak_point)
            return (f"per-layer: int8 loses the signal at {row.point} (SQNR {row.sqnr_db:.1f} dB < {self.min_sqnr:g} dB, "
                    f"cosine {row.cosine:.4f}; tensor {row.tensor})")
        if self.first_divergence is None:
            return f"per-layer: all {len(self.rows)} points within tolerance"
        row = next(r for r in self.rows if r.point == self.first_divergence)
        return (f"per-layer: error first grows at {row.point} (max abs err {row.max_abs_error:.3g}, "
                f"relative rms {row.rel_rms_error:.3g}, tolerance {row.tolerance:.3g}; tensor {row.tensor})")


def _named_hints(sidecar: dict[str, Any] | None) -> dict[str, str]:
    g = (sidecar or {}).get("graph") or {}
    m = g.get("unit_outputs") if isinstance(g, dict) else None
    return {str(k): str(v) for k, v in m.items()} if isinstance(m, dict) else {}


def match(
    ref: list[tuple[str, np.ndarray]],
    tensors: list[ArtifactTensor],
    groups: list[int],
    hints: dict[str, str] | None = None,
    atol: float = DEFAULT_ATOL,
    rtol: float = DEFAULT_RTOL,
) -> list[LayerRow]:
    by_name = {t.name: t for t in tensors}
    hints = hints or {}
    rows = []
    prev = -1
    for point, r in ref:
        shape = r.shape[1:]
        found: list[tuple[float, int, int, ArtifactTensor, str, np.ndarray]] = []
        named = by_name.get(hints.get(point, "")) or by_name.get(f"unit:{point}") or by_name.get(point)
        cands = [named] if named is not None else [
            t for t in tensors if t.pos > prev and t.array[0].size == r[0].size
        ]
        for t in cands:
            for view, v in _views(t.array, shape, groups):
                found.append((_rel(v, r), int("before shuffle" in view), t.pos, t, view, v))
        if not found:
            rows.append(LayerRow(point, list(shape[1:] if len(shape) > 1 else shape), None, None, None, "none"))
            continue
        best_rel = min(f[0] for f in found)
        # Near-ties (copies, reshapes, the concat before a shuffle) go to the tensor in the reference's own
        # channel order, then to the earliest.
        near = [f for f in found if f[0] <= best_rel * (1 + 1e-3) + 1e-9]
        rel, _, pos, t, view, v = min(near, key=lambda f: (f[1], f[2]))
        how_matched = "name" if named is not None else "value"
        prev = max(prev, pos)
        d = np.abs(v.astype(np.float64) - r.astype(np.float64))
        peak = float(np.abs(r).max())
        a = v.reshape(len(v), -1).astype(np.float64)
        b = r.reshape(len(r), -1).astype(np.float64)
        den = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
        cos = float(np.mean(np.where(den > 0, (a * b).sum(1) / np.where(den > 0, den, 1), 1.0)))
        tol = atol + rtol * peak
        err2 = float(np.sum(d**2))
        sqnr = 10.0 * math.log10(float(np.sum(r.astype(np.float64) ** 2)) / err2) if err2 > 0 and np.any(r) else None
        rows.append(LayerRow(
            point=point, shape=list(shape[1:] if len(shape) > 1 else shape), tensor=t.name, position=pos, view=view,
            matched_by=how_matched, max_abs_error=float(d.max()), mean_abs_error=float(d.mean()),
            rel_rms_error=rel, cosine=cos, sqnr_db=sqnr, max_abs_ref=peak, tolerance=tol, ok=bool(d.max() <= tol),
        ))
    return rows


def diagnose(
    artifact: str,
    model: Any,
    x_nchw: np.ndarray,
    *,
    layout: str = "nchw",
    sidecar: dict[str, Any] | None = None,
    atol: float = DEFAULT_ATOL,
    rtol: float = DEFAULT_RTOL,
    min_sqnr: float | None = None,
) -> PerLayerReport:
    """Compare every point of `model` with the artifact's intermediates on float NCHW inputs."""
    from shufflenet_edge.data import to_layout

    x = to_layout(np.asarray(x_nchw, np.float32), layout)
    if artifact.lower().endswith(".onnx"):
        tensors = onnx_tensors(artifact, x)
    elif artifact.lower().endswith(".tflite"):
        tensors = tflite_tensors(artifact, x)
    else:
        raise EdgeError(f"per-layer parity needs a .onnx or .tflite artifact, got {artifact}")
    ref = reference_tensors(model, np.asarray(x_nchw, np.float32))
    rows = match(ref, tensors, shuffle_groups(model), _named_hints(sidecar), atol, rtol)
    first = next((r.point for r in rows if r.ok is False), None)
    jump, best = None, 0.0
    prev_rel = None
    for r in rows:
        if r.rel_rms_error is None:
            continue
        base = max(prev_rel if prev_rel is not None else 0.0, 1e-7)
        ratio = r.rel_rms_error / base
        if ratio > best and r.rel_rms_error > 1e-6:
            best, jump = ratio, r.point
        prev_rel = r.rel_rms_error
    precision = str((sidecar or {}).get("precision") or "")
    note = None
    weak = None
    if precision == "int8":
        min_sqnr = DEFAULT_INT8_MIN_SQNR if min_sqnr is None else min_sqnr
        weak = next((r.point for r in rows if r.sqnr_db is not None and r.sqnr_db < min_sqnr), None)
        note = ("int8 artifact: every point carries quantization error; a point is weak when its SQNR is below "
                f"{min_sqnr:g} dB")
    elif precision == "fp16":
        note = (f"{precision} artifact: every point carries quantization error, so 'first beyond tolerance' is "
                "early by design; look at where the relative error jumps (largest_jump)")
    missing = [r.point for r in rows if r.matched_by == "none"]
    if missing:
        extra = f"no tensor in the artifact matches {', '.join(missing[:6])}{' ...' if len(missing) > 6 else ''}"
        note = f"{note}; {extra}" if note else extra
    return PerLayerReport(artifact, rows, first, jump, atol, rtol, len(x), note,
                          min_sqnr if precision == "int8" else None, weak)


def format_per_layer(rep: dict[str, Any]) -> str:
    """onnx2tf-style table: one row per point, the first point beyond tolerance marked."""
    quant = rep.get("min_sqnr") is not None
    lines = [f"{'point':<12} {'shape':<14} {'max abs':>9} {'rel rms':>9} {'cosine':>10} " + (f"{'SQNR dB':>8} " if quant else "")
             + f"{'status':<8} where in the artifact"]
    for r in rep["rows"]:
        shape = "x".join(str(s) for s in r["shape"])
        if r["tensor"] is None:
            lines.append(f"{r['point']:<12} {shape:<14} {'-':>9} {'-':>9} {'-':>10} {'missing':<8} (no tensor of this size after the previous match)")
            continue
        if quant:
            sq = r.get("sqnr_db")
            status = ("LOW" if r["point"] == rep.get("first_weak_point") else "low" if sq is not None and sq < rep["min_sqnr"]
                      else "ok")
        else:
            status = "ok" if r["ok"] else "GROWS" if r["point"] == rep["first_divergence"] else "off"
        # The converter's own tensor names (e.g. litert-torch's wrapper paths) mean nothing to a user: the row says
        # "output of <unit>" and the op position; the tensor name stays in the JSON report.
        where = f"output of {r['point']}, op #{r['position']}"
        lines.append(
            f"{r['point']:<12} {shape:<14} {r['max_abs_error']:>9.2e} {r['rel_rms_error']:>9.2e} {r['cosine']:>10.6f} "
            + (f"{_sq(r.get('sqnr_db')):>8} " if quant else "") + f"{status:<8} {where} ({r['view']}"
            + (", matched by name" if r["matched_by"] == "name" else "") + ")"
        )
    if quant:
        if rep.get("first_weak_point"):
            row = next(r for r in rep["rows"] if r["point"] == rep["first_weak_point"])
            lines.append(f"int8 loses the signal at {row['point']}: SQNR {_sq(row['sqnr_db'])} dB < {rep['min_sqnr']:g} dB "
                         f"(cosine {row['cosine']:.4f}); try export --int8 --keep-float {row['point']}")
        else:
            lines.append(f"every point keeps SQNR >= {rep['min_sqnr']:g} dB")
    elif rep["first_divergence"]:
        row = next(r for r in rep["rows"] if r["point"] == rep["first_divergence"])
        lines.append(f"error first grows at {row['point']}: max abs err {row['max_abs_error']:.3g} > tolerance "
                     f"{row['tolerance']:.3g} (atol {rep['atol']:g} + rtol {rep['rtol']:g} x max|ref|)")
    else:
        lines.append(f"all points within atol {rep['atol']:g} + rtol {rep['rtol']:g} x max|ref|")
    if not quant and rep.get("largest_jump") and rep["largest_jump"] != rep["first_divergence"]:
        lines.append(f"largest jump in relative error: {rep['largest_jump']}")
    if rep.get("note"):
        lines.append(f"note: {rep['note']}")
    return "\n".join(lines)


def _sq(v: float | None) -> str:
    return "inf" if v is None else f"{v:.1f}"
