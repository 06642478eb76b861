"""Pass: TRANSPOSE NHWC->NCHW feeding only a MEAN over H and W -> the MEAN over the NHWC axes.

Why: a PyTorch head's global average pool written as `x.mean([2, 3])` on an NCHW tensor is converted with the
channel-last graph transposed back to NCHW first, only to average away H and W: one TRANSPOSE of the last feature
map (7x7x1024 in ShuffleNetV2) that moves data for nothing. The mean of the same values over axes (1, 2) of the
NHWC tensor gives the same (N, C) output: in float the same values summed in another order (rounding only), in
int8 the same integer sums; MEAN's own quantization is untouched. Left alone: a transpose
with other consumers, other axes, or a MEAN that keeps its reduced dimensions (its output layout would change).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from shufflenet_edge.export.passes.graph import Graph


def run(g: Graph) -> dict[str, Any]:
    cons = g.consumers()
    outs = g.graph_outputs()
    changed = 0
    for op in list(g.ops):
        if g.op_name(op) != "TRANSPOSE":
            continue
        x, t = int(op.inputs[0]), int(op.outputs[0])
        perm = g.const(int(op.inputs[1]))
        users = cons.get(t, [])
        if perm is None or [int(v) for v in perm.reshape(-1)] != [0, 3, 1, 2] or t in outs or len(users) != 1:
            continue
        mean = users[0]
        axes = g.const(int(mean.inputs[1])) if g.op_name(mean) == "MEAN" else None
        if axes is None or sorted(int(a) % 4 for a in axes.reshape(-1)) != [2, 3] or mean.builtinOptions.keepDims:
            continue
        mean.inputs = np.asarray([x, g.const_i32([1, 2], f"mean_layout_{t}/axes")], dtype=np.int32)
        g.replace_ops([op], [])
        changed += 1
    return {"pass": "mean_layout", "rewritten": changed}
