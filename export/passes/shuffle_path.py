"""Pass: rewrite every unit's shuffle region into one canonical rank-4 data path.

Why: litert-torch converts the channel shuffle through NHWC<->NCHW transposes around a reshape (the
reference form: 3 TRANSPOSE, rank-5 tensors, plus SLICEs for the next unit's halves). This pass finds
each *region*: a tensor produced by a compute op (the concat of a V2 unit, or the first 1x1 conv of a V1
unit) that is consumed only by data-movement ops, followed through those ops to the tensors that
compute ops read again (the next unit's halves). It computes the region's exact meaning by running its
ops on index arrays (simulate.py), emits a replacement recipe, runs that the same way, and commits the
rewrite only if every endpoint gets the very same index array. Endpoint tensors keep their indices, so
consumers are untouched; quantization parameters are copied from the region's input (data movement
does not change values).

Recipes (NHWC, batch 1, input (1, H, W, C)):
- ``delegate``: RESHAPE (H*W, a, b, c) -> one TRANSPOSE -> one SPLIT on the outer axis -> free RESHAPEs.
  For a V2 unit (k=2, h=2, j=m/2) -> (h, H*W, j, k); for a V1 group shuffle (H*W, g, C/g) -> (H*W, C/g, g).
  Fewest ops and launches, every tensor rank <= 4: for GPU/NPU/NNAPI delegates.
- ``cpu``: tile-friendly transposes for XNNPACK: NHWC -> planar (C, H*W) with a 2-D transpose, the
  shuffle as a move of whole H*W planes (rank 3/4), the SPLIT on the outer (planar) axis, and 2-D
  transposes back to NHWC per half. On x86 XNNPACK an element-interleaving transpose (the delegate
  recipe) is slower than three tile transposes.
- ``reference3``: the reference's own three transposes with the rank-5 reshape at rank 3, then one SPLIT
  on the channel axis (what docs/design.md (the fold)'s prototype measured at 0.98 of the reference).

Any other channel selection (megvii V2's even/odd split, V1's inverse order, other group counts): the
endpoints' index arrays give the channel permutation ``P`` they take together; `graph_fold.factorize`
finds ``C = d1*d2[*d3]`` and an axis order reproducing ``P``, and the same three recipes are built from it
(``delegate``: one rank-<=4 TRANSPOSE (HW, d...) -> (d_outer, HW, ...) and one SPLIT; ``cpu`` /
``reference3``: planar transposes around a plane move).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from shufflenet_edge.export.passes.graph import Graph
from shufflenet_edge.export.passes.simulate import DATA_MOVEMENT, Unsupported, run_ops

RECIPES = ("delegate", "cpu", "reference3")


def find_regions(g: Graph) -> list[dict[str, Any]]:
    prod = g.producers()
    cons = g.consumers()
    outputs = g.graph_outputs()
    regions = []
    for op in g.ops:
        if g.op_name(op) in DATA_MOVEMENT:
            continue
        for start in (int(o) for o in op.outputs):
            users = cons.get(start, [])
            if not users or start in outputs or not all(g.op_name(u) in DATA_MOVEMENT for u in users):
                continue
            region_ops: list[Any] = []
            endpoints: list[int] = []
            frontier = [start]
            ok = True
            seen = set()
            while frontier and ok:
                t = frontier.pop()
                for u in cons.get(t, []):
                    if id(u) in seen:
                        continue
                    seen.add(id(u))
                    region_ops.append(u)
                    for o in (int(x) for x in u.outputs):
                        us = cons.get(o, [])
                        dm = [x for x in us if g.op_name(x) in DATA_MOVEMENT]
                        if o in outputs or len(dm) < len(us):
                            if dm:
                                ok = False  # mixed consumers: leave alone
                            endpoints.append(o)
                        elif us:
                            frontier.append(o)
            if not ok or not endpoints:
                continue
            # Side inputs must be constants.
            internal = {start} | {int(o) for u in region_ops for o in u.outputs}
            for u in region_ops:
                for i in (int(x) for x in u.inputs):
                    if i >= 0 and i not in internal and g.const(i) is None:
                        ok = False
            if ok:
                ordered = [o for o in g.ops if any(o is r for r in region_ops)]
                regions.append({"start": start, "ops": ordered, "endpoints": endpoints, "producer": prod.get(start)})
    return regions


def _v2_recipe(g: Graph, recipe: str, x: int, name: str) -> tuple[list[Any], list[int]]:
    _, h, w, c = g.shape(x)
    m = c // 2
    hw = h * w
    ops: list[Any] = []

    def add(pair: tuple[Any, Any]) -> Any:
        ops.append(pair[0])
        return pair[1]

    if recipe == "delegate":
        r = add(g.reshape(x, (hw, 2, 2, m // 2), name + "/kx"))
        t = add(g.transpose(r, (2, 0, 3, 1), name + "/shuffle"))
        s_op, halves = g.split(t, 0, 2, name + "/split")
        ops.append(s_op)
        outs = [add(g.reshape(s, (1, h, w, m), name + f"/half{k}")) for k, s in enumerate(halves)]
        return ops, outs
    if recipe == "cpu":
        r = add(g.reshape(x, (hw, c), name + "/flat"))
        p = add(g.transpose(r, (1, 0), name + "/planar"))  # (2m, HW) = (k, h, j, HW)
        p4 = add(g.reshape(p, (2, 2, m // 2, hw), name + "/khj"))
        t = add(g.transpose(p4, (1, 2, 0, 3), name + "/planes"))  # (h, j, k, HW)
        s_op, halves = g.split(t, 0, 2, name + "/split")
        ops.append(s_op)
        outs = []
        for k, s in enumerate(halves):
            s2 = add(g.reshape(s, (m, hw), name + f"/half{k}/planar"))
            b = add(g.transpose(s2, (1, 0), name + f"/half{k}/nhwc"))
            outs.append(add(g.reshape(b, (1, h, w, m), name + f"/half{k}")))
        return ops, outs
    if recipe == "reference3":
        r = add(g.reshape(x, (hw, c), name + "/flat"))
        p = add(g.transpose(r, (1, 0), name + "/planar"))
        p3 = add(g.reshape(p, (2, m, hw), name + "/km"))
        t = add(g.transpose(p3, (1, 0, 2), name + "/planes"))
        f = add(g.reshape(t, (c, hw), name + "/shuffled"))
        b = add(g.transpose(f, (1, 0), name + "/nhwc"))
        b4 = add(g.reshape(b, (1, h, w, c), name + "/nhwc4"))
        s_op, halves = g.split(b4, 3, 2, name + "/split")
        ops.append(s_op)
        return ops, halves
    raise ValueError(recipe)


def _v1_recipe(g: Graph, recipe: str, x: int, groups: int, name: str) -> tuple[list[Any], list[int]]:
    _, h, w, c = g.shape(x)
    hw = h * w
    ops: list[Any] = []

    def add(pair: tuple[Any, Any]) -> Any:
        ops.append(pair[0])
        return pair[1]

    if recipe == "delegate":
        r = add(g.reshape(x, (1, hw, groups, c // groups), name + "/hwgc"))
        t = add(g.transpose(r, (0, 1, 3, 2), name + "/shuffle"))
        return ops, [add(g.reshape(t, (1, h, w, c), name + "/out"))]
    r = add(g.reshape(x, (hw, c), name + "/flat"))
    p = add(g.transpose(r, (1, 0), name + "/planar"))
    p3 = add(g.reshape(p, (groups, c // groups, hw), name + "/gc"))
    t = add(g.transpose(p3, (1, 0, 2), name + "/planes"))
    f = add(g.reshape(t, (c, hw), name + "/shuffled"))
    b = add(g.transpose(f, (1, 0), name + "/nhwc"))
    return ops, [add(g.reshape(b, (1, h, w, c), name + "/out"))]


def _generic_recipe(g: Graph, recipe: str, x: int, dims: tuple[int, ...], axes: tuple[int, ...], n_end: int,
                    name: str) -> tuple[list[Any], list[int]]:
    """Endpoints = the channel permutation arange(C).reshape(dims).permute(axes), cut in n_end equal parts."""
    _, h, w, c = g.shape(x)
    hw = h * w
    ce = c // n_end
    ops: list[Any] = []

    def add(pair: tuple[Any, Any]) -> Any:
        ops.append(pair[0])
        return pair[1]

    nd = len(dims)
    if recipe == "delegate":
        r = add(g.reshape(x, (hw, *dims), name + "/hw_d"))
        if n_end == 1:  # (HW, d...) -> (HW, d_axes...): one transpose, NHWC order kept
            t = add(g.transpose(r, (0, *(1 + a for a in axes)), name + "/shuffle"))
            return ops, [add(g.reshape(t, (1, h, w, c), name + "/out"))]
        # (HW, d...) -> (d_axes[0], HW, d_axes[1:]...): the outer axis holds the endpoints when it has n_end entries
        t = add(g.transpose(r, (1 + axes[0], 0, *(1 + a for a in axes[1:])), name + "/shuffle"))
        if dims[axes[0]] != n_end:
            raise ValueError("outer axis does not hold the endpoints")
        s_op, parts = g.split(t, 0, n_end, name + "/split")
        ops.append(s_op)
        return ops, [add(g.reshape(s, (1, h, w, ce), name + f"/part{k}")) for k, s in enumerate(parts)]
    r = add(g.reshape(x, (hw, c), name + "/flat"))
    pl = add(g.transpose(r, (1, 0), name + "/planar"))
    pd = add(g.reshape(pl, (*dims, hw), name + "/d"))
    t = add(g.transpose(pd, (*axes, nd), name + "/planes"))
    if recipe == "cpu" and n_end > 1:
        tt = add(g.reshape(t, (n_end, ce, hw), name + "/parts"))
        s_op, parts = g.split(tt, 0, n_end, name + "/split")
        ops.append(s_op)
        outs = []
        for k, s in enumerate(parts):
            s2 = add(g.reshape(s, (ce, hw), name + f"/part{k}/planar"))
            b = add(g.transpose(s2, (1, 0), name + f"/part{k}/nhwc"))
            outs.append(add(g.reshape(b, (1, h, w, ce), name + f"/part{k}")))
        return ops, outs
    f = add(g.reshape(t, (c, hw), name + "/shuffled"))
    b = add(g.transpose(f, (1, 0), name + "/nhwc"))
    b4 = add(g.reshape(b, (1, h, w, c), name + "/nhwc4"))
    if n_end == 1:
        return ops, [b4]
    s_op, parts = g.split(b4, 3, n_end, name + "/split")
    ops.append(s_op)
    return ops, list(parts)


def _generic_candidates(g: Graph, region: dict[str, Any], want: dict[int, np.ndarray], recipe: str,
                        name: str) -> list[Callable[[], tuple[list[Any], list[int]]]]:
    from itertools import permutations

    from shufflenet_edge.graph_fold import factorize

    x = region["start"]
    _, h, w, c = g.shape(x)
    ends = region["endpoints"]
    sels = []
    for e in ends:
        a = want.get(e)
        if a is None or a.ndim != 4 or a.shape[:3] != (1, h, w):
            return []
        sels.append((a[0, 0, 0] % c).astype(np.int64))
    if len({len(s) for s in sels}) != 1 or sum(len(s) for s in sels) != c or len(ends) > 3:
        return []
    out: list[Callable[[], tuple[list[Any], list[int]]]] = []
    import torch

    for order in permutations(range(len(ends))):
        perm = np.concatenate([sels[i] for i in order])
        if sorted(perm.tolist()) != list(range(c)):
            continue
        fac = factorize(torch.from_numpy(perm))
        if fac is None:
            continue
        dims, axes = fac
        out.append(lambda dims=dims, axes=axes: _generic_recipe(g, recipe, x, dims, axes, len(ends), name))
    return out


def _candidates(g: Graph, region: dict[str, Any], recipe: str, k: int) -> list[Callable[[], tuple[list[Any], list[int]]]]:
    x = region["start"]
    shp = g.shape(x)
    name = f"shuffle_path_{k}"
    out: list[Callable[[], tuple[list[Any], list[int]]]] = []
    if len(shp) != 4 or shp[0] != 1:
        return out
    c = shp[3]
    n_end = len(region["endpoints"])
    if n_end == 2 and c % 4 == 0:
        out.append(lambda: _v2_recipe(g, recipe, x, name))
    if n_end == 1:
        for groups in (2, 3, 4, 8):
            if c % groups == 0:
                out.append(lambda groups=groups: _v1_recipe(g, "delegate" if recipe == "delegate" else "cpu", x, groups, name))
    return out


def _not_a_feature_map(g: Graph, start: int) -> str | None:
    """Why a region's start is not what the recipes take (a batch-1 NHWC feature map), or None."""
    shp = g.shape(start)
    if len(shp) != 4:
        return f"starts at a rank-{len(shp)} tensor {list(shp)}, not a rank-4 NHWC feature map (left alone)"
    if shp[0] != 1:
        return f"starts at a batch-{shp[0]} tensor {list(shp)}; the recipes are built for batch 1 (left alone)"
    return None


def _not_a_channel_selection(g: Graph, start: int, endpoints: list[int], want: dict[int, np.ndarray]) -> str | None:
    """Why the endpoints are not channel selections of the (1, H, W, C) start (each position's channels some of the
    start's channels at the same position, e.g. a detector head's reshape to (1, N, C) or rank 5), or None."""
    _, h, w, c = g.shape(start)
    base = (np.arange(h * w) * c).reshape(1, h, w, 1)
    for e in endpoints:
        a = want[e]
        if a.ndim != 4 or a.shape[:3] != (1, h, w) or not np.array_equal(a, base + a[0, 0, 0]):
            return (f"endpoint tensor {e} {list(a.shape)} is not a channel selection of the (1, {h}, {w}, {c}) start: "
                    "its shape or order is not NHWC channels of the start (a layout change: NCHW<->NHWC, a reshape to (1, N, C), rank 5); left alone")
    return None


def _contiguous(sel: np.ndarray) -> bool:
    return bool(len(sel)) and np.array_equal(sel, np.arange(sel[0], sel[0] + len(sel)))


def _describe(sel: np.ndarray) -> str:
    v = sel.tolist()
    return str(v) if len(v) <= 8 else f"[{', '.join(str(x) for x in v[:6])}, ... ({len(v)} channels)]"


def _find_recipe(g: Graph, region: dict[str, Any], ends: list[int], want: dict[int, np.ndarray], recipe: str,
                 k: int) -> list[Any] | None:
    """The ops of the first candidate recipe that reproduces `ends` exactly, writing into the endpoint tensors
    themselves; None (and nothing added to the graph) if none does."""
    sub = dict(region, endpoints=ends)
    cands = _candidates(g, sub, recipe, k) + _generic_candidates(g, sub, want, recipe, f"shuffle_path_{k}g")
    for make in cands:
        n_tensors, n_buffers = len(g.sg.tensors), len(g.model.buffers)
        try:
            new_ops, outs = make()
        except ValueError:
            new_ops = None
        if new_ops is not None:
            got = run_ops(g, new_ops, region["start"])
            match: dict[int, int] = {}
            for e in ends:
                for o in outs:
                    if o not in match.values() and got[o].shape == want[e].shape and np.array_equal(got[o], want[e]):
                        match[e] = o
                        break
            if len(match) == len(ends):
                for e, o in match.items():
                    last = next(op for op in new_ops if o in (int(v) for v in op.outputs))
                    last.outputs = np.asarray([e if int(v) == o else int(v) for v in last.outputs], dtype=np.int32)
                return new_ops  # type: ignore[no-any-return]
        # Roll back the tensors and buffers the failed candidate added.
        del g.sg.tensors[n_tensors:]
        del g.model.buffers[n_buffers:]
    return None


def run(g: Graph, recipe: str = "delegate") -> dict[str, Any]:
    """Rewrite all regions with `recipe`. Returns counts and the reason for any region left alone.

    Only regions that start at a batch-1 rank-4 (NHWC) feature map and end in channel selections of it are
    candidates; any other region (a detector head's flatten/concat/permute to (1, N, C), rank-3 or rank-5
    tensors) is left as converted, its reason recorded in ``skipped``. An endpoint that is the start itself (a
    transpose pair NHWC -> NCHW -> NHWC beside a shuffle, e.g. for readers whose weights took the permutation) is
    read from the start directly; the other endpoints get the recipe. Regions of plain contiguous slices (a chunk
    of a tensor that was never shuffled) have nothing to rewrite and are listed as such."""
    if recipe not in RECIPES:
        raise ValueError(f"recipe must be one of {RECIPES}, got {recipe!r}")
    regions = find_regions(g)
    rewritten, skipped, n_absorbed = 0, [], 0
    outputs = g.graph_outputs()
    for k, region in enumerate(regions):
        start = region["start"]
        why = _not_a_feature_map(g, start)
        if why:
            skipped.append(f"region at tensor {start}: {why}")
            continue
        try:
            want = run_ops(g, region["ops"], start)
        except Unsupported as e:
            skipped.append(f"region at tensor {start}: cannot simulate ({e})")
            continue
        why = _not_a_channel_selection(g, start, region["endpoints"], want)
        if why:
            skipped.append(f"region at tensor {start}: {why}")
            continue
        qs = {g.quant(start)} | {g.quant(e) for e in region["endpoints"]}
        if len(qs) > 1:
            skipped.append(f"region at tensor {start}: quantization changes inside the region")
            continue
        c = g.shape(start)[3]
        sels = {e: want[e][0, 0, 0] % c for e in region["endpoints"]}
        ident = [e for e in region["endpoints"] if g.shape(e) == g.shape(start) and np.array_equal(sels[e], np.arange(c))]
        rest = [e for e in region["endpoints"] if e not in ident]
        if rest and all(_contiguous(sels[e]) for e in rest):
            skipped.append(f"region at tensor {start}: plain slices of channels in order "
                           f"({', '.join(f'{int(sels[e][0])}..{int(sels[e][-1])}' for e in rest)}), no channel permutation: "
                           "nothing to rewrite")
            continue
        absorbed = [e for e in rest if _absorb(g, e, start, sels[e])]
        rest = [e for e in rest if e not in absorbed]
        new_ops = _find_recipe(g, region, rest, want, recipe, k) if rest else []
        if new_ops is None:
            skipped.append(f"region at tensor {start}: no {recipe} recipe reproduces it exactly (endpoint channels: "
                           + "; ".join(_describe(sels[e]) for e in rest) + ")")
            continue
        # Endpoints equal to the start: their readers read the start; a graph output gets a free RESHAPE.
        region_ids = {id(op) for op in region["ops"]}
        for e in ident:
            for op in g.ops:
                if id(op) not in region_ids and e in (int(i) for i in op.inputs):
                    op.inputs = np.asarray([start if int(i) == e else int(i) for i in op.inputs], dtype=np.int32)
            if e in outputs:
                new_ops.append(g.reshape(start, g.shape(e), f"shuffle_path_{k}/identity", out=e)[0])
        g.replace_ops(region["ops"], new_ops)
        rewritten += 1
        n_absorbed += len(absorbed)
    return {"pass": "shuffle_path", "recipe": recipe, "regions": len(regions), "rewritten": rewritten,
            "absorbed_in_weights": n_absorbed, "skipped": skipped}


def _absorb(g: Graph, e: int, start: int, sel: np.ndarray) -> bool:
    """Move the whole-tensor permutation ``E[..., c] = S[..., sel[c]]`` (endpoint `e`, start `start`) into the
    weights of E's readers, so they read S and no data moves: a full convolution takes it on its input channels; a
    depthwise convolution (multiplier 1) on its channels, and its output then carries the same permutation to its
    own readers, which must take it in turn (as through spatial padding). All or nothing: True when committed.
    Where: a V2 stage's last unit feeding the next stage's first unit or the last 1x1 convolution (the
    torch-level fold does the same to the module).

    Exact: a convolution's channel sum only changes order (int8: the same integer sum; float: rounding order),
    and per-channel quantization parameters move with their channels."""
    c = g.shape(start)[-1]
    if g.shape(e) != g.shape(start) or e in g.graph_outputs() or len(sel) != c:
        return False
    cons = g.consumers()
    edits: list[tuple[Any, int, np.ndarray, int]] = []  # (op, input slot, new value, axis its quantization follows)

    def take(t: int) -> bool:  # every reader of `t` (which holds S permuted by sel) takes the permutation
        readers = cons.get(t, [])
        if not readers or t in g.graph_outputs():
            return False
        for op in readers:
            ins = [int(i) for i in op.inputs]
            if ins.count(t) != 1 or ins[0] != t:
                return False
            name = g.op_name(op)
            if name in ("PAD", "PADV2"):  # spatial padding with one value for every channel: the order passes through
                pads = g.const(ins[1])
                value = g.const(ins[2]) if len(ins) > 2 else None
                if pads is None or pads.shape != (4, 2) or pads[3].any() or (value is not None and value.size != 1):
                    return False
                if not take(int(op.outputs[0])):
                    return False
                continue
            w = g.const(ins[1]) if len(ins) > 1 else None
            if w is None or w.ndim != 4 or w.shape[-1] != c:
                return False
            if name == "CONV_2D":  # W'[..., sel[k]] = W[..., k]: the dot product reads S's channel order
                w2 = np.empty_like(w)
                w2[..., sel] = w
                edits.append((op, 1, w2, -1))
            elif name == "DEPTHWISE_CONV_2D" and w.shape[0] == 1:
                w2 = np.empty_like(w)
                w2[..., sel] = w
                edits.append((op, 1, w2, 3))
                if len(ins) > 2 and ins[2] >= 0:
                    b = g.const(ins[2])
                    if b is None or b.shape != (c,):
                        return False
                    b2 = np.empty_like(b)
                    b2[sel] = b
                    edits.append((op, 2, b2, 0))
                if not take(int(op.outputs[0])):  # its output is S-ordered now: its readers take the permutation
                    return False
            else:
                return False
        return True

    if not take(e) or any(not _channel_quant_ok(g, int(op.inputs[k]), axis, c) for op, k, _, axis in edits):
        return False
    for op, k, value, axis in edits:  # a new constant each: a weight tensor may be shared (equal constants merged)
        ins = [int(i) for i in op.inputs]
        ins[k] = _permuted_const(g, ins[k], value, sel, axis)
        op.inputs = np.asarray(ins, dtype=np.int32)
    for op in cons[e]:
        op.inputs = np.asarray([start if int(i) == e else int(i) for i in op.inputs], dtype=np.int32)
    return True


def _channel_quant_ok(g: Graph, t: int, axis: int, c: int) -> bool:
    """A tensor whose `axis` is permuted keeps per-tensor quantization, or per-channel along that very axis."""
    q = g.tensor(t).quantization
    if axis < 0 or q is None or q.scale is None or len(q.scale) <= 1:
        return True
    return len(q.scale) == c and q.quantizedDimension == axis


def _name(g: Graph, t: int) -> str:
    n = g.tensor(t).name
    return n.decode(errors="replace") if isinstance(n, bytes) else str(n)


def _permuted_const(g: Graph, t: int, value: np.ndarray, sel: np.ndarray, axis: int) -> int:
    """A new constant tensor like `t` holding `value`; per-channel quantization along `axis` follows `sel`."""
    new = g.add_tensor(g.shape(t), g.dtype(t), _name(g, t) + "/absorbed", like=t,
                       data=value)
    q = g.tensor(new).quantization
    if axis >= 0 and q is not None and q.scale is not None and len(q.scale) > 1:
        for field in ("scale", "zeroPoint"):
            old = np.asarray(getattr(q, field))
            moved = np.empty_like(old)
            moved[sel] = old
            setattr(q, field, moved)
    return new
