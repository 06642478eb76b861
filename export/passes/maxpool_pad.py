"""Pass: PADV2 before a max-pool -> CONCATENATION with constant blocks of the same pad value, exactly.

Why: litert-torch lowers PyTorch's implicit -inf padding of MaxPool2d(3, 2, padding=1) to a PADV2 with a
-inf (or, in int8, -128) constant, which XNNPACK does not take (whatever the constant): the graph is cut into
two partitions after the first convolution. XNNPACK does take PAD, but its constant-pad kernel is slow:
measured on ShuffleNetV2's stem at 64x64 (1 thread, fp32), PAD + MAX_POOL_2D cost 20 us where the graph
as written (PADV2 outside XNNPACK) cost 12.7 us and this pass's concatenations 9 us, which made every folded
graph slower than the reference on small inputs. So the padding is written as concatenations of constant
blocks that hold the PADV2's own pad value, width first, then height (whole contiguous rows):
- the same values at the same positions, whatever the input's sign (no ReLU or edge reasoning needed);
- rows and columns past the last pooling window are dropped (a 3x3 stride-2 pool over an even side never
  reads its bottom/right padding), so the pool reads a smaller tensor and its output is unchanged.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from shufflenet_edge.export.passes.graph import Graph, schema


def _read_after(n: int, before: int, after: int, users: list[Any], axis: int) -> int:
    """Padding after the input that some VALID pooling window reads (the rest is never read)."""
    need = 0
    for u in users:
        o = u.builtinOptions
        k, s = (int(o.filterHeight), int(o.strideH)) if axis == 1 else (int(o.filterWidth), int(o.strideW))
        out = (n + before + after - k) // s + 1
        need = max(need, (out - 1) * s + k - before - n)
    return min(after, max(need, 0))


def _why_not(g: Graph, op: Any, users: list[Any]) -> str | None:
    if not users or not all(g.op_name(u) == "MAX_POOL_2D" for u in users):
        return "not feeding only max-pools"
    pads = g.const(int(op.inputs[1]))
    value = g.const(int(op.inputs[2])) if len(op.inputs) > 2 and op.inputs[2] >= 0 else None
    if pads is None or value is None or value.size != 1 or len(g.shape(int(op.inputs[0]))) != 4:
        return "padding or pad value not constant, or not a rank-4 tensor"
    if pads.reshape(4, 2)[[0, 3]].any():
        return "padded outside height and width"
    if any(u.builtinOptions.padding != schema().Padding.VALID for u in users):
        return "a max-pool with its own SAME padding"
    return None


def _block(g: Graph, like: int, shape: tuple[int, ...], axis: int, n: int, value: np.ndarray, name: str) -> list[int]:
    """[a constant tensor of `shape` with `n` along `axis`, every element `value`], or [] when n is 0."""
    if not n:
        return []
    size = list(shape)
    size[axis] = n
    dtype = g.dtype(like)
    return [g.add_tensor(tuple(size), dtype, name, like=like, data=np.full(size, value, dtype=dtype))]


def run(g: Graph) -> dict[str, Any]:
    cons = g.consumers()
    changed = 0
    skipped = []
    for op in list(g.ops):
        if g.op_name(op) != "PADV2":
            continue
        x = int(op.inputs[0])
        users = cons.get(int(op.outputs[0]), [])
        why = _why_not(g, op, users)
        if why is not None:
            skipped.append(f"PADV2 at tensor {x}: {why}")
            continue
        pads = g.const(int(op.inputs[1])).reshape(4, 2)
        value = g.const(int(op.inputs[2])).reshape(())
        ops: list[Any] = []
        t = x
        for axis in (2, 1):
            shape = g.shape(t)
            before = int(pads[axis][0])
            after = _read_after(shape[axis], before, int(pads[axis][1]), users, axis)
            if not before and not after:
                continue
            name = f"maxpool_pad_{x}_{axis}"
            parts = _block(g, x, shape, axis, before, value, name + "_before") + [t] + \
                _block(g, x, shape, axis, after, value, name + "_after")
            cat, t = g.concat(parts, axis, name)
            ops.append(cat)
        g.replace_ops([op], ops)
        for u in users:
            u.inputs = np.asarray([t] + [int(i) for i in u.inputs[1:]], dtype=np.int32)
        changed += 1
    return {"pass": "maxpool_pad", "rewritten": changed, "skipped": skipped}
