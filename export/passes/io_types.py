"""Pass: float or uint8 I/O for a full-integer int8 model.

Why: PT2E + litert-torch produce int8 input and output. Android apps often feed uint8 camera bytes or
want float logits. ``float``: a QUANTIZE (float -> int8) op at the input and a DEQUANTIZE at the output,
with the model's own scales. ``uint8``: a QUANTIZE (uint8 -> int8) at the input, whose uint8 tensor has
the same scale and zero point + 128 (exact: every value maps to itself), and int8 -> uint8 at the
output likewise.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from shufflenet_edge.export.passes.graph import Graph, schema


def _retype_quant(g: Graph, like: int, dtype: Any, name: str) -> int:
    t = g.add_tensor(g.shape(like), dtype, name, like=like)
    if dtype == np.uint8:
        q = g.tensor(t).quantization
        q.zeroPoint = np.asarray(q.zeroPoint, dtype=np.int64) + 128
    elif dtype == np.float32:
        g.tensor(t).quantization = None
    return t


def run(g: Graph, io_type: str) -> dict[str, Any]:
    if io_type not in ("float", "uint8"):
        raise ValueError(f"io_type must be float or uint8, got {io_type!r}")
    dtype = np.float32 if io_type == "float" else np.uint8
    changed = []
    new_inputs = []
    for k, i in enumerate(int(v) for v in g.sg.inputs):
        if g.dtype(i) != np.int8:
            new_inputs.append(i)
            continue
        outer = _retype_quant(g, i, dtype, f"input_{io_type}_{k}")
        g.sg.operators.insert(0, g.make_op("QUANTIZE", [outer], [i], schema().QuantizeOptionsT(), "QuantizeOptions"))
        new_inputs.append(outer)
        changed.append(f"input {k}: {io_type}")
    new_outputs = []
    for k, o in enumerate(int(v) for v in g.sg.outputs):
        if g.dtype(o) != np.int8:
            new_outputs.append(o)
            continue
        outer = _retype_quant(g, o, dtype, f"output_{io_type}_{k}")
        if io_type == "float":
            op = g.make_op("DEQUANTIZE", [o], [outer], schema().DequantizeOptionsT(), "DequantizeOptions")
        else:
            op = g.make_op("QUANTIZE", [o], [outer], schema().QuantizeOptionsT(), "QuantizeOptions")
        g.sg.operators.append(op)
        new_outputs.append(outer)
        changed.append(f"output {k}: {io_type}")
    remap = dict(zip((int(v) for v in g.sg.inputs), new_inputs)) | dict(zip((int(v) for v in g.sg.outputs), new_outputs))
    g.sg.inputs = np.asarray(new_inputs, dtype=np.int32)
    g.sg.outputs = np.asarray(new_outputs, dtype=np.int32)
    for sd in g.model.signatureDefs or []:
        for tm in list(sd.inputs or []) + list(sd.outputs or []):
            tm.tensorIndex = remap.get(int(tm.tensorIndex), int(tm.tensorIndex))
    return {"pass": "io_types", "io": io_type, "changed": changed}
