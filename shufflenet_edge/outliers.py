"""A model where int8 hurts, made the way it happens in practice: one channel of one unit carries values far
larger than its neighbours (the role of real models' outlier channels).

`plant_outlier` multiplies the scale and shift of a unit's first BatchNorm in `branch2` by `factor` on one
channel and divides the depthwise 3x3 convolution that reads it by the same factor. ReLU commutes with a positive
factor and the depthwise convolution is linear per channel, so the float model computes the same function (to
float rounding), while the tensor between them, quantized per tensor, spends its 256 levels on that one channel.
The outlier stays inside the unit: keeping that unit in float (`export --keep-float <unit>`) removes the loss.
"""

from __future__ import annotations

from typing import Any

import torch


def plant_outlier(model: Any, unit: str = "stage3.2", channel: int = 0, factor: float = 64.0) -> Any:
    """Plant the outlier in place (torchvision-style ShuffleNetV2 units); returns the model."""
    mod = model
    for part in unit.split("."):
        mod = getattr(mod, part) if not part.isdigit() else mod[int(part)]
    br = getattr(mod, "branch2", None)
    if br is None or len(br) < 5 or not isinstance(br[1], torch.nn.BatchNorm2d) or br[3].groups != br[3].in_channels:
        raise ValueError(f"{unit} is not a ShuffleNetV2 unit with branch2 = conv, BN, ReLU, depthwise conv, ...")
    if factor <= 0:
        raise ValueError(f"factor must be positive (ReLU commutes only with a positive factor), got {factor}")
    with torch.no_grad():
        br[1].weight[channel] *= factor
        br[1].bias[channel] *= factor
        br[3].weight[channel] /= factor
    return model
