"""Pass: a CONCATENATION of more than 5 inputs -> a two-level tree of concatenations of at most 5, exactly.

Why: XNNPACK's TFLite delegate takes a CONCATENATION of at most 5 inputs; a longer one runs on the CPU kernels and
cuts the graph into two more partitions (measured: a 6-input channel concatenation between two convolutions gave 2
partitions where 5 gave 1). litert-torch merges nested concatenations written in PyTorch back into one, so the
tree is made here. The first inputs go to the top concatenation as they are, the rest in groups concatenated first:
the same values in the same order (int8: each group takes the output's quantization, and requantizing twice to the
same scale is the identity).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from shufflenet_edge.export.passes.graph import Graph

MAX_INPUTS = 5


def groups(n: int, most: int = MAX_INPUTS) -> tuple[int, int]:
    """(inputs taken as they are, number of groups) for n inputs: the fewest groups with raw + most * groups >= n."""
    g = -(-(n - most) // (most - 1))
    return most - g, g


def run(g: Graph) -> dict[str, Any]:
    changed = 0
    for op in list(g.ops):
        if g.op_name(op) != "CONCATENATION" or len(op.inputs) <= MAX_INPUTS:
            continue
        ins = [int(i) for i in op.inputs]
        out = int(op.outputs[0])
        opts = op.builtinOptions
        axis = int(opts.axis) % len(g.shape(out))
        raw, n = groups(len(ins))
        rest = ins[raw:]
        size = -(-len(rest) // n)
        new_ops, top = [], ins[:raw]
        for k in range(0, len(rest), size):
            part = rest[k:k + size]
            shape = list(g.shape(out))
            shape[axis] = sum(g.shape(i)[axis] for i in part)
            t = g.add_tensor(tuple(shape), g.dtype(out), f"concat_fanin_{out}_{k}", like=out)
            sub, _ = g.concat(part, axis, f"concat_fanin_{out}_{k}", out=t)
            sub.builtinOptions.fusedActivationFunction = opts.fusedActivationFunction
            new_ops.append(sub)
            top.append(t)
        op.inputs = np.asarray(top, dtype=np.int32)
        g.replace_ops([], new_ops)
        changed += 1
    return {"pass": "concat_fanin", "rewritten": changed}
