"""Pieces shared by the model families: seeded init, the reference channel shuffle."""

from __future__ import annotations

import warnings

import torch
from torch import nn

MIN_INPUT_SIZE = 32


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """torchvision's reference shuffle: view as (N, g, C/g, H, W), swap the group axes, flatten."""
    n, c, h, w = x.shape
    x = x.view(n, groups, c // groups, h, w)
    x = torch.transpose(x, 1, 2).contiguous()
    return x.view(n, c, h, w)


def init_weights(model: nn.Module, seed: int) -> None:
    """Deterministic initialisation: the same seed gives the same weights on every machine."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                fan_out = m.out_channels * m.kernel_size[0] * m.kernel_size[1] // m.groups
                m.weight.normal_(0.0, (2.0 / fan_out) ** 0.5, generator=gen)
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, nn.BatchNorm2d):
                m.weight.fill_(1.0)
                m.bias.zero_()
                m.running_mean.zero_()
                m.running_var.fill_(1.0)
            elif isinstance(m, nn.Linear):
                m.weight.normal_(0.0, 0.01, generator=gen)
                if m.bias is not None:  # megvii's classifiers have none
                    m.bias.zero_()


def randomize_batchnorm(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every BatchNorm random affine parameters and running statistics.

    Random-init networks have identity BatchNorms, which hide channel-order mistakes in a fold
    (every channel looks alike). Tests and benchmarks use this to make each channel distinct.
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                c = m.num_features
                m.weight.copy_(0.5 + torch.rand(c, generator=gen))
                m.bias.copy_(0.2 * torch.randn(c, generator=gen))
                m.running_mean.copy_(0.2 * torch.randn(c, generator=gen))
                m.running_var.copy_(0.5 + torch.rand(c, generator=gen))
    return model


def warn_random_weights(name: str, seed: int) -> None:
    warnings.warn(
        f"{name}: no weights given, using seeded random initialisation (seed {seed}); "
        "outputs are meaningless for classification",
        UserWarning,
        stacklevel=3,
    )


def check_input_size(size: int) -> int:
    if not isinstance(size, int) or size < MIN_INPUT_SIZE:
        raise ValueError(
            f"input size must be an integer >= {MIN_INPUT_SIZE} (the networks downsample by 32), got {size!r}"
        )
    return size
