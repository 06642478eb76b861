"""Pass: PADV2(-inf) before the stem max-pool -> PAD (zero), when the input is a ReLU output.

Why: litert-torch lowers PyTorch's implicit -inf padding of MaxPool2d(3, 2, padding=1) to a PADV2
with a -inf (or most-negative int8) constant, which XNNPACK does not take: the graph is cut into two
partitions after the first convolution. Exact when the padded tensor is >= 0 (a ReLU output): the max
over a window that contains a real element >= 0 is the same whether the pad is -inf or 0. In int8, PAD
fills with the zero point, i.e. the value 0.0.
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
        if not _is_relu_output(g, x, prod):
            skipped.append(f"PADV2 at tensor {x}: input not known to be >= 0")
            continue
        new = g.make_op("PAD", [x, int(op.inputs[1])], [out], schema().PadOptionsT(), "PadOptions")
        g.replace_ops([op], [new])
        changed += 1
    return {"pass": "maxpool_pad", "rewritten": changed, "skipped": skipped}
