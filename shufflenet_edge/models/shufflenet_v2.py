"""ShuffleNet V2 (arXiv 1807.11164) with torchvision's semantics and state-dict keys.

A torchvision checkpoint (e.g. ``shufflenetv2_x1-5666bf0f80.pth``) loads into these modules unchanged
and gives the same logits: the module tree below mirrors torchvision's attribute names and
``nn.Sequential`` indices exactly (``conv1.0``, ``stage2.0.branch1.2``, ``conv5.1``, ``fc``).
"""

from __future__ import annotations

import torch
from torch import nn

from shufflenet_edge.models.common import channel_shuffle, init_weights
from shufflenet_edge.models.registry import ModelInfo, register


def _depthwise(channels: int, stride: int) -> nn.Conv2d:
    return nn.Conv2d(channels, channels, 3, stride, 1, bias=False, groups=channels)


class InvertedResidual(nn.Module):
    """One V2 unit. stride 1: split, transform one half, concat, shuffle. stride 2: both branches."""

    def __init__(self, inp: int, oup: int, stride: int) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {stride}")
        branch = oup // 2
        if stride == 1 and inp != branch * 2:
            raise ValueError(
                f"Invalid combination of stride {stride}, inp {inp} and oup {oup}: "
                "with stride 1, inp must equal (oup // 2) * 2"
            )
        self.stride = stride
        if stride > 1:
            self.branch1 = nn.Sequential(
                _depthwise(inp, stride),
                nn.BatchNorm2d(inp),
                nn.Conv2d(inp, branch, 1, 1, 0, bias=False),
                nn.BatchNorm2d(branch),
                nn.ReLU(inplace=True),
            )
        else:
            self.branch1 = nn.Sequential()
        self.branch2 = nn.Sequential(
            nn.Conv2d(inp if stride > 1 else branch, branch, 1, 1, 0, bias=False),
            nn.BatchNorm2d(branch),
            nn.ReLU(inplace=True),
            _depthwise(branch, stride),
            nn.BatchNorm2d(branch),
            nn.Conv2d(branch, branch, 1, 1, 0, bias=False),
            nn.BatchNorm2d(branch),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            x1, x2 = x.chunk(2, dim=1)
            out = torch.cat((x1, self.branch2(x2)), dim=1)
        else:
            out = torch.cat((self.branch1(x), self.branch2(x)), dim=1)
        return channel_shuffle(out, 2)


class ShuffleNetV2(nn.Module):
    def __init__(
        self,
        stages_repeats: list[int],
        stages_out_channels: list[int],
        num_classes: int = 1000,
        unit: type[nn.Module] = InvertedResidual,
    ) -> None:
        super().__init__()
        if len(stages_repeats) != 3:
            raise ValueError(f"expected 3 stage repeats, got {len(stages_repeats)}")
        if len(stages_out_channels) != 5:
            raise ValueError(f"expected 5 stage output channels, got {len(stages_out_channels)}")
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self._stage_out_channels = list(stages_out_channels)
        c = stages_out_channels[0]
        self.conv1 = nn.Sequential(
            nn.Conv2d(3, c, 3, 2, 1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True)
        )
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        inp = c
        for i, (repeats, oup) in enumerate(zip(stages_repeats, stages_out_channels[1:4]), start=2):
            units = [unit(inp, oup, 2)] + [unit(oup, oup, 1) for _ in range(repeats - 1)]
            setattr(self, f"stage{i}", nn.Sequential(*units))
            inp = oup
        last = stages_out_channels[-1]
        self.conv5 = nn.Sequential(
            nn.Conv2d(inp, last, 1, 1, 0, bias=False), nn.BatchNorm2d(last), nn.ReLU(inplace=True)
        )
        self.fc = nn.Linear(last, num_classes)

    stage2: nn.Sequential
    stage3: nn.Sequential
    stage4: nn.Sequential

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.conv1(x))
        x = self.stage4(self.stage3(self.stage2(x)))
        x = self.conv5(x)
        return self.fc(x.mean([2, 3]))


V2_CHANNELS = {
    0.5: [24, 48, 96, 192, 1024],
    1.0: [24, 116, 232, 464, 1024],
    1.5: [24, 176, 352, 704, 1024],
    2.0: [24, 244, 488, 976, 2048],
}


def _shufflenet_v2(width: float, *, num_classes: int = 1000, seed: int = 0) -> ShuffleNetV2:
    model = ShuffleNetV2([4, 8, 4], V2_CHANNELS[width], num_classes=num_classes)
    init_weights(model, seed)
    return model.eval()


def _make_builder(width: float):  # type: ignore[no-untyped-def]
    def builder(*, num_classes: int = 1000, seed: int = 0) -> ShuffleNetV2:
        return _shufflenet_v2(width, num_classes=num_classes, seed=seed)

    return builder


for _suffix, _width, _mflops, _params, _file in [
    ("x0_5", 0.5, 41.0, 1_366_792, "shufflenetv2_x0.5-f707e7126e.pth"),
    ("x1_0", 1.0, 146.0, 2_278_604, "shufflenetv2_x1-5666bf0f80.pth"),
    ("x1_5", 1.5, 299.0, 3_503_624, "shufflenetv2_x1_5-3c479a10.pth"),
    ("x2_0", 2.0, 591.0, 7_393_996, "shufflenetv2_x2_0-8be3c8ee.pth"),
]:
    register(
        ModelInfo(
            name=f"shufflenet_v2_{_suffix}",
            family="shufflenet_v2",
            builder=_make_builder(_width),
            width=_width,
            paper_mflops=_mflops,
            torchvision_params=_params,
            torchvision_weights=_file,
        )
    )
