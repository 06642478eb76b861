"""ShuffleNet V1 (arXiv 1707.01083, Table 1): pointwise group convolutions and channel shuffle.

Stem: 3x3 conv (24 channels at 1.0x), stride 2, then 3x3 max-pool. Stages 2-4 hold 4/8/4 units; the first
unit of each stage has stride 2 and concatenates a 3x3 average-pooled shortcut, the others add an
identity shortcut. Bottleneck width is 1/4 of the unit's output; the first 1x1 of stage 2 is not
grouped (its input has only 24 channels). Width multipliers scale the stage channels, rounded to a
multiple of 4*g so that bottleneck and group sizes stay whole (1.0x is exactly the paper's table).
"""

from __future__ import annotations

import torch
from torch import nn

from shufflenet_edge.models.common import channel_shuffle, init_weights
from shufflenet_edge.models.registry import ModelInfo, register

V1_STAGE_CHANNELS = {
    1: (144, 288, 576),
    2: (200, 400, 800),
    3: (240, 480, 960),
    4: (272, 544, 1088),
    8: (384, 768, 1536),
}
# Multiply-adds at 224x224 the papers list: V1 Table 1 for each g at 1.0x; V2 Table 8 for g=3.
V1_PAPER_MFLOPS = {
    (1.0, 1): 143.0, (1.0, 2): 140.0, (1.0, 3): 137.0, (1.0, 4): 133.0, (1.0, 8): 137.0,
    (0.5, 3): 38.0, (1.5, 3): 292.0, (2.0, 3): 524.0,
}
# Stem width per multiplier, as in the authors' released code: 24 at 1.0x and 1.5x (the paper's
# Table 1), 12 at 0.5x, 48 at 2.0x; raised to a multiple of g so the stride-2 concat stays divisible.
STEM_CHANNELS = {0.5: 12, 1.0: 24, 1.5: 24, 2.0: 48}


def stem_channels(width: float, groups: int) -> int:
    base = STEM_CHANNELS.get(width, 24)
    return -(-base // groups) * groups


class ShuffleUnitV1(nn.Module):
    """gconv1x1 -> BN -> ReLU -> shuffle -> dw3x3 -> BN -> gconv1x1 -> BN, shortcut, ReLU."""

    def __init__(self, inp: int, oup: int, stride: int, groups: int, group_first: bool = True) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {stride}")
        if stride == 1 and inp != oup:
            raise ValueError(f"stride 1 needs inp == oup for the identity shortcut, got {inp} and {oup}")
        mid = oup // 4
        branch_out = oup - inp if stride == 2 else oup
        g1 = groups if group_first else 1
        for what, val in (("bottleneck", mid), ("branch output", branch_out), ("input", inp if group_first else groups)):
            if val % groups:
                raise ValueError(f"{what} channels {val} are not divisible by groups {groups}")
        self.stride = stride
        self.groups = groups
        self.branch = nn.Sequential(
            nn.Conv2d(inp, mid, 1, 1, 0, bias=False, groups=g1),
            nn.BatchNorm2d(mid),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid, mid, 3, stride, 1, bias=False, groups=mid),
            nn.BatchNorm2d(mid),
            nn.Conv2d(mid, branch_out, 1, 1, 0, bias=False, groups=groups),
            nn.BatchNorm2d(branch_out),
        )
        self.shortcut = nn.AvgPool2d(3, 2, 1) if stride == 2 else nn.Identity()

    def shuffle(self, x: torch.Tensor) -> torch.Tensor:
        return channel_shuffle(x, self.groups) if self.groups > 1 else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.branch[2](self.branch[1](self.branch[0](x)))
        y = self.shuffle(y)
        for i in range(3, 7):
            y = self.branch[i](y)
        if self.stride == 2:
            return torch.relu(torch.cat((self.shortcut(x), y), dim=1))
        return torch.relu(x + y)


class ShuffleNetV1(nn.Module):
    def __init__(
        self,
        stage_channels: tuple[int, int, int],
        groups: int,
        stem: int = 24,
        num_classes: int = 1000,
        stages_repeats: tuple[int, int, int] = (4, 8, 4),
        unit: type[ShuffleUnitV1] = ShuffleUnitV1,
    ) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.groups = groups
        self.conv1 = nn.Sequential(
            nn.Conv2d(3, stem, 3, 2, 1, bias=False),
            nn.BatchNorm2d(stem),
            nn.ReLU(inplace=True),
        )
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        inp = stem
        for i, (repeats, oup) in enumerate(zip(stages_repeats, stage_channels), start=2):
            units = [unit(inp, oup, 2, groups, group_first=(i != 2))]
            units += [unit(oup, oup, 1, groups) for _ in range(repeats - 1)]
            setattr(self, f"stage{i}", nn.Sequential(*units))
            inp = oup
        self.fc = nn.Linear(inp, num_classes)

    stage2: nn.Sequential
    stage3: nn.Sequential
    stage4: nn.Sequential

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.conv1(x))
        x = self.stage4(self.stage3(self.stage2(x)))
        return self.fc(x.mean([2, 3]))


def v1_channels(width: float, groups: int) -> tuple[int, int, int]:
    step = 4 * groups
    c = tuple(max(step, int(round(ch * width / step)) * step) for ch in V1_STAGE_CHANNELS[groups])
    return c  # type: ignore[return-value]


def _make_builder(width: float, groups: int):  # type: ignore[no-untyped-def]
    def builder(*, num_classes: int = 1000, seed: int = 0) -> ShuffleNetV1:
        model = ShuffleNetV1(
            v1_channels(width, groups), groups, stem=stem_channels(width, groups), num_classes=num_classes
        )
        init_weights(model, seed)
        return model.eval()

    return builder


_WIDTH_SUFFIX = {0.5: "x0_5", 1.0: "x1_0", 1.5: "x1_5", 2.0: "x2_0"}

for _g in (1, 2, 3, 4, 8):
    for _w, _suffix in _WIDTH_SUFFIX.items():
        register(
            ModelInfo(
                name=f"shufflenet_v1_{_suffix}_g{_g}",
                family="shufflenet_v1",
                builder=_make_builder(_w, _g),
                width=_w,
                groups=_g,
                paper_mflops=V1_PAPER_MFLOPS.get((_w, _g)),
            )
        )
