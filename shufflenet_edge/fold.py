"""The module-level fold of our own classes (the exporters no longer use it: see below).

Since issue 12 the exporters fold every model at graph level (`shufflenet_edge.graph_fold`: the same index
math, found in any module's `torch.export` graph, the slicing and average-pool properties the TFLite int8
path relied on kept as graph rewrites). This module stays for two things only: the ``noshuffle`` form (the
benchmarks' lower bound: the network with the shuffle deleted, which no graph pass should produce) and the
tests that pin DESIGN.md section 3's index math on our classes (tests/test_fold.py, tests/test_passes.py).
The Folded* module rewrites below go once those tests move to graph_fold.

The fold: each unit's concat -> channel shuffle -> split as one rank-4 data path.

Reference (torchvision) ShuffleNet V2: ``out = shuffle(cat(a, b), 2)`` then the next stride-1 unit takes
``out.chunk(2)``. With ``a``, ``b`` of m channels each, concat channel ``c = k*m + i`` (k = 0 for a, 1 for
b) lands at shuffled position ``2i + k``; the next unit's half is ``h = i // (m/2)`` and its channel in the
half is ``2j + k`` with ``j = i mod m/2``. So in NCHW, viewing the concat as ``(k=2, h=2, j=m/2, H*W)`` and
permuting to ``(h, j, k, H*W)`` gives both halves as contiguous slabs of the outer axis. Forms:

- ``transpose``: one concat, one rank-4 transpose, one split on the outer axis (free reshapes). Batch 1.
- ``gather``: one concat, then one index selection per half, with indices
  ``[0, m, 1, m+1, ..., m/2-1, 3m/2-1]`` and ``[m/2, 3m/2, ..., m-1, 2m-1]``: rank 4, no transpose.
- ``noshuffle``: the shuffle deleted (contiguous split): wrong numbers, right cost. Benchmarks use it as
  the lower bound of what any fold can gain.

The last unit of every stage feeds a layer that reads the whole tensor (the next stage's stride-2 unit,
or conv5). There the shuffle is a fixed channel permutation, so it is folded *into the weights* of the
consumers: input channels of the 1x1 convolutions, and the channels of the depthwise conv and its
BatchNorm (a depthwise conv commutes with a channel permutation). Exact, and zero data movement.

ShuffleNet V1's group shuffle (g groups, between the first grouped 1x1 and the depthwise conv) has no
concat or split around it; its folded forms are one rank-4 transpose ``(1, g, C/g, H*W) -> (1, C/g, g,
H*W)`` or one index selection, instead of the reference's rank-5 view.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from shufflenet_edge.models.shufflenet_v1 import ShuffleNetV1, ShuffleUnitV1
from shufflenet_edge.models.shufflenet_v2 import InvertedResidual, ShuffleNetV2

FORMS = ("reference", "transpose", "gather", "noshuffle")


def shuffle_permutation(channels: int, groups: int) -> torch.Tensor:
    """perm[s] = source channel of shuffled position s (torchvision's channel_shuffle)."""
    per = channels // groups
    return torch.arange(channels).view(groups, per).t().reshape(-1)


def half_indices(m: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Concat-order channel indices of the next unit's two halves (DESIGN.md section 3)."""
    if m % 2:
        raise ValueError(f"branch channels must be even to split into halves, got {m}")
    half = m // 2
    j = torch.arange(half)
    out = []
    for h in (0, 1):
        idx = torch.stack([j + h * half, m + j + h * half], dim=1).reshape(-1)  # position 2j+k
        out.append(idx)
    return out[0], out[1]


class ShuffleSplit(nn.Module):
    """concat output (N, 2m, H, W) -> the next unit's two halves, shuffled, as one data path."""

    def __init__(self, m: int, form: str, slice_halves: bool = False) -> None:
        super().__init__()
        if form not in ("transpose", "gather", "noshuffle"):
            raise ValueError(f"form must be transpose, gather or noshuffle, got {form!r}")
        self.m = m
        self.form = form
        # Basic slicing instead of torch.split: PT2E then shares one quantization scale through the
        # whole data path (split's tuple output is not annotated), so no requantize ops appear.
        self.slice_halves = slice_halves
        i0, i1 = half_indices(m)
        self.register_buffer("idx0", i0, persistent=False)
        self.register_buffer("idx1", i1, persistent=False)

    def forward(self, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        m = self.m
        if self.form == "noshuffle":
            a, b = torch.split(c, m, dim=1)
            return a, b
        if self.form == "gather":
            return c.index_select(1, self.idx0), c.index_select(1, self.idx1)
        n, _, hgt, wid = c.shape
        if n != 1:
            raise ValueError(f"the transpose form is rank 4 only for batch 1, got batch {n}; use the gather form")
        t = c.reshape(2, 2, m // 2, hgt * wid).permute(1, 2, 0, 3).reshape(2, m, hgt, wid)
        if self.slice_halves:
            return t[0:1], t[1:2]
        h0, h1 = torch.split(t, 1, dim=0)
        return h0, h1


def _permute_input_channels(conv: nn.Conv2d, perm: torch.Tensor) -> None:
    """conv now reads x_unshuffled where it read x_shuffled[s] = x_unshuffled[perm[s]]."""
    w = conv.weight.data
    new = torch.empty_like(w)
    new[:, perm] = w
    conv.weight.data = new


def _permute_depthwise(conv: nn.Conv2d, bn: nn.BatchNorm2d, perm: torch.Tensor) -> None:
    """A depthwise conv + BN fed unshuffled channels: channel t now runs old channel inv[t]."""
    inv = torch.empty_like(perm)
    inv[perm] = torch.arange(len(perm))
    conv.weight.data = conv.weight.data[inv].clone()
    if conv.bias is not None:
        conv.bias.data = conv.bias.data[inv].clone()
    for name in ("weight", "bias", "running_mean", "running_var"):
        t = getattr(bn, name)
        t.data = t.data[inv].clone()


class FoldedUnitV2(nn.Module):
    def __init__(self, ref: InvertedResidual, form: str, in_perm: torch.Tensor | None, last: bool,
                 slice_halves: bool = False) -> None:
        super().__init__()
        self.stride = ref.stride
        self.branch1 = copy.deepcopy(ref.branch1)
        self.branch2 = copy.deepcopy(ref.branch2)
        if in_perm is not None:  # the previous stage's last shuffle, folded into our weights
            assert self.stride == 2
            _permute_depthwise(self.branch1[0], self.branch1[1], in_perm)
            _permute_input_channels(self.branch1[2], in_perm)
            _permute_input_channels(self.branch2[0], in_perm)
        m = self.branch2[5].out_channels
        self.last = last
        self.split = None if last else ShuffleSplit(m, form, slice_halves)

    def forward(self, x):  # type: ignore[no-untyped-def]
        if self.stride == 1:
            h0, h1 = x
            c = torch.cat((h0, self.branch2(h1)), dim=1)
        else:
            c = torch.cat((self.branch1(x), self.branch2(x)), dim=1)
        return c if self.split is None else self.split(c)


class FoldedShuffleNetV2(nn.Module):
    """Same logits as the reference; the shuffles live in ShuffleSplit and in permuted weights."""

    def __init__(self, ref: ShuffleNetV2, form: str = "transpose", slice_halves: bool = False) -> None:
        super().__init__()
        self.form = form
        self.conv1 = copy.deepcopy(ref.conv1)
        self.maxpool = copy.deepcopy(ref.maxpool)
        perm = None
        units: list[nn.Module] = []
        for stage in (ref.stage2, ref.stage3, ref.stage4):
            n = len(stage)
            for i, u in enumerate(stage):
                units.append(FoldedUnitV2(u, form, perm if i == 0 else None, last=(i == n - 1), slice_halves=slice_halves))
            c = stage[-1].branch2[5].out_channels * 2
            perm = None if form == "noshuffle" else shuffle_permutation(c, 2)
        self.units = nn.Sequential(*units)
        self.conv5 = copy.deepcopy(ref.conv5)
        if perm is not None:
            _permute_input_channels(self.conv5[0], perm)
        self.fc = copy.deepcopy(ref.fc)
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.conv1(x))
        y = x
        for u in self.units:
            y = u(y)
        y = self.conv5(y)
        return self.fc(y.mean([2, 3]))


class GroupShuffle(nn.Module):
    """V1's channel shuffle as one rank-4 path (transpose or gather), or deleted (noshuffle)."""

    def __init__(self, channels: int, groups: int, form: str) -> None:
        super().__init__()
        self.c, self.g, self.form = channels, groups, form
        self.register_buffer("perm", shuffle_permutation(channels, groups), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.g == 1 or self.form == "noshuffle":
            return x
        if self.form == "gather":
            return x.index_select(1, self.perm)
        n, c, h, w = x.shape
        if n != 1:
            raise ValueError(f"the transpose form is rank 4 only for batch 1, got batch {n}; use the gather form")
        return x.reshape(self.g, c // self.g, h * w).permute(1, 0, 2).reshape(1, c, h, w)


def avgpool_as_depthwise(channels: int) -> nn.Conv2d:
    """AvgPool2d(3, 2, padding=1) (count_include_pad) as a depthwise conv with weights 1/9: the same
    numbers, and an op every int8 backend takes (XNNPACK has no int8 average pool: each one cut the
    graph into more partitions). 1/9 is exact in per-channel int8 (q = 127, scale = 1/(9*127))."""
    conv = nn.Conv2d(channels, channels, 3, 2, 1, bias=False, groups=channels)
    with torch.no_grad():
        conv.weight.fill_(1.0 / 9.0)
    return conv


class FoldedUnitV1(ShuffleUnitV1):
    def __init__(self, ref: ShuffleUnitV1, form: str, avgpool_as_conv: bool = False) -> None:
        nn.Module.__init__(self)
        self.stride, self.groups = ref.stride, ref.groups
        self.branch = copy.deepcopy(ref.branch)
        if avgpool_as_conv and ref.stride == 2:
            self.shortcut = avgpool_as_depthwise(ref.branch[0].in_channels)
        else:
            self.shortcut = copy.deepcopy(ref.shortcut)
        self.group_shuffle = GroupShuffle(self.branch[0].out_channels, ref.groups, form)

    def shuffle(self, x: torch.Tensor) -> torch.Tensor:
        return self.group_shuffle(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            return super().forward(x)
        y = self.branch[2](self.branch[1](self.branch[0](x)))
        y = self.shuffle(y)
        for i in range(3, 7):
            y = self.branch[i](y)
        # relu(cat(pool(x), y)) == cat(pool(x), relu(y)) because x >= 0 (every unit's input is a ReLU or
        # max-pool output), so the average pool is >= 0 too: the ReLU fuses into the branch's last conv
        # instead of running as a standalone op on the concat (which XNNPACK does not take in int8).
        return torch.cat((self.shortcut(x), torch.relu(y)), dim=1)


class FoldedShuffleNetV1(nn.Module):
    def __init__(self, ref: ShuffleNetV1, form: str = "transpose", avgpool_as_conv: bool = False) -> None:
        super().__init__()
        self.form = form
        self.conv1 = copy.deepcopy(ref.conv1)
        self.maxpool = copy.deepcopy(ref.maxpool)
        self.units = nn.Sequential(*[FoldedUnitV1(u, form, avgpool_as_conv) for s in (ref.stage2, ref.stage3, ref.stage4) for u in s])
        self.fc = copy.deepcopy(ref.fc)
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.units(self.maxpool(self.conv1(x)))
        return self.fc(x.mean([2, 3]))


def fold(model: nn.Module, form: str = "transpose", slice_halves: bool = False, avgpool_as_conv: bool = False) -> nn.Module:
    """The export form of a reference model. `reference` returns the model itself.

    `slice_halves` (V2, transpose form) takes the halves with basic slicing instead of one split:
    the TFLite path converts this form and rewrites its data path with a graph pass anyway.
    `avgpool_as_conv` (V1) computes the stride-2 shortcut's average pool as a depthwise conv."""
    if form not in FORMS:
        raise ValueError(f"unknown form {form!r}; valid: {', '.join(FORMS)}")
    if form == "reference":
        return model
    if isinstance(model, ShuffleNetV2):
        return FoldedShuffleNetV2(model, form, slice_halves)
    if isinstance(model, ShuffleNetV1):
        return FoldedShuffleNetV1(model, form, avgpool_as_conv)
    raise TypeError(f"fold supports ShuffleNetV1 and ShuffleNetV2, got {type(model).__name__}")
