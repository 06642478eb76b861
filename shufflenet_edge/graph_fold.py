"""The fold at graph level: find channel shuffles in a `torch.export` graph however they are written.

Why a graph pass: users' ShuffleNets are not our classes. A fine-tuned torchvision model, a NanoDet-style
backbone, a model using ``nn.ChannelShuffle`` or megvii's ShuffleNet-Series all write the same thing in
different ops: torchvision's ``view(b, g, c/g, h, w) -> transpose(1, 2) -> contiguous -> view``,
``aten.channel_shuffle``, megvii V1's ``reshape(b, c/g, g, h, w) -> permute(0, 2, 1, 3, 4) -> reshape``, megvii
V2's ``reshape(b*c/2, 2, h*w) -> permute(1, 0, 2) -> reshape(2, ...) -> [0], [1]``, each followed by
``chunk`` / ``split`` / ``split_with_sizes`` / slicing. So the pass does not match op spellings. It finds
*regions*: a tensor produced by a compute op (a ``cat``, a conv, an input) read only by data-movement ops,
followed through those ops to the *endpoints*, the tensors that compute ops (or the graph output) read.
It runs the region on an index tensor (``arange`` of the start's shape) with the graph's own aten ops;
an endpoint whose values are ``start[:, sel]`` is a channel selection, proven by that run and nothing
else. Then, per region:

- endpoints that are a full channel permutation read only through convolutions (through per-channel ops
  that commute with a channel permutation: depthwise conv, BatchNorm, ReLU, pooling) are **folded into
  the weights**: the input channels of the dense conv / linear that ends each path, and the channels of
  the depthwise convs and BatchNorms on the way. Exact, zero data movement;
- the other endpoints become one rank-4 data path (``form="transpose"``): the concatenated selections are
  a permutation ``P`` of the channels; we search a factorisation ``C = d1*d2[*d3]`` and an axis permutation
  with ``arange(C).reshape(d).permute(p).flatten() == P`` (docs/design.md (the fold)'s ``(k, h, j) -> (h, j, k)``
  for torchvision V2 halves, ``(g, C/g) -> (C/g, g)`` for a V1 shuffle, ``(C/2, 2) -> (2, C/2)`` for megvii
  V2's even/odd split), then ``reshape -> permute -> reshape`` to ``(n_endpoints, C/n, H, W)`` and one slice
  (or split) per endpoint on the outer axis. Batch 1, rank <= 4. Otherwise (``form="gather"``, batch > 1,
  or no factorisation) one ``index_select`` per endpoint (rank 4, any batch);
- a shuffle that is a graph output stays a data path (its channel order is part of the contract).

Every region that moves channels is reported, folded or not, with the reason ("why not folded").
The rewritten graph is checked against the original on a random input before it is returned.

``form="noshuffle"`` is for benchmarks only: every matched shuffle is deleted (each endpoint becomes a contiguous
slice, a whole-tensor permutation the tensor itself), so the numbers are wrong and the cost is that of a network
with no channel shuffle at all: the lower bound of what any fold can gain.

Two optional exact rewrites help int8 backends (``int8_friendly``): ``relu(cat(a, b))`` becomes
``cat(relu(a), relu(b))`` with the ReLU dropped where its input is provably non-negative (a ReLU,
max-pool or average-pool of one), and ``avg_pool2d(3, 2, 1)`` (count_include_pad; and an adaptive average pool
to an output size that divides the input, Lite-HRNet's cross-resolution weighting) becomes a depthwise
conv with weights 1/9 (XNNPACK has no int8 average pool; 1/9 is exact in per-channel int8). These are the
properties ShuffleNet V1's int8 TFLite graph needs (one XNNPACK partition). The same flag turns ``x ** 2`` into
``x * x`` (YOLOv5's box decode), which the TFLite converter takes and POW it does not.
"""

from __future__ import annotations

import dataclasses
import itertools
import operator
from typing import Any

import torch
from torch import fx, nn

from shufflenet_edge.errors import eval_mode

aten = torch.ops.aten

FORMS = ("reference", "transpose", "gather", "noshuffle")


def _dm_ops() -> set[Any]:
    names = [
        ("view", "default"), ("reshape", "default"), ("_unsafe_view", "default"), ("permute", "default"),
        ("transpose", "int"), ("clone", "default"), ("contiguous", "default"), ("alias", "default"),
        ("channel_shuffle", "default"), ("native_channel_shuffle", "default"), ("slice", "Tensor"),
        ("select", "int"), ("split", "Tensor"), ("split_with_sizes", "default"), ("chunk", "default"),
        ("unbind", "int"), ("squeeze", "dim"), ("squeeze", "dims"), ("unsqueeze", "default"),
        ("flatten", "using_ints"), ("narrow", "default"), ("view_copy", "default"), ("permute_copy", "default"),
        ("slice_copy", "Tensor"), ("select_copy", "int"), ("split_copy", "Tensor"), ("unflatten", "int"),
        ("movedim", "int"), ("swapaxes", "default"), ("t", "default"),
    ]
    out: set[Any] = {operator.getitem}
    for op, ov in names:
        packet = getattr(aten, op, None)
        if packet is not None and hasattr(packet, ov):
            out.add(getattr(packet, ov))
    return out


_DM: set[Any] | None = None


def data_movement_ops() -> set[Any]:
    global _DM
    if _DM is None:
        _DM = _dm_ops()
    return _DM


class NotFoldable(Exception):
    """Why a permutation could not be folded into the weights of its readers."""


@dataclasses.dataclass
class Match:
    start: str
    start_op: str
    shape: list[int]
    ops: list[str]
    endpoints: list[dict[str, Any]]
    action: str = "left alone"
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class FoldReport:
    form: str
    matches: list[Match] = dataclasses.field(default_factory=list)
    rewrites: list[str] = dataclasses.field(default_factory=list)
    check_max_abs_error: float | None = None

    def counts(self) -> dict[str, int]:
        c = {"shuffles": len(self.matches), "folded_into_weights": 0, "data_path": 0, "left_alone": 0}
        for m in self.matches:
            if m.action == "folded into weights":
                c["folded_into_weights"] += 1
            elif m.action.startswith("data path"):
                c["data_path"] += 1
            else:
                c["left_alone"] += 1
        return c

    def to_dict(self) -> dict[str, Any]:
        return {"form": self.form, "counts": self.counts(), "matches": [m.to_dict() for m in self.matches],
                "rewrites": self.rewrites, "check_max_abs_error": self.check_max_abs_error}

    def lines(self) -> list[str]:
        c = self.counts()
        out = [f"fold ({self.form}): {c['shuffles']} channel shuffle(s): {c['folded_into_weights']} folded into weights, "
               f"{c['data_path']} as a rank-4 data path, {c['left_alone']} left alone"]
        for m in self.matches:
            if m.action == "left alone" or m.reason:
                out.append(f"  {m.start} ({'/'.join(m.ops[:4])}{'...' if len(m.ops) > 4 else ''}): {m.action}"
                           + (f": {m.reason}" if m.reason else ""))
        out += [f"  {r}" for r in self.rewrites]
        return out


# ------------------------------------------------------------------------------------------ helpers


def _val(n: Any) -> Any:
    return n.meta.get("val") if isinstance(n, fx.Node) else None


def _concrete(s: Any) -> Any:
    """A symbolic size (dynamic batch) as the example's value: the fold's index math needs numbers, and a channel
    selection does not depend on the batch."""
    if isinstance(s, torch.SymInt):
        hint = s.node.hint
        if hint is None:
            raise NotFoldable(f"symbolic size {s} has no example value")
        return int(hint)
    return s


def _shape(n: fx.Node) -> tuple[int, ...] | None:
    v = _val(n)
    return tuple(int(_concrete(s)) for s in v.shape) if isinstance(v, torch.Tensor) else None


def _is_dm(n: fx.Node) -> bool:
    return n.op == "call_function" and n.target in data_movement_ops()


def _op_name(n: fx.Node) -> str:
    t = n.target
    if t is operator.getitem:
        return "getitem"
    return str(getattr(t, "__name__", t)).replace(".default", "")


def _get_attr(gm: nn.Module, target: str) -> torch.Tensor:
    obj: Any = gm
    for part in target.split("."):
        obj = getattr(obj, part)
    return obj  # type: ignore[no-any-return]


class _Consts:
    """New constant tensors (permuted weights, index vectors) as buffers of the root module."""

    def __init__(self, gm: fx.GraphModule) -> None:
        self.gm, self.k = gm, 0

    def node(self, before: fx.Node, t: torch.Tensor, what: str) -> fx.Node:
        name = f"_fold_{what}_{self.k}"
        self.k += 1
        if t.is_floating_point():  # weights stay parameters (PT2E's conv-BN fusion re-registers them as such)
            self.gm.register_parameter(name, nn.Parameter(t.detach().clone(), requires_grad=False))
        else:
            self.gm.register_buffer(name, t.detach().clone())
        with self.gm.graph.inserting_before(before):
            n = self.gm.graph.get_attr(name)
        n.meta["val"] = t
        return n


def _simulate(region: list[fx.Node], start: fx.Node, value: torch.Tensor) -> dict[fx.Node, Any]:
    env: dict[fx.Node, Any] = {start: value}

    def m(a: Any) -> Any:
        if isinstance(a, fx.Node):
            if a not in env and isinstance(a.meta.get("val"), torch.SymInt):  # sym_size of a dynamic batch
                return _concrete(a.meta["val"])
            return env[a]
        return a

    for n in region:
        args = fx.node.map_aggregate(n.args, m)
        kwargs = fx.node.map_aggregate(n.kwargs, m)
        env[n] = n.target(*args, **kwargs)  # type: ignore[operator]
    return env


def _channel_selection(s: torch.Tensor, e: Any) -> torch.Tensor | None:
    """sel with e == s[:, sel], or None. s is the index tensor (N, C, H, W)."""
    if not isinstance(e, torch.Tensor) or e.dim() != 4 or e.shape[0] != s.shape[0] or e.shape[2:] != s.shape[2:]:
        return None
    _, c, h, w = s.shape
    sel = ((e[0, :, 0, 0] // (h * w)).long()) % c
    if not torch.equal(s[:, sel], e):
        return None
    return sel


def factorize(perm: torch.Tensor) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
    """(dims, axes) with arange(C).reshape(dims).permute(axes).flatten() == perm, at most 3 dims."""
    c = len(perm)
    divs = [d for d in range(2, c) if c % d == 0]
    target = perm.long()
    for k in (2, 3):
        for dims in itertools.product(divs, repeat=k - 1):
            last = c
            for d in dims:
                last //= d
            full = (*dims, last)
            prod = 1
            for d in full:
                prod *= d
            if prod != c or last < 2:
                continue
            base = torch.arange(c).reshape(full)
            for axes in itertools.permutations(range(k)):
                if axes == tuple(range(k)):
                    continue
                if torch.equal(base.permute(axes).reshape(-1), target):
                    return full, axes
    return None


# ------------------------------------------------------------------------------------- weight fold

_UNARY = None


def _unary_ops() -> set[Any]:
    global _UNARY
    if _UNARY is None:
        names = ["relu", "relu_", "relu6", "hardtanh", "hardtanh_", "sigmoid", "hardswish", "hardswish_", "silu",
                 "silu_", "gelu", "leaky_relu", "leaky_relu_", "hardsigmoid", "tanh", "elu", "clamp", "dropout",
                 "max_pool2d", "avg_pool2d", "adaptive_avg_pool2d", "max_pool2d_with_indices"]
        _UNARY = set()
        for nm in names:
            p = getattr(aten, nm, None)
            if p is not None:
                for ov in ("default", "Tensor"):
                    if hasattr(p, ov):
                        _UNARY.add(getattr(p, ov))
    return _UNARY


def _plan_absorb(t: fx.Node, sel: torch.Tensor, gm: fx.GraphModule, plan: list[tuple[str, fx.Node, torch.Tensor]],
                 depth: int = 0) -> None:
    """Every reader of `t` (channels = source[sel]) can read `source` instead with changed weights."""
    if depth > 32:
        raise NotFoldable("permutation path too long")
    for u in t.users:
        if depth == 0 and _is_dm(u):
            continue  # a region op: the endpoints after it are rewritten on their own
        if u.op == "output":
            if depth == 0:
                continue  # the output keeps its own data path; the other readers fold
            raise NotFoldable("a graph output is computed from the permuted tensor")
        tgt = u.target
        if tgt == aten.conv2d.default:
            if u.args[0] is not t:
                raise NotFoldable("the tensor is a conv's weight")
            w = _val(u.args[1])
            groups = int(u.args[6]) if len(u.args) > 6 else int(u.kwargs.get("groups", 1))
            c = len(sel)
            if groups == 1:
                plan.append(("conv_in", u, sel))
            elif groups == c and w.shape[0] == c:
                plan.append(("depthwise", u, sel))
                _plan_absorb(u, sel, gm, plan, depth + 1)
            else:
                raise NotFoldable(f"read by a grouped conv (groups {groups}) that a channel permutation does not commute with")
        elif tgt in (aten.batch_norm.default, aten._native_batch_norm_legit_no_training.default):
            plan.append(("bn", u, sel))
            if tgt == aten.batch_norm.default:
                _plan_absorb(u, sel, gm, plan, depth + 1)
            else:
                for g in u.users:
                    if g.target is operator.getitem and g.args[1] == 0:
                        _plan_absorb(g, sel, gm, plan, depth + 1)
        elif tgt in _unary_ops():
            if any(isinstance(a, fx.Node) for a in list(u.args[1:]) + list(u.kwargs.values())):
                raise NotFoldable(f"read by {_op_name(u)} with a second tensor input")
            if tgt == aten.max_pool2d_with_indices.default:
                raise NotFoldable("read by a max-pool that returns indices")
            _plan_absorb(u, sel, gm, plan, depth + 1)
        elif tgt == aten.mean.dim and sorted(int(d) % 4 for d in u.args[1]) == [2, 3]:
            _plan_absorb(u, sel, gm, plan, depth + 1)
        elif tgt == aten.flatten.using_ints and _shape(u) is not None and len(_shape(u)) == 2 \
                and _shape(t)[2:] in ((1, 1), ()):  # type: ignore[index]
            _plan_absorb(u, sel, gm, plan, depth + 1)
        elif tgt in (aten.view.default, aten.reshape.default) and _shape(t) is not None and len(_shape(t)) == 4 \
                and _shape(t)[2:] == (1, 1) and len(_shape(u) or ()) == 2:  # type: ignore[index]
            _plan_absorb(u, sel, gm, plan, depth + 1)
        elif tgt == aten.linear.default:
            if u.args[0] is not t:
                raise NotFoldable("the tensor is a linear layer's weight")
            plan.append(("linear_in", u, sel))
        else:
            raise NotFoldable(f"read by {_op_name(u)}, which a channel permutation does not commute with")


def _apply_absorb(gm: fx.GraphModule, plan: list[tuple[str, fx.Node, torch.Tensor]], consts: _Consts) -> None:
    def replace_param(node: fx.Node, idx: int, fn: Any, what: str) -> None:
        a = node.args[idx]
        if not isinstance(a, fx.Node):
            return
        t = _get_attr(gm, str(a.target)) if a.op == "get_attr" else None
        if t is None:
            raise NotFoldable(f"{_op_name(node)} parameter {idx} is not a constant")
        new = consts.node(node, fn(t.detach()), what)
        args = list(node.args)
        args[idx] = new
        node.args = tuple(args)

    for kind, node, sel in plan:
        if kind in ("conv_in", "linear_in"):
            def f(w: torch.Tensor, sel: torch.Tensor = sel) -> torch.Tensor:
                new = torch.empty_like(w)
                new[:, sel] = w
                return new
            replace_param(node, 1, f, "w")
        else:  # depthwise / bn: channel sel[s] now carries what channel s carried
            def g(p: torch.Tensor, sel: torch.Tensor = sel) -> torch.Tensor:
                new = torch.empty_like(p)
                new[sel] = p
                return new
            idxs = [1, 2] if kind == "depthwise" else [1, 2, 3, 4]
            for i in idxs:
                if i < len(node.args) and node.args[i] is not None:
                    replace_param(node, i, g, "p")


# ------------------------------------------------------------------------------------------- pass


def _find_regions(graph: fx.Graph) -> list[tuple[fx.Node, list[fx.Node], list[fx.Node], str | None]]:
    out = []
    order = {n: i for i, n in enumerate(graph.nodes)}
    for s in graph.nodes:
        if s.op not in ("call_function", "placeholder") or _is_dm(s):
            continue
        shp = _shape(s)
        if shp is None or len(shp) != 4 or not any(_is_dm(u) for u in s.users):
            continue
        region: set[fx.Node] = set()
        endpoints: list[fx.Node] = []
        frontier = [s]
        problem = None
        while frontier:
            t = frontier.pop()
            for u in t.users:
                if u in region or not _is_dm(u):  # the start may also be read directly
                    continue
                region.add(u)
                us = list(u.users)
                dm = [x for x in us if _is_dm(x)]
                if isinstance(_val(u), torch.Tensor) and (len(dm) < len(us)):
                    endpoints.append(u)
                    if dm:  # read by compute ops and by data movement (Lite-HRNet's stem output: a conv and a chunk)
                        frontier.append(u)  # both: an endpoint for its compute readers, the region goes on through the rest
                elif dm:
                    frontier.append(u)
        # side inputs of region ops must not be other tensors
        for u in region:
            for a in u.all_input_nodes:
                if a is not s and a not in region and not isinstance(a.meta.get("val"), torch.SymInt):
                    problem = f"{u.name} reads another tensor ({a.name})"
        out.append((s, sorted(region, key=order.__getitem__), sorted(set(endpoints), key=order.__getitem__), problem))
    return out


def fold_graph(
    model: nn.Module,
    example_inputs: tuple[Any, ...],
    *,
    form: str = "transpose",
    split: str = "split",
    fold_weights: bool = True,
    int8_friendly: bool = False,
    dynamic_shapes: Any = None,
) -> tuple[fx.GraphModule, FoldReport]:
    """Export `model`, rewrite its channel shuffles, return (GraphModule, report).

    `split`: how the transpose form hands out its endpoints: ``"split"`` (one split op: ONNX) or
    ``"slice"`` (basic slicing: PT2E then shares one quantization scale through the data path, TFLite).
    `dynamic_shapes`: as torch.export's (a dynamic batch: trace with a batch of 2, not 1, or torch specializes it).
    """
    if form not in FORMS:
        raise ValueError(f"unknown form {form!r}; valid: {', '.join(FORMS)}")
    if split not in ("split", "slice"):
        raise ValueError(f"split must be 'split' or 'slice', got {split!r}")
    model = eval_mode(model)
    with torch.no_grad():
        ep = torch.export.export(model, tuple(example_inputs), dynamic_shapes=dynamic_shapes)
    gm = ep.module()
    folder = _Folder(gm, _Consts(gm), FoldReport(form=form), form, split, fold_weights)
    if int8_friendly:
        _int8_friendly(gm, folder.consts, folder.report)
    for s, region, endpoints, problem in _find_regions(gm.graph):
        folder.region(s, region, endpoints, problem)
    graph = gm.graph
    graph.eliminate_dead_code()
    _drop_unused_attrs(gm)
    graph.lint()
    gm.recompile()
    # A plain GraphModule (ep.module() refuses train()/eval(), which converters call); same graph and
    # pytree calling convention, the referenced parameters and buffers copied over.
    gm = fx.GraphModule(gm, graph, class_name="FoldedGraph")
    gm.eval()
    folder.report.check_max_abs_error = None if form == "noshuffle" else _verify(model, gm, example_inputs)
    return gm, folder.report


_MOVES = ("permute", "transpose", "channel_shuffle", "native_channel_shuffle", "t", "movedim", "swapaxes")


@dataclasses.dataclass
class _Folder:
    """One fold_graph run: what each region becomes (weights, a data path, left alone) and the report of it."""

    gm: fx.GraphModule
    consts: _Consts
    report: FoldReport
    form: str
    split: str
    fold_weights: bool

    def region(self, s: fx.Node, region: list[fx.Node], endpoints: list[fx.Node], problem: str | None) -> None:
        shp = _shape(s)
        assert shp is not None
        n, c, h, w = shp
        ops = [_op_name(u) for u in region]
        idx = torch.arange(n * c * h * w, dtype=torch.float64).reshape(n, c, h, w)
        try:
            env = _simulate(region, s, idx)
        except Exception as e:  # noqa: BLE001  (an op the simulation cannot run on index tensors)
            if any(o in _MOVES[:4] for o in ops):
                self.report.matches.append(Match(s.name, _op_name(s), list(shp), ops, [], "left alone",
                                                 f"cannot simulate the region ({type(e).__name__}: {str(e)[:80]})"))
            return
        sels = {e: _channel_selection(idx, env[e]) for e in endpoints}
        is_shuffle = any(o in _MOVES for o in ops) or any(
            v is not None and not torch.equal(v, torch.arange(v[0].item(), v[0].item() + len(v))) for v in sels.values())
        if not is_shuffle:
            return  # plain chunks, flattens: nothing to fold
        ends_info = [{"node": e.name, "shape": list(_shape(e) or ()), "graph_output": any(u.op == "output" for u in e.users),
                      "channels": None if sels[e] is None else _describe(sels[e])} for e in endpoints]
        match = Match(s.name, _op_name(s), list(shp), ops, ends_info)
        self.report.matches.append(match)
        bad = [e.name for e in endpoints if sels[e] is None]
        if problem or bad:
            match.reason = problem or (f"endpoint(s) {', '.join(bad)} are not a channel selection of {s.name} (rank 4, "
                                       "same N, H, W)")
        elif self.form == "reference":
            match.reason = "form reference: kept as written"
        elif self.form == "noshuffle":
            self._delete(s, endpoints, sels, c)
            match.action = "deleted (noshuffle: a lower bound for benchmarks, not the model's numbers)"
        else:
            self._fold(match, s, endpoints, sels, c)

    def _delete(self, s: fx.Node, endpoints: list[fx.Node], sels: dict[fx.Node, Any], c: int) -> None:
        """The benchmarks' lower bound: the shuffle deleted (wrong numbers, no data movement)."""
        offset = 0
        for e in endpoints:
            size = len(sels[e])
            if size == c:
                e.replace_all_uses_with(s)
            else:
                with self.gm.graph.inserting_before(e):
                    e.replace_all_uses_with(self.gm.graph.call_function(aten.slice.Tensor, (s, 1, offset, offset + size)))
                offset += size

    def _fold(self, match: Match, s: fx.Node, endpoints: list[fx.Node], sels: dict[fx.Node, Any], c: int) -> None:
        """Full permutations read only through convolutions go into the weights; the rest becomes a data path."""
        remaining: list[fx.Node] = []
        folded_any = False
        why_not: list[str] = []
        for e in endpoints:
            sel = sels[e]
            is_perm = _is_perm(sel, c)
            if is_perm and torch.equal(sel, torch.arange(c)):
                e.replace_all_uses_with(s)
            elif self.fold_weights and is_perm:
                folded_any |= self._into_weights(e, s, sel, why_not, remaining)
            else:
                if self.fold_weights and not is_perm and not why_not:
                    why_not.append("the readers take parts of the channels (a split), not a whole-tensor permutation")
                remaining.append(e)
        if not remaining:
            match.action = "folded into weights"
            return
        how = _data_path(self.gm, self.consts, s, remaining, sels, self.form, self.split)
        match.action = ("data path + weights: " if folded_any else "data path: ") + how
        if why_not:
            match.reason = "not into weights: " + "; ".join(why_not)

    def _into_weights(self, e: fx.Node, s: fx.Node, sel: torch.Tensor, why_not: list[str],
                      remaining: list[fx.Node]) -> bool:
        plan: list[tuple[str, fx.Node, torch.Tensor]] = []
        try:
            _plan_absorb(e, sel, self.gm, plan)
            if not plan:
                raise NotFoldable("its only reader is the graph output (its channel order is part of the contract)")
        except NotFoldable as err:
            why_not.append(f"{e.name}: {err}")
            remaining.append(e)
            return False
        _apply_absorb(self.gm, plan, self.consts)
        e.replace_all_uses_with(s, delete_user_cb=lambda u: u.op != "output" and not _is_dm(u))
        if any(u.op == "output" for u in e.users):
            why_not.append(f"{e.name}: is also a graph output (its channel order is part of the contract)")
            remaining.append(e)
        return True


def _describe(sel: torch.Tensor) -> str:
    v = sel.tolist()
    if len(v) <= 8:
        return str(v)
    return f"[{', '.join(str(x) for x in v[:6])}, ... ({len(v)} channels)]"


def _data_path(gm: fx.GraphModule, consts: _Consts, s: fx.Node, ends: list[fx.Node], sels: dict[fx.Node, Any],
               form: str, split: str) -> str:
    graph = gm.graph
    n, c, h, w = _shape(s)  # type: ignore[misc]
    first = min(ends, key=lambda e: list(graph.nodes).index(e))  # insert before the first endpoint in graph order
    sizes = [len(sels[e]) for e in ends]
    why = None
    if form == "transpose" and n == 1:
        perm = torch.cat([sels[e] for e in ends])
        whole = _is_perm(perm, c) and len(set(sizes)) == 1
        cover = None if whole else next((e for e in ends if _is_perm(sels[e], c) and _ranges_of(sels[e], [
            sels[o] for o in ends if o is not e]) is not None), None)
        fac = factorize(perm if whole else sels[cover]) if (whole or cover is not None) else None
        if fac is not None and whole:
            outs = _transpose_path(graph, first, s, fac, len(ends), (c, h, w), split)
            for e, o in zip(ends, outs):
                e.replace_all_uses_with(o)
            return f"transpose: reshape {tuple(fac[0])} -> permute {tuple(fac[1])} -> {len(ends)} endpoint(s)"
        if fac is not None and cover is not None:
            # One endpoint is the whole shuffled tensor (a graph output) and the others are channel ranges of it (the
            # next unit's halves): shuffle once, then slice the ranges out of the result.
            (full,) = _transpose_path(graph, first, s, fac, 1, (c, h, w), split)
            cover.replace_all_uses_with(full)
            others = [o for o in ends if o is not cover]
            for o, (lo, hi) in zip(others, _ranges_of(sels[cover], [sels[o] for o in others]) or []):
                with graph.inserting_before(first):
                    o.replace_all_uses_with(graph.call_function(aten.slice.Tensor, (full, 1, lo, hi)))
            return (f"transpose: reshape {tuple(fac[0])} -> permute {tuple(fac[1])}, the other "
                    f"{len(others)} endpoint(s) channel ranges of it")
        why = ("no factorisation into <= 3 axes reproduces the permutation" if whole or cover is not None
               else "the endpoints do not partition the channels in equal parts")
    elif form == "transpose":
        why = "batch > 1"
    for e in ends:
        sel = sels[e]
        lo = int(sel[0])
        with graph.inserting_before(first):
            if torch.equal(sel, torch.arange(lo, lo + len(sel))):
                o = s if len(sel) == c else graph.call_function(aten.slice.Tensor, (s, 1, lo, lo + len(sel)))
            else:
                idx_node = consts.node(first, sel.clone(), "idx")
                o = graph.call_function(aten.index_select.default, (s, 1, idx_node))
        e.replace_all_uses_with(o)
    return "gather" + (f" ({why})" if why else "")


def _is_perm(sel: torch.Tensor, c: int) -> bool:
    return len(sel) == c and torch.equal(torch.sort(sel).values, torch.arange(c))


def _ranges_of(full: torch.Tensor, parts: list[torch.Tensor]) -> list[tuple[int, int]] | None:
    """Where each of `parts` sits in `full` as a contiguous range [lo, hi), or None if one does not."""
    pos = torch.empty_like(full)
    pos[full] = torch.arange(len(full))
    out = []
    for p in parts:
        at = pos[p]
        lo = int(at[0])
        if not torch.equal(at, torch.arange(lo, lo + len(p))):
            return None
        out.append((lo, lo + len(p)))
    return out


def _transpose_path(graph: fx.Graph, before: fx.Node, s: fx.Node, fac: tuple[tuple[int, ...], tuple[int, ...]], k: int,
                    chw: tuple[int, int, int], split: str) -> list[fx.Node]:
    """``reshape(dims, H*W) -> permute(axes) -> reshape``: the permutation `fac` of `s`'s channels, handed out as `k`
    equal parts on the outer axis (slices or one split)."""
    dims, axes = fac
    c, h, w = chw
    with graph.inserting_before(before):
        r = graph.call_function(aten.reshape.default, (s, [*dims, h * w]))
        t = graph.call_function(aten.permute.default, (r, [*axes, len(dims)]))
        if k == 1:
            return [graph.call_function(aten.reshape.default, (t, [1, c, h, w]))]
        t4 = graph.call_function(aten.reshape.default, (t, [k, c // k, h, w]))
        if split == "slice":
            return [graph.call_function(aten.slice.Tensor, (t4, 0, i, i + 1)) for i in range(k)]
        sp = graph.call_function(aten.split.Tensor, (t4, 1))
        return [graph.call_function(operator.getitem, (sp, i)) for i in range(k)]


def _drop_unused_attrs(gm: fx.GraphModule) -> None:
    used = {str(n.target) for n in gm.graph.nodes if n.op == "get_attr"}
    for name in list(dict(gm.named_parameters(remove_duplicate=False)).keys()) + list(dict(gm.named_buffers(remove_duplicate=False)).keys()):
        if name in used:
            continue
        parent_name, _, leaf = name.rpartition(".")
        parent = gm.get_submodule(parent_name) if parent_name else gm
        if leaf in parent._parameters:
            del parent._parameters[leaf]
        elif leaf in parent._buffers:
            del parent._buffers[leaf]


def _flat(y: Any) -> list[torch.Tensor]:
    return [t for t in torch.utils._pytree.tree_leaves(y) if isinstance(t, torch.Tensor)]


def _verify(ref: nn.Module, gm: fx.GraphModule, example_inputs: tuple[Any, ...]) -> float:
    """The folded graph against the model on a random input, output by output. The fold moves data and permutes
    weights, which reorders float sums and nothing else: the tolerance is that rounding, relative to each output's
    own magnitude and never tighter than the model's own float noise (fp32 against fp64 on the same input), the
    same rule as the exporters' check against the unfolded conversion (export/verify.py)."""
    import copy

    from shufflenet_edge.export.verify import conversion_tolerance

    gen = torch.Generator().manual_seed(1234)
    xs = tuple(torch.randn(x.shape, generator=gen, dtype=x.dtype) if isinstance(x, torch.Tensor) else x for x in example_inputs)
    with torch.no_grad():
        want, got = _flat(ref(*xs)), _flat(gm(*xs))
        try:
            exact = _flat(copy.deepcopy(ref).double()(*(x.double() if isinstance(x, torch.Tensor) else x for x in xs)))
        except Exception:  # noqa: BLE001  (a module that does not run in float64: relative tolerance alone)
            exact = None
    if len(want) != len(got):
        raise AssertionError(f"graph fold changed the number of outputs: {len(got)} != {len(want)}")
    worst = 0.0
    for i, (a, b) in enumerate(zip(want, got)):
        if a.shape != b.shape:
            raise AssertionError(f"graph fold changed output {i}'s shape: {tuple(b.shape)} != {tuple(a.shape)}")
        if not a.numel() or not a.is_floating_point():
            continue
        err = float((a - b).abs().max())
        peak = float(a.abs().max())
        noise = float((a.double() - exact[i]).abs().max()) if exact is not None and len(exact) == len(want) else None
        tol = conversion_tolerance(peak, noise) if noise is not None else 1e-4 * peak
        if not err <= tol:
            raise AssertionError(f"graph fold is not exact on output {i}: max abs error {err:.3g} > {tol:.3g} "
                                 f"(peak {peak:.3g}, float noise {'unknown' if noise is None else f'{noise:.3g}'})")
        worst = max(worst, err)
    return worst


# ------------------------------------------------------------------------------------------ in-place ops

_COPIES = ("clone", "_to_copy", "copy")


def functionalize_inplace(gm: fx.GraphModule) -> int:
    """In-place ops (``y += x``, ``relu_``) as out-of-place ones wherever that means the same: the mutated tensor is
    computed by the graph (not an input or a parameter) and no other view of its storage is read after the mutation;
    readers of the tensor after it read the new value. Returns how many were rewritten.

    Why: public code mutates data paths in place (mmpose's Lite-HRNet fuse loop adds a shuffled branch to itself,
    ``y = out[0]; y += out[0]``); PT2E annotates the graph before anything functionalizes it, and the int8 rewrites
    that follow (export/tflite_quantize.py) need plain values, not mutations of views."""
    graph = gm.graph
    order = {n: i for i, n in enumerate(graph.nodes)}
    done = 0
    for node in list(graph.nodes):
        functional = _out_of_place(node)
        t = node.args[0] if functional is not None and node.args else None
        if not isinstance(t, fx.Node) or t.op != "call_function":
            continue
        after = [u for a in _aliases(t) for u in a.users if u is not node and order[u] > order[node]]
        if any(t not in u.all_input_nodes or _is_view(u) for u in after):
            continue  # another view of the storage is read after the mutation: it sees the new values
        with graph.inserting_before(node):
            new = graph.call_function(functional, node.args, node.kwargs)
        new.meta = dict(node.meta)
        order[new] = order[node]
        for u in after:
            u.replace_input_with(t, new)
        node.replace_all_uses_with(new)
        graph.erase_node(node)
        done += 1
    if done:
        graph.lint()
        gm.recompile()
    return done


def _out_of_place(node: fx.Node) -> Any:
    t = node.target
    schema = getattr(t, "_schema", None)
    if node.op != "call_function" or schema is None or not schema.name.endswith("_") or not schema.is_mutable:
        return None
    packet = getattr(aten, schema.name.split("::")[-1][:-1], None)
    return getattr(packet, t._overloadname, None) if packet is not None else None  # type: ignore[union-attr]


def _is_view(n: fx.Node) -> bool:
    return _is_dm(n) and not any(c in _op_name(n) for c in _COPIES)


def _aliases(t: fx.Node) -> set[fx.Node]:
    """Every node that may share `t`'s storage: up through view ops to the root, then every view below it."""
    root = t
    while _is_view(root) and isinstance(root.args[0], fx.Node):
        root = root.args[0]
    out, frontier = {root}, [root]
    while frontier:
        for u in frontier.pop().users:
            if u not in out and _is_view(u):
                out.add(u)
                frontier.append(u)
    return out


# ---------------------------------------------------------------------------------- int8 helpers


def _nonneg(n: Any, depth: int = 0) -> bool:
    if not isinstance(n, fx.Node) or depth > 8:
        return False
    if n.target in (aten.relu.default, aten.relu_.default, aten.relu6.default):
        return True
    if n.target in (aten.max_pool2d.default, aten.avg_pool2d.default, aten.adaptive_avg_pool2d.default):
        return _nonneg(n.args[0], depth + 1)
    if n.target == aten.conv2d.default and str(n.meta.get("_fold_avgpool", "")):
        return _nonneg(n.args[0], depth + 1)
    if n.target == aten.cat.default:
        return all(_nonneg(a, depth + 1) for a in n.args[0])
    return False


def _int8_friendly(gm: fx.GraphModule, consts: _Consts, report: FoldReport) -> None:
    graph = gm.graph
    n_pool = n_relu = n_pow = 0
    for node in list(graph.nodes):
        if node.target == aten.pow.Tensor_Scalar and node.args[1] == 2 and isinstance(node.args[0], fx.Node):
            # YOLOv5's box decode `(y * 2) ** 2`: litert-torch does not legalize POW (its conversion fails), and
            # x * x is the same number (PyTorch computes a square as one multiply)
            with graph.inserting_before(node):
                sq = graph.call_function(aten.mul.Tensor, (node.args[0], node.args[0]))
            sq.meta = dict(node.meta)
            node.replace_all_uses_with(sq)
            graph.erase_node(node)
            n_pow += 1
            continue
        if node.target == aten.adaptive_avg_pool2d.default:
            # Lite-HRNet's cross-resolution weighting pools every branch to the smallest one: whole factors are an
            # average pool with kernel = stride (a global pool stays: it lowers to MEAN, which int8 backends take)
            shp = _shape(node.args[0])
            osz = list(node.args[1]) if isinstance(node.args[1], (list, tuple)) else [node.args[1]] * 2
            if (shp is None or len(shp) != 4 or osz == [1, 1] or any(not isinstance(o, int) or o <= 0 for o in osz)
                    or shp[2] % osz[0] or shp[3] % osz[1]):
                continue
            kk = [shp[2] // osz[0], shp[3] // osz[1]]
            node.target = aten.avg_pool2d.default
            node.args = (node.args[0], kk, kk, [0, 0])
        if node.target == aten.avg_pool2d.default:
            a = list(node.args) + [None] * (7 - len(node.args))
            k, st, pad = a[1], a[2] or a[1], a[3] or [0, 0]
            ceil = bool(a[4]) if a[4] is not None else False
            cip = True if a[5] is None else bool(a[5])
            div = a[6]
            shp = _shape(node.args[0])
            if shp is None or len(shp) != 4 or ceil or not cip or div is not None:
                continue
            kk = list(k) if isinstance(k, (list, tuple)) else [k, k]
            kk = kk * 2 if len(kk) == 1 else kk
            ch = shp[1]
            wt = torch.full((ch, 1, kk[0], kk[1]), 1.0 / (kk[0] * kk[1]))
            wn = consts.node(node, wt, "avgpool")
            st2 = list(st) if isinstance(st, (list, tuple)) else [st, st]
            pd = list(pad) if isinstance(pad, (list, tuple)) else [pad, pad]
            with graph.inserting_before(node):
                conv = graph.call_function(aten.conv2d.default, (node.args[0], wn, None, st2 * (2 // len(st2)),
                                                                 pd * (2 // len(pd)), [1, 1], ch))
            conv.meta = dict(node.meta)
            conv.meta["_fold_avgpool"] = True
            node.replace_all_uses_with(conv)
            graph.erase_node(node)
            n_pool += 1
    for node in list(graph.nodes):
        if node.target not in (aten.relu.default, aten.relu_.default):
            continue
        cat = node.args[0]
        if not isinstance(cat, fx.Node) or cat.target != aten.cat.default or len(cat.users) != 1:
            continue
        dim = cat.args[1] if len(cat.args) > 1 else 0
        new_ins = []
        with graph.inserting_before(cat):
            for a in cat.args[0]:
                if _nonneg(a):
                    new_ins.append(a)
                else:
                    r = graph.call_function(aten.relu.default, (a,))
                    r.meta = dict(a.meta)
                    new_ins.append(r)
        cat.args = (new_ins, dim)
        node.replace_all_uses_with(cat)
        graph.erase_node(node)
        n_relu += 1
    if n_pool:
        report.rewrites.append(f"{n_pool} average pool(s) as depthwise conv (weights 1/k^2; int8 backends take it)")
    if n_relu:
        report.rewrites.append(f"{n_relu} relu(cat(...)) as cat(relu(...)) (ReLU dropped on inputs proven non-negative)")
    if n_pow:
        report.rewrites.append(f"{n_pow} x ** 2 as x * x (the TFLite converter does not legalize POW)")


def report_lines(fold: dict[str, Any] | None) -> list[str]:
    """The CLI's lines for a sidecar's `fold` entry: counts, then each shuffle left alone or kept as a data path
    with the reason it was not folded further."""
    if not fold:
        return []
    left = [f"  left alone in the converted graph: {r}" for r in fold.get("left_alone_in_graph") or []]
    if fold.get("error"):
        return [f"fold: {fold['form']} ({fold['error']})", *left]
    if fold.get("graph_pass"):  # the shuffle recipes applied to the converter's graph of the module as written
        gp = fold["graph_pass"]
        return [f"fold: {fold['form']}: {gp['rewritten']} shuffle region(s) rewritten as rank-4 data paths, "
                f"{gp['absorbed_in_weights']} permutation(s) taken into the next convolution's weights, "
                f"{len(left)} data-movement region(s) kept as converted", *left]
    if fold.get("blocks_per_unit"):
        b = fold["blocks_per_unit"]
        return [f"fold: every channel shuffle planned away ({len(b)} units on planned channel orders; a unit's branch "
                f"input concatenates at most {max(b)} blocks, no transpose)"]
    if not fold.get("counts"):
        return ["fold: none (form reference)"]
    c = fold["counts"]
    out = [f"fold: {c['shuffles']} channel shuffle(s): {c['folded_into_weights']} folded into weights, "
           f"{c['data_path']} rank-4 data path(s), {c['left_alone']} left alone"
           + (f"; {len(left)} other data-movement region(s) of the converted graph kept as converted (layout "
              "changes and the like: the report's left_alone_in_graph says why)" if left else "")]
    for m in fold.get("matches", []):
        if m["action"] == "folded into weights":
            continue
        why = f" (why not folded: {m['reason']})" if m.get("reason") else ""
        out.append(f"  {m['start']}: {m['action']}{why}")
    out += [f"  {r}" for r in fold.get("rewrites", [])]
    return out + left
