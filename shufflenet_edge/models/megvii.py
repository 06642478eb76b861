"""ShuffleNet V1 and V2 as Megvii's ShuffleNet-Series defines them (github.com/megvii-model/ShuffleNet-Series).

The authors' released checkpoints load into these modules unchanged: attribute names and ``nn.Sequential``
indices follow theirs (``first_conv.0``, ``features.N.branch_main_1.3`` / ``branch_main_2.0`` in V1,
``features.N.branch_main.5`` / ``branch_proj.2`` in V2, ``conv_last.0``, ``classifier.0`` without bias).
`shufflenet_edge.models.weights` strips the ``module.`` prefix their ``nn.DataParallel`` training left on
every key and unwraps their ``{'state_dict': ...}`` file layout.

Where their semantics differ from torchvision's (shufflenet_v1.py / shufflenet_v2.py here):

- V1 channel shuffle views the C channels as ``(C/g, g)`` and swaps the two axes: output channel
  ``j*(C/g) + i`` is input channel ``i*g + j``. That is the *inverse* of torchvision's ``(g, C/g)`` shuffle
  (the two agree only when C = g*g). Units: stride 2 returns ``cat(avgpool3x3(x), relu(branch))``,
  stride 1 ``relu(x + branch)``; the first 1x1 of stage 2's first unit is not grouped; every unit shuffles.
  Bottleneck = output/4; stage widths per (width, g) as in their table (0.5x g=8 has a 16-channel stem).
- V2 stride-1 units shuffle *inside* the unit, before the split: the input's even channels pass through,
  the odd channels go through ``branch_main`` (megvii's ``channel_shuffle``, which views the channels as
  pairs); the unit's output is the plain concat, with no shuffle after it. Stride-2 units concatenate
  ``branch_proj`` (3x3 dw -> 1x1, ``inp`` channels) and ``branch_main`` (1x1 to ``oup/2`` -> 3x3 dw -> 1x1 to
  ``oup - inp``), with no shuffle, so stage 2's first unit differs from torchvision's (e.g. 24 + 92 channels
  at 1.0x instead of 58 + 58). V2 2.0x has ``Dropout(0.2)`` between the pool and the classifier (identity in
  eval mode; no state-dict entries).
- Head: ``AvgPool2d(7)`` then a bias-free linear classifier.

Input size: megvii's ``AvgPool2d(7)`` is a global pool only when the last feature map is 7x7 (input
193-224, i.e. the 224 they trained at). Here ``globalpool`` is an ``AvgPool2d(7)`` that runs as such on a
7x7 map (bit-identical to megvii at 224) and takes the global mean (``adaptive_avg_pool2d(x, 1)``) on any
other map. Megvii's code at other sizes: maps under 7x7 (input < 193) raise an error; 8x8 to 13x13
average only the top-left 7x7 window; 14x14 and up produce several windows, which their
``view(-1, C)`` turns into extra rows of the output batch. None of that is reproduced.

Preprocessing: megvii trained and evaluated on BGR images scaled 0-255, not normalized (their
``ToBGRTensor``), after an OpenCV bilinear resize of the short side to 256 and a 224 centre crop. The
toolkit's `shufflenet_edge.data.Preprocess` is torchvision's (RGB, ImageNet mean/std): feed megvii's
released weights their own preprocessing, or their logits mean nothing.

Fold: the exporters fold these models at graph level (`shufflenet_edge.graph_fold` finds V1's inverse-order
shuffle and V2's even/odd split in the `torch.export` graph), like every other model.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from shufflenet_edge.models.common import init_weights
from shufflenet_edge.models.registry import ModelInfo, register

# (stem, stage 2, stage 3, stage 4) output channels per (groups, width), from megvii's V1 network.py.
MEGVII_V1_CHANNELS: dict[tuple[int, float], tuple[int, int, int, int]] = {
    (3, 0.5): (12, 120, 240, 480),
    (3, 1.0): (24, 240, 480, 960),
    (3, 1.5): (24, 360, 720, 1440),
    (3, 2.0): (48, 480, 960, 1920),
    (8, 0.5): (16, 192, 384, 768),
    (8, 1.0): (24, 384, 768, 1536),
    (8, 1.5): (24, 576, 1152, 2304),
    (8, 2.0): (48, 768, 1536, 3072),
}
# (stem, stage 2, stage 3, stage 4, conv_last) output channels per width, from megvii's V2 network.py.
MEGVII_V2_CHANNELS: dict[float, tuple[int, int, int, int, int]] = {
    0.5: (24, 48, 96, 192, 1024),
    1.0: (24, 116, 232, 464, 1024),
    1.5: (24, 176, 352, 704, 1024),
    2.0: (24, 244, 488, 976, 2048),
}
# FLOPs (multiply-adds at 224x224) megvii's READMEs publish.
MEGVII_V1_FLOPS_M = {
    (3, 0.5): 38.0, (3, 1.0): 138.0, (3, 1.5): 292.0, (3, 2.0): 524.0,
    (8, 0.5): 40.0, (8, 1.0): 138.0, (8, 1.5): 290.0, (8, 2.0): 522.0,
}
MEGVII_V2_FLOPS_M = {0.5: 41.0, 1.0: 146.0, 1.5: 299.0, 2.0: 591.0}
STAGE_REPEATS = (4, 8, 4)
WIDTH_SUFFIX = {0.5: "x0_5", 1.0: "x1_0", 1.5: "x1_5", 2.0: "x2_0"}


def megvii_v1_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """Megvii's V1 shuffle: channels viewed as (C/g, g), axes swapped (torchvision's inverse)."""
    b, c, h, w = x.shape
    y = x.reshape(b, c // groups, groups, h, w).permute(0, 2, 1, 3, 4)
    return y.reshape(b, c, h, w)


def megvii_v2_split(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Megvii's V2 in-unit shuffle + split: (even channels, odd channels), each (N, C/2, H, W).

    Channel pairs ``(2k, 2k+1)`` are rows of a (rows, 2, H*W) view; moving the pair axis outermost gives
    the even channels of every image, then the odd ones."""
    b, c, h, w = x.shape
    t = x.reshape(-1, 2, h * w).permute(1, 0, 2).reshape(2, -1, c // 2, h, w)
    return t[0], t[1]


class MegviiGlobalPool(nn.AvgPool2d):
    """Megvii's ``AvgPool2d(7)`` on a 7x7 map (their 224 input); the global mean on any other map size."""

    def __init__(self) -> None:
        super().__init__(7)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[-2:]) == (7, 7):
            return super().forward(x)
        return F.adaptive_avg_pool2d(x, 1)


def _conv_bn(cin: int, cout: int, k: int = 1, stride: int = 1, groups: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]


class MegviiShuffleV1Block(nn.Module):
    """gconv1x1-BN-ReLU-dw3x3-BN (``branch_main_1``), megvii shuffle, gconv1x1-BN (``branch_main_2``), shortcut."""

    def __init__(self, inp: int, oup: int, *, groups: int, stride: int, group_first: bool = True) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {stride}")
        if stride == 1 and inp != oup:
            raise ValueError(f"stride 1 needs inp == oup for the identity shortcut, got inp {inp} and oup {oup}")
        mid = oup // 4
        main_out = oup - inp if stride == 2 else oup
        g1 = groups if group_first else 1
        for what, val, g in (("input", inp, g1), ("bottleneck", mid, groups), ("branch output", main_out, groups)):
            if val <= 0 or val % g:
                raise ValueError(f"{what} channels {val} must be positive and divisible by groups {g} (inp {inp}, oup {oup})")
        self.stride = stride
        self.groups = groups
        self.branch_main_1 = nn.Sequential(
            *_conv_bn(inp, mid, groups=g1),
            nn.ReLU(inplace=True),
            *_conv_bn(mid, mid, 3, stride, groups=mid),
        )
        self.branch_main_2 = nn.Sequential(*_conv_bn(mid, main_out, groups=groups))
        if stride == 2:
            self.branch_proj = nn.AvgPool2d(3, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.branch_main_1(x)
        if self.groups > 1:
            y = megvii_v1_shuffle(y, self.groups)
        y = self.branch_main_2(y)
        if self.stride == 1:
            return torch.relu(x + y)
        return torch.cat((self.branch_proj(x), torch.relu(y)), dim=1)


class MegviiShuffleNetV1(nn.Module):
    def __init__(
        self,
        channels: tuple[int, int, int, int],
        groups: int,
        num_classes: int = 1000,
        stage_repeats: tuple[int, int, int] = STAGE_REPEATS,
        block: type[MegviiShuffleV1Block] = MegviiShuffleV1Block,
    ) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        if len(channels) != 4 or len(stage_repeats) != 3:
            raise ValueError(f"expected 4 channel counts (stem, 3 stages) and 3 repeats, got {channels} and {stage_repeats}")
        stem = channels[0]
        self.groups = groups
        self.first_conv = nn.Sequential(*_conv_bn(3, stem, 3, 2), nn.ReLU(inplace=True))
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        blocks: list[nn.Module] = []
        inp = stem
        for stage, (repeats, oup) in enumerate(zip(stage_repeats, channels[1:])):
            for i in range(repeats):
                blocks.append(block(inp, oup, groups=groups, stride=2 if i == 0 else 1,
                                    group_first=not (stage == 0 and i == 0)))
                inp = oup
        self.features = nn.Sequential(*blocks)
        self.globalpool = MegviiGlobalPool()
        self.classifier = nn.Sequential(nn.Linear(inp, num_classes, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(self.maxpool(self.first_conv(x)))
        return self.classifier(self.globalpool(x).flatten(1))


class MegviiShuffleV2Block(nn.Module):
    """stride 1: even channels pass, odd channels through ``branch_main``, concat (no shuffle after).
    stride 2: ``cat(branch_proj(x), branch_main(x))``. `inp` is the unit's whole input (megvii's own
    constructor takes half of it for stride 1)."""

    def __init__(self, inp: int, oup: int, *, stride: int) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {stride}")
        if stride == 1 and (inp != oup or inp % 2):
            raise ValueError(f"stride 1 needs inp == oup and even (split into halves), got inp {inp} and oup {oup}")
        main_in = inp if stride == 2 else inp // 2
        mid = oup // 2
        main_out = oup - main_in
        if main_out <= 0:
            raise ValueError(f"stride 2 needs oup > inp, got inp {inp} and oup {oup}")
        self.stride = stride
        self.branch_main = nn.Sequential(
            *_conv_bn(main_in, mid),
            nn.ReLU(inplace=True),
            *_conv_bn(mid, mid, 3, stride, groups=mid),
            *_conv_bn(mid, main_out),
            nn.ReLU(inplace=True),
        )
        self.branch_proj: nn.Sequential | None = None
        if stride == 2:
            self.branch_proj = nn.Sequential(
                *_conv_bn(inp, inp, 3, stride, groups=inp),
                *_conv_bn(inp, inp),
                nn.ReLU(inplace=True),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.branch_proj is None:
            keep, x = megvii_v2_split(x)
            return torch.cat((keep, self.branch_main(x)), dim=1)
        return torch.cat((self.branch_proj(x), self.branch_main(x)), dim=1)


class MegviiShuffleNetV2(nn.Module):
    def __init__(
        self,
        channels: tuple[int, int, int, int, int],
        num_classes: int = 1000,
        dropout: float = 0.0,
        stage_repeats: tuple[int, int, int] = STAGE_REPEATS,
        block: type[MegviiShuffleV2Block] = MegviiShuffleV2Block,
    ) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        if len(channels) != 5 or len(stage_repeats) != 3:
            raise ValueError(f"expected 5 channel counts (stem, 3 stages, conv_last) and 3 repeats, got {channels} and {stage_repeats}")
        stem, last = channels[0], channels[-1]
        self.first_conv = nn.Sequential(*_conv_bn(3, stem, 3, 2), nn.ReLU(inplace=True))
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        blocks: list[nn.Module] = []
        inp = stem
        for repeats, oup in zip(stage_repeats, channels[1:4]):
            for i in range(repeats):
                blocks.append(block(inp, oup, stride=2 if i == 0 else 1))
                inp = oup
        self.features = nn.Sequential(*blocks)
        self.conv_last = nn.Sequential(*_conv_bn(inp, last), nn.ReLU(inplace=True))
        self.globalpool = MegviiGlobalPool()
        self.dropout: nn.Dropout | None = nn.Dropout(dropout) if dropout > 0 else None
        self.classifier = nn.Sequential(nn.Linear(last, num_classes, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_last(self.features(self.maxpool(self.first_conv(x))))
        x = self.globalpool(x)
        if self.dropout is not None:
            x = self.dropout(x)
        return self.classifier(x.flatten(1))


def _v1_builder(width: float, groups: int):  # type: ignore[no-untyped-def]
    def builder(*, num_classes: int = 1000, seed: int = 0) -> MegviiShuffleNetV1:
        model = MegviiShuffleNetV1(MEGVII_V1_CHANNELS[(groups, width)], groups, num_classes=num_classes)
        init_weights(model, seed)
        return model.eval()

    return builder


def _v2_builder(width: float):  # type: ignore[no-untyped-def]
    def builder(*, num_classes: int = 1000, seed: int = 0) -> MegviiShuffleNetV2:
        model = MegviiShuffleNetV2(MEGVII_V2_CHANNELS[width], num_classes=num_classes, dropout=0.2 if width == 2.0 else 0.0)
        init_weights(model, seed)
        return model.eval()

    return builder


def v1_name(width: float, groups: int) -> str:
    return f"megvii_shufflenet_v1_{WIDTH_SUFFIX[width]}_g{groups}"


def v2_name(width: float) -> str:
    return f"megvii_shufflenet_v2_{WIDTH_SUFFIX[width]}"


def name_from_state(state: dict[str, torch.Tensor]) -> str | None:
    """The registry entry whose shapes a megvii-layout state dict has (keys without ``module.``), or None.
    Malformed tensors raise IndexError / ZeroDivisionError; `weights.suggest_model` turns that into None."""
    if "conv_last.0.weight" in state:
        c4 = int(state["conv_last.0.weight"].shape[1])
        return next((v2_name(w) for w, ch in MEGVII_V2_CHANNELS.items() if ch[3] == c4), None)
    # A stage-2 stride-1 unit: its first 1x1 maps c2 -> c2/4 channels in g groups.
    wt = state.get("features.1.branch_main_1.0.weight")
    if wt is None:
        return None
    c2 = 4 * int(wt.shape[0])
    g = c2 // int(wt.shape[1])
    return next((v1_name(w, gg) for (gg, w), ch in MEGVII_V1_CHANNELS.items() if gg == g and ch[1] == c2), None)


for _w, _suffix in WIDTH_SUFFIX.items():
    for _g in (3, 8):
        register(
            ModelInfo(
                name=v1_name(_w, _g),
                family="megvii_v1",
                builder=_v1_builder(_w, _g),
                width=_w,
                groups=_g,
                paper_mflops=MEGVII_V1_FLOPS_M[(_g, _w)],
                preprocess="megvii",
            )
        )
for _w, _suffix in WIDTH_SUFFIX.items():
    register(
        ModelInfo(
            name=v2_name(_w),
            family="megvii_v2",
            builder=_v2_builder(_w),
            width=_w,
            paper_mflops=MEGVII_V2_FLOPS_M[_w],
            preprocess="megvii",
        )
    )
