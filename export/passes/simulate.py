"""Run TFLite data-movement ops in numpy on index arrays: the exact meaning of a region of the graph.

Feeding ``arange(numel)`` through a chain of TRANSPOSE/RESHAPE/SLICE/SPLIT/GATHER ops tells, for every
element of every output, which input element it is. Passes use this to prove a rewrite exact before
committing it: the new ops must give the very same index arrays.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from shufflenet_edge.export.passes.graph import Graph

DATA_MOVEMENT = {"TRANSPOSE", "RESHAPE", "SLICE", "STRIDED_SLICE", "SPLIT", "SPLIT_V", "GATHER", "SQUEEZE", "EXPAND_DIMS", "PACK", "UNPACK"}


class Unsupported(Exception):
    pass


def run_op(g: Graph, op: Any, env: dict[int, np.ndarray]) -> None:
    name = g.op_name(op)
    ins = [int(i) for i in op.inputs]

    def val(i: int) -> np.ndarray:
        if i in env:
            return env[i]
        c = g.const(i)
        if c is None:
            raise Unsupported(f"{name}: non-constant side input")
        return c

    outs = [int(o) for o in op.outputs]
    if name == "TRANSPOSE":
        env[outs[0]] = np.transpose(val(ins[0]), val(ins[1]).astype(int))
    elif name == "RESHAPE":
        env[outs[0]] = val(ins[0]).reshape(g.shape(outs[0]))
    elif name in ("SQUEEZE", "EXPAND_DIMS"):
        env[outs[0]] = val(ins[0]).reshape(g.shape(outs[0]))
    elif name == "SLICE":
        x, begin, size = val(ins[0]), val(ins[1]), val(ins[2])
        sl = tuple(slice(int(b), None if int(s) == -1 else int(b) + int(s)) for b, s in zip(begin, size))
        env[outs[0]] = x[sl]
    elif name == "STRIDED_SLICE":
        x, b, e, s = val(ins[0]), val(ins[1]), val(ins[2]), val(ins[3])
        o = op.builtinOptions
        if o is not None and (o.ellipsisMask or o.newAxisMask or o.shrinkAxisMask):
            raise Unsupported("STRIDED_SLICE with ellipsis/new-axis/shrink masks")
        sl = []
        for d in range(x.ndim):
            bb = None if (o is not None and o.beginMask >> d & 1) else int(b[d])
            ee = None if (o is not None and o.endMask >> d & 1) else int(e[d])
            sl.append(slice(bb, ee, int(s[d])))
        env[outs[0]] = x[tuple(sl)].reshape(g.shape(outs[0]))
    elif name == "SPLIT":
        axis = int(val(ins[0]))
        for o_, part in zip(outs, np.split(val(ins[1]), len(outs), axis=axis)):
            env[o_] = part
    elif name == "SPLIT_V":
        x, sizes, axis = val(ins[0]), val(ins[1]), int(val(ins[2]))
        idx = np.cumsum(sizes)[:-1]
        for o_, part in zip(outs, np.split(x, idx, axis=axis)):
            env[o_] = part
    elif name == "GATHER":
        axis = op.builtinOptions.axis if op.builtinOptions is not None else 0
        env[outs[0]] = np.take(val(ins[0]), val(ins[1]).astype(int), axis=axis)
    elif name == "PACK":
        axis = op.builtinOptions.axis
        env[outs[0]] = np.stack([val(i) for i in ins], axis=axis)
    elif name == "UNPACK":
        axis = op.builtinOptions.axis
        for k, o_ in enumerate(outs):
            env[o_] = np.take(val(ins[0]), k, axis=axis)
    else:
        raise Unsupported(name)


def run_ops(g: Graph, ops: list[Any], start: int, shape: tuple[int, ...] | None = None) -> dict[int, np.ndarray]:
    """Index arrays of every tensor the ops produce, starting from `start` = arange."""
    shp = shape or g.shape(start)
    env = {start: np.arange(int(np.prod(shp))).reshape(shp)}
    for op in ops:
        run_op(g, op, env)
    return env
