"""MobileNet V2 1.0 (arXiv 1801.04381), our own definition, for the speed-vs-FLOPs comparison of
the ShuffleNet V2 paper's Table 8. Same layer plan as torchvision's (ReLU6, expansion 6)."""

from __future__ import annotations

import torch
from torch import nn

from shufflenet_edge.models.common import init_weights
from shufflenet_edge.models.registry import ModelInfo, register


def _conv_bn(inp: int, oup: int, k: int, stride: int, groups: int = 1, act: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(inp, oup, k, stride, k // 2, bias=False, groups=groups),
        nn.BatchNorm2d(oup),
    ]
    if act:
        layers.append(nn.ReLU6(inplace=True))
    return nn.Sequential(*layers)


class InvertedBottleneck(nn.Module):
    def __init__(self, inp: int, oup: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = inp * expand
        self.use_res = stride == 1 and inp == oup
        layers: list[nn.Module] = []
        if expand != 1:
            layers.append(_conv_bn(inp, hidden, 1, 1))
        layers += [_conv_bn(hidden, hidden, 3, stride, groups=hidden), _conv_bn(hidden, oup, 1, 1, act=False)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_res else self.conv(x)


class MobileNetV2(nn.Module):
    PLAN = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        layers: list[nn.Module] = [_conv_bn(3, 32, 3, 2)]
        inp = 32
        for t, c, n, s in self.PLAN:
            for i in range(n):
                layers.append(InvertedBottleneck(inp, c, s if i == 0 else 1, t))
                inp = c
        layers.append(_conv_bn(inp, 1280, 1, 1))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).mean([2, 3]))


def mobilenet_v2_x1_0(*, num_classes: int = 1000, seed: int = 0) -> MobileNetV2:
    model = MobileNetV2(num_classes=num_classes)
    init_weights(model, seed)
    return model.eval()


register(ModelInfo(name="mobilenet_v2_x1_0", family="mobilenet_v2", builder=mobilenet_v2_x1_0, width=1.0, paper_mflops=300.0, torchvision_params=3_504_872))
