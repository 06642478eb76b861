"""Pass: store float32 convolution and fully-connected weights as float16 (TFLite's fp16 scheme).

Each float32 constant read by CONV_2D, DEPTHWISE_CONV_2D or FULLY_CONNECTED becomes a float16 constant
followed by a DEQUANTIZE op; GPU delegates run it in fp16, XNNPACK folds the DEQUANTIZE away at load
time. Halves the file size; not exact (fp16 rounding), so the exporter checks it against PyTorch with
a looser tolerance.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from shufflenet_edge.export.passes.graph import Graph, schema

WEIGHT_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")


def run(g: Graph) -> dict[str, Any]:
    done: dict[int, int] = {}
    new_ops = []
    for op in list(g.ops):
        if g.op_name(op) not in WEIGHT_OPS:
            continue
        w = int(op.inputs[1])
        if g.dtype(w) != np.float32:
            continue
        data = g.const(w)
        if data is None:
            continue
        if w not in done:
            half = g.add_tensor(g.shape(w), np.float16, f"fp16_weight_{w}", data=data.astype(np.float16))
            deq = g.add_tensor(g.shape(w), np.float32, f"fp16_weight_{w}/dequantized")
            new_ops.append(g.make_op("DEQUANTIZE", [half], [deq], schema().DequantizeOptionsT(), "DequantizeOptions"))
            done[w] = deq
        inputs = [int(v) for v in op.inputs]
        inputs[1] = done[w]
        op.inputs = np.asarray(inputs, dtype=np.int32)
    g.sg.operators = new_ops + list(g.ops)
    return {"pass": "fp16_weights", "weights_converted": len(done)}
