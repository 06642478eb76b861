"""Pass: PADV2(-inf) before a max-pool -> padding XNNPACK takes, exactly.

Why: litert-torch lowers PyTorch's implicit -inf padding of MaxPool2d(3, 2, padding=1) to a PADV2
with a -inf (or most-negative int8) constant, which XNNPACK does not take (whatever the constant): the
graph is cut into two partitions after the first convolution. Two exact replacements:
- a ReLU output (>= 0): PAD with zeros. The max over a window that contains a real element >= 0 is the
  same whether the pad is -inf or 0; in int8, PAD fills with the zero point, i.e. the value 0.0;
- any other input (NanoDet's LeakyReLU stem): the edge rows and columns repeated (SLICE + CONCATENATION).
  A window of size k over a padding p < k that covers a padded position also covers the edge element
  the padding repeats, so its max is unchanged.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from shufflenet_edge.export.passes.graph import Graph, schema


def _is_relu_output(g: Graph, t: int, prod: dict[int, Any]) -> bool:
    op = prod.get(t)
    if op is None:
        return False
    name = g.op_name(op)
    if name in ("RELU", "RELU6", "RELU_0_TO_1"):
        return True
    opts = op.builtinOptions
    act = getattr(opts, "fusedActivationFunction", None)
    A = schema().ActivationFunctionType
    if act in (A.RELU, A.RELU6, A.RELU_N1_TO_1 if False else A.RELU):
        return True
    # int8: a ReLU fused into requantization shows as an output range clamp at the zero point.
    q = g.quant(t)
    return bool(q is not None and g.dtype(t) == np.int8 and q[1] == -128)


def run(g: Graph) -> dict[str, Any]:
    prod = g.producers()
    cons = g.consumers()
    changed = 0
    skipped = []
    for op in list(g.ops):
        if g.op_name(op) != "PADV2":
            continue
        x = int(op.inputs[0])
        out = int(op.outputs[0])
        users = cons.get(out, [])
        if not users or not all(g.op_name(u) == "MAX_POOL_2D" for u in users):
            skipped.append(f"PADV2 at tensor {x}: not feeding a max-pool")
            continue
        if _is_relu_output(g, x, prod):
            new = [g.make_op("PAD", [x, int(op.inputs[1])], [out], schema().PadOptionsT(), "PadOptions")]
        else:
            why = _why_not_edge(g, op, users)
            if why is not None:
                skipped.append(f"PADV2 at tensor {x}: {why}")
                continue
            new = _edge_pad(g, x, out, g.const(int(op.inputs[1])))
        g.replace_ops([op], new)
        changed += 1
    return {"pass": "maxpool_pad", "rewritten": changed, "skipped": skipped}


def _why_not_edge(g: Graph, op: Any, users: list[Any]) -> str | None:
    pads = g.const(int(op.inputs[1]))
    shape = g.shape(int(op.inputs[0]))
    if pads is None or len(shape) != 4 or shape[0] != 1:
        return "input not known to be >= 0, and not a batch-1 rank-4 tensor with constant padding"
    pads = pads.reshape(4, 2)
    if pads[0].any() or pads[3].any():
        return "input not known to be >= 0, and padded outside height and width"
    for u in users:
        o = u.builtinOptions
        if (int(pads[1].max()) >= int(o.filterHeight) or int(pads[2].max()) >= int(o.filterWidth)
                or o.padding != schema().Padding.VALID):
            return "input not known to be >= 0, and the padding reaches past the pooling window"
    return None


def _edge_pad(g: Graph, x: int, out: int, pads: np.ndarray) -> list[Any]:
    """(1, H, W, C) -> the edge rows, then the edge columns, repeated as `pads` says (SLICE + CONCATENATION);
    the last concatenation writes the PADV2's output tensor."""
    p = pads.reshape(4, 2)
    axes = [a for a in (1, 2) if p[a].any()]
    ops: list[Any] = []
    t = x
    for axis in axes:
        before, after = int(p[axis][0]), int(p[axis][1])
        shape = list(g.shape(t))
        edges: dict[int, int] = {}
        for edge, n in ((0, before), (shape[axis] - 1, after)):
            if n:
                begin = [0, 0, 0, 0]
                begin[axis] = edge
                size = list(shape)
                size[axis] = 1
                name = f"maxpool_edge_{out}_{axis}_{edge}"
                edges[edge] = g.add_tensor(tuple(size), g.dtype(t), name, like=t)
                ops.append(g.make_op("SLICE", [t, g.const_i32(begin, name + "/begin"), g.const_i32(size, name + "/size")],
                                     [edges[edge]], schema().SliceOptionsT(), "SliceOptions"))
        inputs = [edges.get(0, -1)] * before + [t] + [edges.get(shape[axis] - 1, -1)] * after
        cat, t = g.concat(inputs, axis, f"maxpool_edge_{out}_{axis}", out=out if axis == axes[-1] else None)
        ops.append(cat)
    return ops
