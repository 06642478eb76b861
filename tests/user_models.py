"""Models written the way users write them (not our classes): the graph-level fold must find their shuffles.

Used by tests/test_graph_fold.py and tests/test_api.py, and as a `--model-file` (factories at the bottom).
"""

from __future__ import annotations

import torch
from torch import nn


def _cbr(cin: int, cout: int, k: int = 1, s: int = 1, groups: int = 1, relu: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, s, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def hand_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    b, c, h, w = x.size()
    x = x.view(b, groups, c // groups, h, w)
    x = torch.transpose(x, 1, 2).contiguous()
    return x.view(b, -1, h, w)


class HandBlock(nn.Module):
    """torchvision-style unit, hand-written: chunk, branch, cat, view/transpose/contiguous/view shuffle."""

    def __init__(self, inp: int, oup: int, stride: int, shuffle: str = "hand") -> None:
        super().__init__()
        self.stride = stride
        bf = oup // 2
        if stride == 2:
            self.branch1 = nn.Sequential(_cbr(inp, inp, 3, 2, groups=inp, relu=False), _cbr(inp, bf))
        self.branch2 = nn.Sequential(_cbr(inp if stride == 2 else bf, bf), _cbr(bf, bf, 3, stride, groups=bf, relu=False),
                                     _cbr(bf, bf))
        self.shuffle = nn.ChannelShuffle(2) if shuffle == "module" else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            if self.shuffle is None:
                a, b = x.chunk(2, dim=1)
            else:
                a, b = torch.split(x, x.shape[1] // 2, dim=1)
            out = torch.cat((a, self.branch2(b)), dim=1)
        else:
            out = torch.cat((self.branch1(x), self.branch2(x)), dim=1)
        return hand_shuffle(out, 2) if self.shuffle is None else self.shuffle(out)


class HandShuffleNet(nn.Module):
    """A small classifier with the hand-written shuffle and chunk; 10 classes."""

    def __init__(self, shuffle: str = "hand", num_classes: int = 10, widths: tuple[int, ...] = (24, 48, 96, 192)) -> None:
        super().__init__()
        self.stem = nn.Sequential(_cbr(3, widths[0], 3, 2), nn.MaxPool2d(3, 2, 1))
        blocks: list[nn.Module] = []
        inp = widths[0]
        for oup in widths[1:]:
            blocks += [HandBlock(inp, oup, 2, shuffle), HandBlock(oup, oup, 1, shuffle), HandBlock(oup, oup, 1, shuffle)]
            inp = oup
        self.blocks = nn.Sequential(*blocks)
        self.head = _cbr(inp, 256)
        self.fc = nn.Linear(256, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head(self.blocks(self.stem(x)))
        return self.fc(x.mean([2, 3]))


class NanoBackbone(nn.Module):
    """NanoDet-style ShuffleNetV2 backbone: three stage outputs (strides 8, 16, 32), no classifier."""

    def __init__(self, widths: tuple[int, ...] = (24, 48, 96, 192)) -> None:
        super().__init__()
        self.stem = nn.Sequential(_cbr(3, widths[0], 3, 2), nn.MaxPool2d(3, 2, 1))
        inp = widths[0]
        stages = []
        for oup, n in zip(widths[1:], (3, 4, 2)):
            stages.append(nn.Sequential(HandBlock(inp, oup, 2), *[HandBlock(oup, oup, 1) for _ in range(n - 1)]))
            inp = oup
        self.stage2, self.stage3, self.stage4 = stages

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.stem(x)
        c3 = self.stage2(x)
        c4 = self.stage3(c3)
        c5 = self.stage4(c4)
        return c3, c4, c5


def randomize(model: nn.Module, seed: int = 0) -> nn.Module:
    """Seeded weights and distinct BatchNorm statistics per channel (a wrong channel order shows)."""
    from shufflenet_edge.models.common import randomize_batchnorm

    torch.manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
    return randomize_batchnorm(model, seed).eval()


# --model-file factories
def hand_chunk() -> nn.Module:
    return randomize(HandShuffleNet("hand"))


def channel_shuffle_split() -> nn.Module:
    return randomize(HandShuffleNet("module"))


def nanodet_backbone() -> tuple[nn.Module, tuple[int, int, int, int]]:
    return randomize(NanoBackbone()), (1, 3, 256, 320)


class TappedUnits(nn.Module):
    """Three torchvision-style units; the first unit's output is returned as a graph output as well as read by the
    next unit (fan-out), beside a classifier on the last: the net that made every folded TFLite form fail before."""

    def __init__(self, c: int = 16, num_classes: int = 10) -> None:
        super().__init__()
        self.stem = _cbr(3, c, 3, 2)
        self.u1, self.u2, self.u3 = HandBlock(c, c, 1), HandBlock(c, c, 1), HandBlock(c, c, 1)
        self.fc = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.u1(self.stem(x))
        return x, self.fc(self.u3(self.u2(x)).mean([2, 3]))


def tapped_units() -> tuple[nn.Module, tuple[int, int, int, int]]:
    return randomize(TappedUnits()), (1, 3, 64, 64)
