"""A ShuffleNetV2 whose channel shuffles are planned away: no transpose, no gather, and each channel copied about
once per unit instead of three to four times.

Why it can be done: a unit's branch ends in a 1x1 convolution (with its batch norm), which can emit its output
channels in any order; a 1x1 or depthwise convolution absorbs any order of its input channels in its weights; and a
unit's branch only needs the *set* of channels it takes, in some order, not where they sit.

The plan, per stage, from its number of units: at a stride-1 unit's output, the channel with logical index `c`
(torchvision's order, after the shuffle; `m` = half the channels) is taken by the next unit's branch when `c >= m`,
else it passes through as channel `2c` of the next output. So each channel has a *class*: the number of units until
a branch takes it (the stage's end when none does), and a channel's class only counts down while it passes through.
Every branch output is emitted sorted by class and cut into one block per class; blocks are never cut again, because
their channels leave together. A unit's branch input is the concatenation of the blocks of class 1 (the only copy of
passing channels); the other blocks go on as they are; the stage's output is the concatenation of all blocks. With
n units per stage, a branch output is cut into at most n blocks.

litert-torch lowers the cuts to SLICE ops (it merges per-block convolutions written in PyTorch back into one
convolution and slices, so cutting the last convolution by block gains nothing) and merges nested concatenations;
export/passes/concat_fanin.py then keeps every CONCATENATION within XNNPACK's 5 inputs.

Exact: only weights are permuted; every value is computed by the same operations. Float results differ only by the
order in which a 1x1 convolution sums its inputs (int8 accumulation is exact in any order).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
from torch import nn

from shufflenet_edge.models.shufflenet_v2 import InvertedResidual, ShuffleNetV2

END = 1 << 30  # class of a channel no unit of the stage takes


def channel_class(c: int, half: int, units_left: int) -> int:
    """Units until a branch takes logical channel `c` of a stride-1 unit's output (`half` = m; `units_left`:
    stride-1 units after this one in the stage); END when none does."""
    k = 1
    while units_left > 0:
        if c >= half:
            return k
        c, k, units_left = 2 * c, k + 1, units_left - 1
    return END


def _runs(keys: list[int]) -> list[int]:
    """Sizes of the runs of equal consecutive keys."""
    sizes: list[int] = []
    for i, k in enumerate(keys):
        if i and keys[i - 1] == k:
            sizes[-1] += 1
        else:
            sizes.append(1)
    return sizes


@dataclass
class Block:
    """Channels that travel together: where they were made (unit, branch, piece) and their logical indices now."""

    source: tuple[int, int, int]
    channels: list[int]
    cls: int


@dataclass
class StagePlan:
    """Per unit: `takes` (which live blocks its branch input concatenates, in order), `emits` (per branch, the
    physical order of its output in logical branch channels, and the block sizes it is cut into); `out`: the
    blocks the stage's output concatenates and its physical order (logical channels)."""

    takes: list[list[tuple[int, int, int]]] = field(default_factory=list)
    branch_in: list[list[int]] = field(default_factory=list)
    emits: list[list[tuple[list[int], list[int]]]] = field(default_factory=list)
    out: list[tuple[int, int, int]] = field(default_factory=list)
    out_order: list[int] = field(default_factory=list)


def plan_stage(channels: int, units: int) -> StagePlan:
    """The plan of one stage of `units` units (the first stride 2) with `channels` output channels."""
    m = channels // 2
    plan = StagePlan()
    live: list[Block] = []
    for u in range(units):
        left = units - 1 - u
        cls = [channel_class(c, m, left) for c in range(channels)]
        if u == 0:
            taken: list[Block] = []
            plan.branch_in.append([])
            branches = [(0, lambda i: 2 * i), (1, lambda i: 2 * i + 1)]  # branch1 -> logical 2i, branch2 -> 2i+1
        else:
            taken = [b for b in live if b.cls == 1]
            live = [b for b in live if b.cls != 1]
            plan.branch_in.append([c - m for b in taken for c in b.channels])
            assert sorted(plan.branch_in[-1]) == list(range(m)), "the plan's invariant: class 1 is the second half"
            for b in live:  # passing through: channel i -> 2i, one unit nearer its branch
                b.channels = [2 * c for c in b.channels]
                new = {cls[c] for c in b.channels}
                assert new == {b.cls - 1 if b.cls != END else END}, "the plan's invariant: a block leaves together"
                b.cls = new.pop()
            branches = [(1, lambda j: 2 * j + 1)]
        plan.takes.append([b.source for b in taken])
        emitted = []
        for which, logical in branches:
            order = sorted(range(m), key=lambda j: (cls[logical(j)], j))
            sizes = _runs([cls[logical(j)] for j in order])
            emitted.append((order, sizes))
            start = 0
            for k, size in enumerate(sizes):
                chans = [logical(j) for j in order[start:start + size]]
                live.append(Block((u, which, k), chans, cls[chans[0]]))
                start += size
        plan.emits.append(emitted)
    plan.out = [b.source for b in live]
    plan.out_order = [c for b in live for c in b.channels]
    return plan


class PlannedStage(nn.Module):
    """A V2 stage on planned channel orders: blocks, no shuffle. Its input is in physical order `in_order`."""

    def __init__(self, stage: nn.Sequential, plan: StagePlan, in_order: list[int]) -> None:
        super().__init__()
        self.plan = plan
        inp = torch.tensor(in_order)
        for u, unit in enumerate(stage):
            unit = copy.deepcopy(unit)
            assert isinstance(unit, InvertedResidual)
            if u == 0:
                _permute_out(unit.branch1[0], unit.branch1[1], inp)  # depthwise: its channels follow its input
                _permute_in(unit.branch1[2], inp)
                _permute_in(unit.branch2[0], inp)
                _permute_out(unit.branch1[2], unit.branch1[3], torch.tensor(plan.emits[0][0][0]))
                _permute_out(unit.branch2[5], unit.branch2[6], torch.tensor(plan.emits[0][1][0]))
            else:
                _permute_in(unit.branch2[0], torch.tensor(plan.branch_in[u]))
                _permute_out(unit.branch2[5], unit.branch2[6], torch.tensor(plan.emits[u][0][0]))
            self.add_module(str(u), unit)  # the same module paths as the stage it replaces (stage3.2): units keep names

    @property
    def units(self) -> list[InvertedResidual]:
        return list(self.children())  # type: ignore[arg-type]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.plan
        live: dict[tuple[int, int, int], torch.Tensor] = {}
        for u, unit in enumerate(self.units):
            if u == 0:
                outs = [(0, unit.branch1(x)), (1, unit.branch2(x))]
            else:
                parts = [live.pop(s) for s in p.takes[u]]
                outs = [(1, unit.branch2(parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)))]
            for (which, y), (_, sizes) in zip(outs, p.emits[u]):
                for k, piece in enumerate(_split(y, sizes)):
                    live[(u, which, k)] = piece
        blocks = [live[s] for s in p.out]
        return blocks[0] if len(blocks) == 1 else torch.cat(blocks, dim=1)


def _split(t: torch.Tensor, sizes: list[int]) -> tuple[torch.Tensor, ...]:
    """Channel blocks of `t`; one block is `t` itself (litert-torch cannot lower a one-way split)."""
    return (t,) if len(sizes) == 1 else torch.split(t, sizes, dim=1)


def _permute_in(conv: nn.Conv2d, order: torch.Tensor) -> None:
    with torch.no_grad():
        conv.weight.copy_(conv.weight[:, order])


def _permute_out(conv: nn.Conv2d, bn: nn.BatchNorm2d, order: torch.Tensor) -> None:
    with torch.no_grad():
        conv.weight.copy_(conv.weight[order])
        for t in (bn.weight, bn.bias, bn.running_mean, bn.running_var):
            t.copy_(t[order])


def plannable(model: nn.Module) -> str | None:
    """None when `plan_v2` applies to `model`; else why not (one line)."""
    if not isinstance(model, ShuffleNetV2):
        return (f"the planned channel order is built for ShuffleNetV2 with torchvision's structure; "
                f"{type(model).__name__} is not one")
    for name in ("stage2", "stage3", "stage4"):
        stage = getattr(model, name)
        if not isinstance(stage, nn.Sequential) or not all(type(u) is InvertedResidual for u in stage) or \
                stage[0].stride != 2 or any(u.stride != 1 for u in stage[1:]):
            return f"{name} is not a stride-2 unit followed by stride-1 torchvision units"
    return None


def plan_v2(model: ShuffleNetV2) -> nn.Module:
    """`model` with every stage on planned channel orders (a new module; `model` is left as it is)."""
    new = copy.deepcopy(model).eval()
    order = list(range(new.conv1[0].out_channels))
    for name in ("stage2", "stage3", "stage4"):
        stage = getattr(new, name)
        plan = plan_stage(stage[0].branch2[5].out_channels * 2, len(stage))
        setattr(new, name, PlannedStage(stage, plan, order))
        order = plan.out_order
    _permute_in(new.conv5[0], torch.tensor(order))
    return new


def blocks_per_unit(model: nn.Module) -> list[int]:
    """Per unit, how many blocks its branch input concatenates (0: a stage's first unit, which takes the input)."""
    return [len(t) for m in model.modules() if isinstance(m, PlannedStage) for t in m.plan.takes]
