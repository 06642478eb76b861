"""Pass: nearest-neighbour upsampling by whole factors -> RESHAPE and CONCATENATION copies XNNPACK runs.

Why: XNNPACK takes RESIZE_BILINEAR but not RESIZE_NEAREST_NEIGHBOR, so each nearest upsampling (the
FPN/PAN necks of NanoDet and YOLOv5-Lite, Lite-HRNet's fusion of branches) leaves the op to the reference
kernels and cuts the graph into one more XNNPACK partition, which GPU/NPU delegates also count against.
Upsampling (1, H, W, C) by whole factors (sh, sw) repeats every pixel sh x sw times, and for whole factors
the source pixel is floor(out / s) with or without half-pixel centres, so it is a pure copy:

    RESHAPE (H, W, 1, C) -> CONCATENATION of sw copies on axis 2 -> (H, W, sw, C) = (H, W*sw, C)
    RESHAPE (H, 1, W*sw*C) -> CONCATENATION of sh copies on axis 1 -> RESHAPE (1, H*sh, W*sw, C)

Every tensor rank <= 4; exact in float and in int8 (copies keep the input's quantization, which the
resize's output shares). Left alone: align_corners, batch > 1, non-whole factors, factors above 4.
"""

from __future__ import annotations

from typing import Any

from shufflenet_edge.export.passes.graph import Graph

MAX_FACTOR = 4  # XNNPACK's concatenation takes a handful of inputs; larger factors are rare in these necks


def _why_not(g: Graph, op: Any) -> str | None:
    x, size = int(op.inputs[0]), int(op.inputs[1])
    shape = g.shape(x)
    out_shape = g.shape(int(op.outputs[0]))
    if getattr(op.builtinOptions, "alignCorners", False):
        return "align_corners"
    if len(shape) != 4 or shape[0] != 1 or len(out_shape) != 4:
        return f"input shape {list(shape)} (batch 1, rank 4 only)"
    sz = g.const(size)
    if sz is None:
        return "the output size is computed at run time"
    (h, w), (oh, ow) = shape[1:3], [int(v) for v in sz.reshape(-1)[:2]]
    if oh % h or ow % w:
        return f"{h}x{w} -> {oh}x{ow} is not a whole factor"
    if max(oh // h, ow // w) > MAX_FACTOR:
        return f"factor {oh // h}x{ow // w} above {MAX_FACTOR}"
    return None


def run(g: Graph) -> dict[str, Any]:
    changed = 0
    skipped = []
    for op in list(g.ops):
        if g.op_name(op) != "RESIZE_NEAREST_NEIGHBOR":
            continue
        x, out = int(op.inputs[0]), int(op.outputs[0])
        why = _why_not(g, op)
        if why is not None:
            skipped.append(f"RESIZE_NEAREST_NEIGHBOR at tensor {x}: {why}")
            continue
        _, h, w, c = g.shape(x)
        _, oh, ow, _ = g.shape(out)
        sh, sw = oh // h, ow // w
        name = f"resize_nearest_{out}"
        new: list[Any] = []
        t = x
        if sw > 1:
            r, t = g.reshape(t, (h, w, 1, c), name + "/w_in")
            cat, t = g.concat([t] * sw, 2, name + "/w_copies")
            new += [r, cat]
        if sh > 1:
            r, t = g.reshape(t, (h, 1, w * sw * c), name + "/h_in")
            cat, t = g.concat([t] * sh, 1, name + "/h_copies")
            new += [r, cat]
        last, _ = g.reshape(t, (1, oh, ow, c), name + "/out", out=out)
        g.replace_ops([op], new + [last])
        changed += 1
    return {"pass": "resize_nearest", "rewritten": changed, "skipped": skipped}
