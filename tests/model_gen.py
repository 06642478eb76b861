"""Generated ShuffleNet-family models: architectures drawn from the space public code writes, not from our registry.

`draw(seed)` returns a `Spec` (a plain record: every choice the seed made), `build(spec)` the module in eval mode and
its example input shape. The same seed always gives the same spec and the same weights, so a failure is reproduced
from the seed alone (`benchmarks/fuzz_models.py --seeds N`, or `build(draw(N))`).

What is drawn, per model:
- units: V1 (grouped 1x1 with 2/3/4/8 groups, the shuffle after the first group conv, stride 1 residual add or
  stride 2 average-pool concat), V2 (split, branch, concat, shuffle; stride 1 and 2, unequal stride-2 branches so
  channel counts can be odd, a split ratio other than one half now and then), megvii's V2 (even/odd split inside
  the block, written as strided slices or as megvii's reshape/permute/index; no shuffle after the concat);
- the shuffle spelled as public code spells it: ``view`` + ``transpose`` + ``view`` (torchvision), ``reshape`` +
  ``permute`` at rank 5, megvii V1's inverse order, ``F.channel_shuffle``, a ``channel_shuffle(x, groups)``
  helper, ``index_select`` or fancy indexing with a permutation buffer;
- the split spelled every way: ``chunk``, ``split`` by size, ``split`` by sizes, ``x[:, :c]`` slicing,
  ``torch.tensor_split``, ``narrow``;
- activations ReLU / LeakyReLU / ReLU6 / h-swish / SiLU, squeeze-excitation in the branch, an optional stem max-pool;
- outputs: intermediate tensors returned as graph outputs (a unit's output, its concat before the shuffle, its
  branch, the next unit's half), each also read by the rest of the network (fan-out); heads that flatten
  (rank 2), concatenate levels into (1, N, C) (rank 3), reshape to YOLO's rank 5, decode boxes in pixels (values
  in the hundreds), keep a heatmap (rank 4), upsample (nearest) and concatenate levels, pool adaptively;
- non-square inputs; random weights and BatchNorm statistics that are not the identity (tests/zoo.py `randomize`).
"""

from __future__ import annotations

import dataclasses
import json
import random
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from zoo import randomize

SHUFFLES = ("view_transpose", "reshape_permute", "inverse_permute", "channel_shuffle_op", "helper", "index_select",
            "fancy_index")
SPLITS = ("chunk", "split", "split_sizes", "slice", "tensor_split", "narrow")
ACTS = ("relu", "leaky_relu", "relu6", "hardswish", "silu")
HEADS = ("classifier", "mean_linear", "adaptive_pool", "det_flat", "yolo_raw", "yolo_concat", "heatmap", "fpn")
TAPS = ("unit_out", "pre_shuffle", "branch", "half")


@dataclasses.dataclass(frozen=True)
class UnitSpec:
    kind: str  # "v1", "v2", "v2_evenodd"
    cin: int
    cout: int
    stride: int
    shuffle: str  # one of SHUFFLES
    split: str  # one of SPLITS (V2 stride 1), "strided" / "reshape" (megvii's even/odd split)
    act: str
    groups: int = 2  # V1: the grouped 1x1's groups (the shuffle's too)
    se: bool = False
    first_half: int = 0  # V2 stride 1: the pass-through channels (cin // 2 unless a split ratio was drawn)


@dataclasses.dataclass(frozen=True)
class Spec:
    seed: int
    input_hw: tuple[int, int]
    stem: int
    stem_act: str
    maxpool: bool
    units: tuple[UnitSpec, ...]
    stage_ends: tuple[int, ...]  # index of each stage's last unit
    taps: tuple[tuple[int, str], ...]  # (unit, what) returned as graph outputs
    heads: tuple[str, ...]
    single: bool  # one output returned bare instead of a tuple

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def summary(self) -> str:
        kinds = sorted({u.kind for u in self.units})
        shuffles = sorted({u.shuffle for u in self.units if u.kind != "v2_evenodd" and not (u.kind == "v2" and u.shuffle == "")})
        return (f"seed {self.seed}: {len(self.units)} units ({'/'.join(kinds)}), input {self.input_hw[0]}x{self.input_hw[1]}, "
                f"shuffles {'/'.join(shuffles) or '-'}, splits {'/'.join(sorted({u.split for u in self.units if u.split}))}, "
                f"heads {'/'.join(self.heads)}, taps {len(self.taps)}")


# ------------------------------------------------------------------------------------------------------ drawing


def draw(seed: int) -> Spec:
    """Every architectural choice from one seed."""
    rng = random.Random(seed)
    family = rng.choice(("v2", "v2", "v2", "v1", "v2_evenodd", "mixed"))
    n_stages = rng.choice((1, 2, 2, 3))
    maxpool = n_stages < 3 and rng.random() < 0.5
    down = 1 + int(maxpool) + n_stages
    input_hw = (2 ** down * rng.choice((2, 3, 4)), 2 ** down * rng.choice((2, 3, 4)))  # non-square: 32x48, 64x48...
    act = rng.choice(ACTS)
    stem = rng.choice((8, 12, 15, 16, 21, 24))
    units: list[UnitSpec] = []
    stage_ends = []
    cin = stem
    for _ in range(n_stages):
        kind = family if family != "mixed" else rng.choice(("v1", "v2", "v2_evenodd"))
        cout, groups = _stage_channels(rng, kind, cin)
        for i in range(rng.choice((1, 2, 2, 3, 4))):
            stride = 2 if i == 0 else 1
            units.append(_unit(rng, kind, cin, cout, stride, groups, act if rng.random() < 0.8 else rng.choice(ACTS)))
            cin = cout
        stage_ends.append(len(units) - 1)
    taps = _taps(rng, units)
    heads = _heads(rng, n_stages)
    return Spec(seed, input_hw, stem, act, maxpool, tuple(units), tuple(stage_ends), taps, heads,
                single=len(heads) == 1 and not taps and rng.random() < 0.5)


def _stage_channels(rng: random.Random, kind: str, cin: int) -> tuple[int, int]:
    if kind == "v1":  # mid = cout / 4 channels in `groups` groups (odd with 3 groups: 9, 15)
        groups = rng.choice((2, 3, 4, 8))
        mid = groups * (rng.choice((1, 2)) if groups == 8 else rng.choice((2, 3, 4, 5)))
        while 4 * mid <= cin:
            mid += groups
        return 4 * mid, groups
    cout = rng.choice((16, 20, 24, 30, 32, 36, 40, 48))  # 30: odd halves (15)
    while cout <= cin:
        cout += 8
    return cout, 2


def _unit(rng: random.Random, kind: str, cin: int, cout: int, stride: int, groups: int, act: str) -> UnitSpec:
    shuffle = rng.choice(SHUFFLES)
    if kind == "v1":
        return UnitSpec("v1", cin, cout, stride, shuffle, "", act, groups=groups, se=False)
    if kind == "v2_evenodd":
        return UnitSpec(kind, cin, cout, stride, "", rng.choice(("strided", "reshape")) if stride == 1 else "", act,
                        se=rng.random() < 0.3)
    first = cin // 2
    if stride == 1 and rng.random() < 0.15:
        first = cin // 4  # a split ratio other than one half
    return UnitSpec("v2", cin, cout, stride, shuffle, rng.choice(SPLITS) if stride == 1 else "", act,
                    se=rng.random() < 0.25, first_half=first)


def _taps(rng: random.Random, units: list[UnitSpec]) -> tuple[tuple[int, str], ...]:
    taps = []
    for i, u in enumerate(units[:-1]):
        if rng.random() < 0.2:
            what = rng.choice(TAPS)
            if what == "half" and not (units[i + 1].kind == "v2" and units[i + 1].stride == 1):
                what = "unit_out"
            if what == "pre_shuffle" and u.kind == "v1":
                what = "branch"
            taps.append((i, what))
    return tuple(taps)


def _heads(rng: random.Random, n_stages: int) -> tuple[str, ...]:
    k = rng.choice((1, 1, 2, 3))
    heads = set()
    while len(heads) < k:
        h = rng.choice(HEADS)
        if h == "fpn" and n_stages < 2:
            h = "heatmap"
        heads.add(h)
    return tuple(sorted(heads))


# ----------------------------------------------------------------------------------------------------- building


def activation(name: str) -> nn.Module:
    return {"relu": lambda: nn.ReLU(inplace=True), "leaky_relu": lambda: nn.LeakyReLU(0.1, inplace=True),
            "relu6": lambda: nn.ReLU6(inplace=True), "hardswish": nn.Hardswish, "silu": nn.SiLU}[name]()


def conv_bn(cin: int, cout: int, k: int = 1, s: int = 1, groups: int = 1, act: str | None = None) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, s, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    if act:
        layers.append(activation(act))
    return nn.Sequential(*layers)


def helper_channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """The shared helper most codebases carry (sizes read from the tensor, ``-1`` in the last view)."""
    batch, channels, height, width = x.size()
    x = x.view(batch, groups, channels // groups, height, width)
    x = torch.transpose(x, 1, 2).contiguous()
    return x.view(batch, -1, height, width)


class Shuffle(nn.Module):
    """A channel shuffle of `channels` in `groups`, spelled `how`."""

    def __init__(self, channels: int, groups: int, how: str) -> None:
        super().__init__()
        self.groups, self.how = groups, how
        perm = torch.arange(channels).reshape(groups, channels // groups).t().reshape(-1)
        self.register_buffer("perm", perm, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g, how = self.groups, self.how
        b, c, h, w = x.shape
        if how == "view_transpose":
            return x.view(b, g, c // g, h, w).transpose(1, 2).contiguous().view(b, c, h, w)
        if how == "reshape_permute":
            return x.reshape(b, g, c // g, h, w).permute(0, 2, 1, 3, 4).reshape(b, c, h, w)
        if how == "inverse_permute":  # megvii ShuffleNetV1's order (the inverse permutation)
            return x.reshape(b, c // g, g, h, w).permute(0, 2, 1, 3, 4).reshape(b, c, h, w)
        if how == "channel_shuffle_op":
            return F.channel_shuffle(x, g)
        if how == "helper":
            return helper_channel_shuffle(x, g)
        if how == "index_select":
            return x.index_select(1, self.perm)
        return x[:, self.perm]  # fancy_index


def split_in_two(x: torch.Tensor, first: int, how: str) -> tuple[torch.Tensor, torch.Tensor]:
    c = x.shape[1]
    if how == "chunk" and 2 * first == c:
        a, b = x.chunk(2, dim=1)
    elif how == "split" and 2 * first == c:
        a, b = x.split(first, dim=1)
    elif how == "tensor_split":
        a, b = torch.tensor_split(x, [first], dim=1)
    elif how == "narrow":
        a, b = x.narrow(1, 0, first), x.narrow(1, first, c - first)
    elif how == "slice":
        a, b = x[:, :first], x[:, first:]
    else:  # split_sizes, and chunk/split of an unequal ratio
        a, b = torch.split(x, [first, c - first], dim=1)
    return a, b


def even_odd(x: torch.Tensor, how: str) -> tuple[torch.Tensor, torch.Tensor]:
    if how == "strided":  # ShuffleNetV2+'s spelling
        return x[:, 0::2], x[:, 1::2]
    b, c, h, w = x.shape  # megvii ShuffleNetV2's spelling
    x = x.reshape(b * c // 2, 2, h * w).permute(1, 0, 2).reshape(2, -1, c // 2, h, w)
    return x[0], x[1]


class SE(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        mid = max(4, c // 4)
        self.fc = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(c, mid, 1), nn.ReLU(inplace=True),
                                nn.Conv2d(mid, c, 1), nn.Hardsigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.fc(x)


class Unit(nn.Module):
    """One unit as `spec` says; forward returns (output, named intermediates that can be tapped)."""

    def __init__(self, spec: UnitSpec) -> None:
        super().__init__()
        self.spec = s = spec
        if s.kind == "v1":
            self._v1(s)
        else:
            self._v2(s)

    def _v1(self, s: UnitSpec) -> None:
        mid = s.cout // 4
        first_groups = s.groups if s.cin % s.groups == 0 else 1  # the stem's channel count may not divide
        out = s.cout - s.cin if s.stride == 2 else s.cout
        self.compress = conv_bn(s.cin, mid, 1, groups=first_groups, act=s.act)
        self.shuffle = Shuffle(mid, s.groups, s.shuffle)
        self.dw = conv_bn(mid, mid, 3, s.stride, groups=mid)
        self.expand = conv_bn(mid, out, 1, groups=s.groups if out % s.groups == 0 else 1)
        self.act = activation(s.act)

    def _v2(self, s: UnitSpec) -> None:
        if s.stride == 2:
            proj = s.cin if s.kind == "v2_evenodd" else s.cout // 2
            self.proj = nn.Sequential(conv_bn(s.cin, s.cin, 3, 2, groups=s.cin), conv_bn(s.cin, proj, 1, act=s.act))
            main_in, main_out = s.cin, s.cout - proj
        else:
            keep = s.cin // 2 if s.kind == "v2_evenodd" else s.first_half
            main_in, main_out = s.cin - keep, s.cout - keep
        layers: list[nn.Module] = [conv_bn(main_in, main_out, 1, act=s.act),
                                   conv_bn(main_out, main_out, 3, s.stride, groups=main_out)]
        if s.se:
            layers.append(SE(main_out))
        layers.append(conv_bn(main_out, main_out, 1, act=s.act))
        self.main = nn.Sequential(*layers)
        if s.kind == "v2":
            self.shuffle = Shuffle(s.cout, 2, s.shuffle)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        s = self.spec
        if s.kind == "v1":
            y = self.expand(self.dw(self.shuffle(self.compress(x))))
            if s.stride == 2:
                return self.act(torch.cat((F.avg_pool2d(x, 3, 2, 1), y), 1)), {"branch": y}
            return self.act(x + y), {"branch": y}
        half: torch.Tensor | None = None
        if s.stride == 2:
            a, b = self.proj(x), self.main(x)
        elif s.kind == "v2_evenodd":
            a, half = even_odd(x, s.split)
            b = self.main(half)
        else:
            a, half = split_in_two(x, s.first_half, s.split)
            b = self.main(half)
        cat = torch.cat((a, b), 1)
        inner = {"branch": b, "pre_shuffle": cat, **({"half": half} if half is not None else {})}
        return (self.shuffle(cat) if s.kind == "v2" else cat), inner


class Heads(nn.Module):
    """The drawn heads over the stage outputs (`feats`, shallow to deep)."""

    def __init__(self, spec: Spec, chans: list[int], sizes: list[tuple[int, int]], gen: torch.Generator) -> None:
        super().__init__()
        self.names = spec.heads
        c, (h, w) = chans[-1], sizes[-1]
        self.n_classes = 5 + int(torch.randint(0, 8, (1,), generator=gen))
        self.fc = nn.Linear(c, self.n_classes)
        self.pool_hw = (2, 2) if h % 2 == 0 and w % 2 == 0 else (1, 1)
        self.fc_pool = nn.Linear(c * self.pool_hw[0] * self.pool_hw[1], self.n_classes)
        levels = list(range(max(0, len(chans) - 2), len(chans)))
        self.levels = levels
        self.det = nn.ModuleList([nn.Conv2d(chans[i], 9, 1) for i in levels])
        self.na, self.no = 3, 6
        self.yolo = nn.Conv2d(c, self.na * self.no, 1)
        self.stride = spec.input_hw[0] // h
        gy, gx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
        self.register_buffer("grid", torch.stack((gx, gy), -1).view(1, 1, h, w, 2).float(), persistent=False)
        self.register_buffer("anchor", torch.tensor([10.0, 13, 16, 30, 33, 23]).view(1, 3, 1, 1, 2), persistent=False)
        self.heat = nn.Conv2d(c, 4, 1)
        if len(chans) >= 2:
            self.lateral = conv_bn(c, chans[-2], 1, act="relu")
            self.fuse = conv_bn(2 * chans[-2], chans[-2], 3, act="relu")

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        x = feats[-1]
        outs = []
        for name in self.names:
            if name == "classifier":
                outs.append(self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)))
            elif name == "mean_linear":
                outs.append(self.fc(x.mean((2, 3))))
            elif name == "adaptive_pool":
                outs.append(self.fc_pool(F.adaptive_avg_pool2d(x, self.pool_hw).flatten(1)))
            elif name == "det_flat":
                maps = [conv(feats[i]).flatten(start_dim=2) for conv, i in zip(self.det, self.levels)]
                outs.append(torch.cat(maps, dim=2).permute(0, 2, 1))
            elif name in ("yolo_raw", "yolo_concat"):
                bs, _, ny, nx = x.shape
                y = self.yolo(x).view(bs, self.na, self.no, ny, nx).permute(0, 1, 3, 4, 2).contiguous()
                if name == "yolo_raw":
                    outs.append(y)
                else:  # YOLOv5's export-mode decode: boxes in pixels, one (1, N, no) tensor
                    y = y.sigmoid()
                    xy = (y[..., 0:2] * 2 - 0.5 + self.grid) * self.stride
                    wh = (y[..., 2:4] * 2) ** 2 * self.anchor
                    outs.append(torch.cat((xy, wh, y[..., 4:]), -1).view(bs, -1, self.no))
            elif name == "heatmap":
                outs.append(self.heat(x))
            else:  # fpn: the deepest level upsampled (nearest) onto the one before, concatenated, fused
                up = F.interpolate(self.lateral(x), scale_factor=2, mode="nearest")
                outs.append(self.fuse(torch.cat((up, feats[-2]), 1)))
        return outs


class Generated(nn.Module):
    def __init__(self, spec: Spec) -> None:
        super().__init__()
        self.spec = spec
        self.stem = conv_bn(3, spec.stem, 3, 2, act=spec.stem_act)
        self.pool = nn.MaxPool2d(3, 2, 1) if spec.maxpool else nn.Identity()
        self.units = nn.ModuleList([Unit(u) for u in spec.units])
        h, w = spec.input_hw[0] // (2 ** (1 + int(spec.maxpool))), spec.input_hw[1] // (2 ** (1 + int(spec.maxpool)))
        chans, sizes = [], []
        for i, u in enumerate(spec.units):
            if u.stride == 2:
                h, w = (h + 1) // 2, (w + 1) // 2
            if i in spec.stage_ends:
                chans.append(u.cout)
                sizes.append((h, w))
        self.heads = Heads(spec, chans, sizes, torch.Generator().manual_seed(spec.seed))

    def forward(self, x: torch.Tensor) -> Any:
        x = self.pool(self.stem(x))
        feats, tapped = [], []
        taps = dict(self.spec.taps)
        for i, unit in enumerate(self.units):
            y, inner = unit(x)
            if i in taps:
                what = taps[i]
                if what == "half":  # the next unit's first half, read again by that unit (fan-out)
                    nxt = self.spec.units[i + 1]
                    tapped.append(split_in_two(y, nxt.first_half, nxt.split)[0])
                else:
                    tapped.append(y if what == "unit_out" else inner[what])
            x = y
            if i in self.spec.stage_ends:
                feats.append(x)
        outs = tapped + self.heads(feats)
        return outs[0] if self.spec.single and len(outs) == 1 else tuple(outs)


def build(spec: Spec) -> tuple[nn.Module, tuple[int, int, int, int]]:
    """The module (eval mode, seeded weights, non-identity BatchNorm) and its example input shape."""
    model = randomize(Generated(spec), spec.seed)
    return model, (1, 3, *spec.input_hw)


def spec_json(spec: Spec) -> str:
    return json.dumps(spec.to_dict(), sort_keys=True)
