"""A zoo of ShuffleNet-family models written the way public projects write them (issue "Models from the wild").

Each model is our own code, written from the public architecture of a project people actually deploy, small (few
channels, small inputs: conversions stay fast) but with the same structure, the same spelling of the channel shuffle
and the same surrounding ops as the original:

- ``nanodet_plus``: NanoDet-Plus (RangiLyu/nanodet): ShuffleNetV2 backbone with LeakyReLU, GhostPAN neck (ghost
  modules, depthwise convs, nearest upsampling, concat, an extra level), a head whose per-level outputs are flattened
  and concatenated into one rank-3 tensor (1, N, C);
- ``mmpretrain_v1`` / ``mmpretrain_v2``: OpenMMLab's ShuffleNet V1 / V2 (open-mmlab/mmpretrain): one shared
  ``channel_shuffle(x, groups)`` helper, V2's split by slicing (``x[:, :c]``, written for deployment instead of
  ``chunk``), V2 as a backbone returning several stage outputs, and the ``train(mode)`` override of OpenMMLab
  backbones that returns None (so ``model.eval()`` is None: call it, never use its value);
- ``yolov5_lite``: YOLOv5-Lite-s (ppogg/YOLOv5-Lite): Shuffle_Block backbone, YOLOv5 neck (C3, nearest upsampling,
  concat), a Detect head returning its three raw rank-5 tensors (bs, anchors, ny, nx, outputs);
- ``shufflenetv2_plus``: megvii's ShuffleNetV2+ (megvii-model/ShuffleNet-Series): h-swish, SE with hard-sigmoid,
  3x3 / 5x5 / 7x7 and Xception blocks, the in-block even/odd channel split written as ``x[:, 0::2]``, ``x[:, 1::2]``;
- ``lite_hrnet``: Lite-HRNet (open-mmlab/mmpose): multi-branch stages, ``chunk`` per branch, cross-resolution
  weighting (adaptive pooling to the smallest branch, nearest upsampling of the weights), spatial weighting, a channel
  shuffle per block, HRNet fuse layers with in-place adds and ReLUs, the iterative head, a heatmap output;
- ``megvii_v2``: the registry's megvii ShuffleNetV2 (shufflenet_edge.models.megvii) at a small input.

Every factory ``make_<name>()`` returns ``(module in eval mode, example input shape)``: random weights from a seeded
generator, BatchNorm with non-identity statistics and affine parameters (a wrong channel order shows), so each works
as ``--model-file tests/zoo.py:make_<name>``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

# ----------------------------------------------------------------------------------------------- shared helpers


def randomize(model: nn.Module, seed: int = 0) -> nn.Module:
    """Seeded weights (normal with variance 1/fan-in, so activations stay near unit scale through depth) and distinct BatchNorm
    statistics per channel. Touches no global RNG. Puts the model in eval mode and returns it (not `model.eval()`'s
    value: OpenMMLab models return None there)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                fan_in = m.in_channels // m.groups * m.kernel_size[0] * m.kernel_size[1]
                m.weight.normal_(0.0, (1.0 / fan_in) ** 0.5, generator=gen)
                if m.bias is not None:
                    m.bias.normal_(0.0, 0.1, generator=gen)
            elif isinstance(m, nn.Linear):
                m.weight.normal_(0.0, (1.0 / m.in_features) ** 0.5, generator=gen)
                if m.bias is not None:
                    m.bias.normal_(0.0, 0.1, generator=gen)
            elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                c = m.num_features
                m.weight.copy_(0.5 + torch.rand(c, generator=gen))
                m.bias.copy_(0.2 * torch.randn(c, generator=gen))
                m.running_mean.copy_(0.2 * torch.randn(c, generator=gen))
                m.running_var.copy_(0.5 + torch.rand(c, generator=gen))
    model.eval()
    return model


def _conv_bn(cin: int, cout: int, k: int = 1, s: int = 1, groups: int = 1, act: Callable[[], nn.Module] | None = None,
             padding: int | None = None) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, s, k // 2 if padding is None else padding, groups=groups, bias=False),
                               nn.BatchNorm2d(cout)]
    if act is not None:
        layers.append(act())
    return nn.Sequential(*layers)


def _relu() -> nn.Module:
    return nn.ReLU(inplace=True)


# ------------------------------------------------------------------------------------------------ NanoDet-Plus


def _leaky() -> nn.Module:
    return nn.LeakyReLU(negative_slope=0.1, inplace=True)


def nanodet_channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    batchsize, num_channels, height, width = x.data.size()
    channels_per_group = num_channels // groups
    x = x.view(batchsize, groups, channels_per_group, height, width)
    x = torch.transpose(x, 1, 2).contiguous()
    return x.view(batchsize, -1, height, width)


class NanoShuffleV2Block(nn.Module):
    """NanoDet's ShuffleV2Block: the torchvision unit with a configurable activation (LeakyReLU here)."""

    def __init__(self, inp: int, oup: int, stride: int, act: Callable[[], nn.Module] | None = None) -> None:
        super().__init__()
        act = act or _leaky
        self.stride = stride
        branch_features = oup // 2
        if stride > 1:
            self.branch1 = nn.Sequential(_conv_bn(inp, inp, 3, stride, groups=inp), _conv_bn(inp, branch_features, act=act))
        else:
            self.branch1 = nn.Sequential()
        self.branch2 = nn.Sequential(
            _conv_bn(inp if stride > 1 else branch_features, branch_features, act=act),
            _conv_bn(branch_features, branch_features, 3, stride, groups=branch_features),
            _conv_bn(branch_features, branch_features, act=act),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            x1, x2 = x.chunk(2, dim=1)
            out = torch.cat((x1, self.branch2(x2)), dim=1)
        else:
            out = torch.cat((self.branch1(x), self.branch2(x)), dim=1)
        return self.shuffle(out)

    def shuffle(self, out: torch.Tensor) -> torch.Tensor:
        return nanodet_channel_shuffle(out, 2)


class NanoShuffleNetV2(nn.Module):
    """NanoDet's backbone: stem conv + max-pool (after a LeakyReLU: the pool's input can be negative), three
    stages, outputs of stages 2, 3, 4 (no last conv)."""

    def __init__(self, channels: tuple[int, ...] = (16, 32, 64, 128), repeats: tuple[int, ...] = (2, 3, 2)) -> None:
        super().__init__()
        self.conv1 = _conv_bn(3, channels[0], 3, 2, act=_leaky)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        inp = channels[0]
        for i, (oup, n) in enumerate(zip(channels[1:], repeats)):
            seq = [NanoShuffleV2Block(inp, oup, 2)] + [NanoShuffleV2Block(oup, oup, 1) for _ in range(n - 1)]
            setattr(self, f"stage{i + 2}", nn.Sequential(*seq))
            inp = oup

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x = self.maxpool(self.conv1(x))
        output = []
        for i in range(2, 5):
            x = getattr(self, f"stage{i}")(x)
            output.append(x)
        return tuple(output)


class DepthwiseConvModule(nn.Module):
    """NanoDet's depthwise-separable ConvModule: dw conv-BN-act, pw conv-BN-act."""

    def __init__(self, cin: int, cout: int, k: int, stride: int = 1) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(cin, cin, k, stride, k // 2, groups=cin, bias=False)
        self.dwnorm = nn.BatchNorm2d(cin)
        self.pointwise = nn.Conv2d(cin, cout, 1, bias=False)
        self.pwnorm = nn.BatchNorm2d(cout)
        self.act = _leaky()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.dwnorm(self.depthwise(x)))
        return self.act(self.pwnorm(self.pointwise(x)))


class GhostModule(nn.Module):
    def __init__(self, inp: int, oup: int, relu: bool = True, ratio: int = 2, dw_size: int = 3) -> None:
        super().__init__()
        init_channels = math.ceil(oup / ratio)
        new_channels = init_channels * (ratio - 1)
        self.primary_conv = _conv_bn(inp, init_channels, 1, act=_leaky if relu else None)
        self.cheap_operation = _conv_bn(init_channels, new_channels, dw_size, groups=init_channels, act=_leaky if relu else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.primary_conv(x)
        x2 = self.cheap_operation(x1)
        return torch.cat([x1, x2], dim=1)


class GhostBottleneck(nn.Module):
    def __init__(self, in_chs: int, mid_chs: int, out_chs: int, dw_kernel_size: int = 3) -> None:
        super().__init__()
        self.ghost1 = GhostModule(in_chs, mid_chs, relu=True)
        self.ghost2 = GhostModule(mid_chs, out_chs, relu=False)
        if in_chs == out_chs:
            self.shortcut = nn.Sequential()
        else:
            self.shortcut = nn.Sequential(_conv_bn(in_chs, in_chs, dw_kernel_size, groups=in_chs), _conv_bn(in_chs, out_chs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x
        x = self.ghost2(self.ghost1(x))
        x += self.shortcut(residual)
        return x


class GhostBlocks(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, expand: int = 1, kernel_size: int = 5, num_blocks: int = 1) -> None:
        super().__init__()
        self.blocks = nn.Sequential(*[GhostBottleneck(in_channels, int(out_channels * expand), out_channels, kernel_size)
                                      for _ in range(num_blocks)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x)


class GhostPAN(nn.Module):
    """Reduce convs, top-down (nearest upsample, concat, ghost blocks), bottom-up (depthwise stride-2 conv, concat,
    ghost blocks), one extra level from both the top input and the top output."""

    def __init__(self, in_channels: tuple[int, ...], out_channels: int, kernel_size: int = 5) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.upsample = nn.Upsample(scale_factor=2, mode="nearest")
        self.reduce_layers = nn.ModuleList([_conv_bn(c, out_channels, 1, act=_leaky) for c in in_channels])
        n = len(in_channels)
        self.top_down_blocks = nn.ModuleList([GhostBlocks(out_channels * 2, out_channels, kernel_size=kernel_size)
                                              for _ in range(n - 1)])
        self.downsamples = nn.ModuleList([DepthwiseConvModule(out_channels, out_channels, kernel_size, 2) for _ in range(n - 1)])
        self.bottom_up_blocks = nn.ModuleList([GhostBlocks(out_channels * 2, out_channels, kernel_size=kernel_size)
                                               for _ in range(n - 1)])
        self.extra_lvl_in_conv = nn.ModuleList([DepthwiseConvModule(out_channels, out_channels, kernel_size, 2)])
        self.extra_lvl_out_conv = nn.ModuleList([DepthwiseConvModule(out_channels, out_channels, kernel_size, 2)])

    def forward(self, inputs: tuple[torch.Tensor, ...]) -> list[torch.Tensor]:
        ins = [reduce(x) for x, reduce in zip(inputs, self.reduce_layers)]
        inner_outs = [ins[-1]]
        for idx in range(len(self.in_channels) - 1, 0, -1):
            feat_high = inner_outs[0]
            feat_low = ins[idx - 1]
            up = self.upsample(feat_high)
            inner_outs.insert(0, self.top_down_blocks[len(self.in_channels) - 1 - idx](torch.cat([up, feat_low], 1)))
        outs = [inner_outs[0]]
        for idx in range(len(self.in_channels) - 1):
            down = self.downsamples[idx](outs[-1])
            outs.append(self.bottom_up_blocks[idx](torch.cat([down, inner_outs[idx + 1]], 1)))
        for extra_in, extra_out in zip(self.extra_lvl_in_conv, self.extra_lvl_out_conv):
            outs.append(extra_in(ins[-1]) + extra_out(outs[-1]))
        return outs


class NanoDetPlusHead(nn.Module):
    """Per level: two depthwise-separable convs and a 1x1 to classes + 4 * (reg_max + 1) distances; the levels'
    maps flattened and concatenated: (1, N, C), N = sum of H*W over the 4 levels."""

    def __init__(self, num_classes: int, feat_channels: int, levels: int = 4, reg_max: int = 7, kernel_size: int = 5) -> None:
        super().__init__()
        self.cls_convs = nn.ModuleList([nn.Sequential(DepthwiseConvModule(feat_channels, feat_channels, kernel_size),
                                                      DepthwiseConvModule(feat_channels, feat_channels, kernel_size))
                                        for _ in range(levels)])
        self.gfl_cls = nn.ModuleList([nn.Conv2d(feat_channels, num_classes + 4 * (reg_max + 1), 1) for _ in range(levels)])

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        outputs = []
        for feat, cls_convs, gfl_cls in zip(feats, self.cls_convs, self.gfl_cls):
            for conv in cls_convs:
                feat = conv(feat)
            outputs.append(gfl_cls(feat).flatten(start_dim=2))
        return torch.cat(outputs, dim=2).permute(0, 2, 1)


class NanoDetPlus(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.backbone = NanoShuffleNetV2()
        self.fpn = GhostPAN((32, 64, 128), 32)
        self.head = NanoDetPlusHead(num_classes=4, feat_channels=32)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.fpn(self.backbone(x)))


# ------------------------------------------------------------------------------------------------- mmpretrain


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """OpenMMLab's one shared helper (mmpretrain/models/utils): view, transpose, contiguous, view."""
    batch_size, num_channels, height, width = x.size()
    assert num_channels % groups == 0, "num_channels should be divisible by groups"
    channels_per_group = num_channels // groups
    x = x.view(batch_size, groups, channels_per_group, height, width)
    x = torch.transpose(x, 1, 2).contiguous()
    return x.view(batch_size, -1, height, width)


class OpenMMLabTrainMixin:
    """OpenMMLab backbones override ``train(mode)`` to freeze stages and keep norms in eval; the override
    returns None, so ``model.eval()`` is None (torch's own returns self)."""

    norm_eval = False

    def train(self, mode: bool = True):  # type: ignore[no-untyped-def]  # noqa: ANN201  (returns None, as theirs)
        super().train(mode)  # type: ignore[misc]
        if mode and self.norm_eval:
            for m in self.modules():  # type: ignore[attr-defined]
                if isinstance(m, nn.BatchNorm2d):
                    m.eval()


class MMShuffleUnit(nn.Module):
    """mmpretrain's ShuffleNetV1 unit: grouped 1x1 compress, depthwise 3x3, shuffle, grouped 1x1 expand; stride 1
    adds the input (then ReLU), stride 2 concatenates an average-pooled input (ReLU on the branch)."""

    def __init__(self, in_channels: int, out_channels: int, groups: int, first_block: bool, combine: str) -> None:
        super().__init__()
        self.groups = groups
        self.combine = combine
        self.bottleneck_channels = out_channels // 4
        if combine == "add":
            self.depthwise_stride = 1
            assert in_channels == out_channels
        else:
            self.depthwise_stride = 2
            out_channels -= in_channels
            self.avgpool = nn.AvgPool2d(kernel_size=3, stride=2, padding=1)
        first_1x1_groups = 1 if first_block else groups
        self.g_conv_1x1_compress = _conv_bn(in_channels, self.bottleneck_channels, 1, groups=first_1x1_groups, act=_relu)
        self.depthwise_conv3x3_bn = _conv_bn(self.bottleneck_channels, self.bottleneck_channels, 3, self.depthwise_stride,
                                             groups=self.bottleneck_channels)
        self.g_conv_1x1_expand = _conv_bn(self.bottleneck_channels, out_channels, 1, groups=groups)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x
        out = self.g_conv_1x1_compress(x)
        out = self.depthwise_conv3x3_bn(out)
        if self.groups > 1:
            out = channel_shuffle(out, self.groups)
        out = self.g_conv_1x1_expand(out)
        if self.combine == "concat":
            residual = self.avgpool(residual)
            out = self.act(out)
            return torch.cat((residual, out), 1)
        out = residual + out
        return self.act(out)


class MMShuffleNetV1(OpenMMLabTrainMixin, nn.Module):
    """mmpretrain-style ShuffleNetV1 backbone (groups 3, a quarter of the 1.0x widths), out_indices (2,)."""

    def __init__(self, groups: int = 3, channels: tuple[int, ...] = (60, 120, 240), stage_blocks: tuple[int, ...] = (2, 3, 2),
                 out_indices: tuple[int, ...] = (2,)) -> None:
        super().__init__()
        self.out_indices = out_indices
        self.in_channels = 24
        self.conv1 = _conv_bn(3, self.in_channels, 3, 2, act=_relu)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layers = nn.ModuleList()
        for i, n in enumerate(stage_blocks):
            blocks = []
            for j in range(n):
                blocks.append(MMShuffleUnit(self.in_channels, channels[i], groups, first_block=(i == 0 and j == 0),
                                            combine="concat" if j == 0 else "add"))
                self.in_channels = channels[i]
            self.layers.append(nn.Sequential(*blocks))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x = self.maxpool(self.conv1(x))
        outs = []
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)


class MMImageClassifier(OpenMMLabTrainMixin, nn.Module):
    """backbone -> GlobalAveragePooling neck -> LinearClsHead, as mmpretrain's ImageClassifier composes them
    (the backbone's tuple of stage outputs; the neck and head take the last)."""

    def __init__(self, backbone: nn.Module, in_channels: int, num_classes: int = 10) -> None:
        super().__init__()
        self.backbone = backbone
        self.neck = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(in_channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.backbone(x)
        pooled = self.neck(feats[-1])
        return self.fc(pooled.view(pooled.size(0), -1))


class MMInvertedResidual(nn.Module):
    """mmpretrain's ShuffleNetV2 unit: the split by slicing (deployable), cat, the shared channel_shuffle."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.stride = stride
        branch_features = out_channels // 2
        if stride == 1:
            assert in_channels == branch_features * 2
        if stride > 1:
            self.branch1 = nn.Sequential(_conv_bn(in_channels, in_channels, 3, stride, groups=in_channels),
                                         _conv_bn(in_channels, branch_features, 1, act=_relu))
        self.branch2 = nn.Sequential(
            _conv_bn(in_channels if stride > 1 else branch_features, branch_features, 1, act=_relu),
            _conv_bn(branch_features, branch_features, 3, stride, groups=branch_features),
            _conv_bn(branch_features, branch_features, 1, act=_relu),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            out = torch.cat((self.branch1(x), self.branch2(x)), dim=1)
        else:
            channels = x.shape[1]
            c = channels // 2 + channels % 2
            x1 = x[:, :c, :, :]
            x2 = x[:, c:, :, :]
            out = torch.cat((x1, self.branch2(x2)), dim=1)
        return channel_shuffle(out, 2)


class MMShuffleNetV2(OpenMMLabTrainMixin, nn.Module):
    """mmpretrain-style ShuffleNetV2 backbone returning several outputs: stages 2 and 3 and the last 1x1 conv."""

    def __init__(self, channels: tuple[int, ...] = (32, 64, 128), last: int = 256, stage_blocks: tuple[int, ...] = (2, 3, 2),
                 out_indices: tuple[int, ...] = (1, 2, 3)) -> None:
        super().__init__()
        self.out_indices = out_indices
        self.in_channels = 24
        self.conv1 = _conv_bn(3, self.in_channels, 3, 2, act=_relu)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layers = nn.ModuleList()
        for c, n in zip(channels, stage_blocks):
            blocks = [MMInvertedResidual(self.in_channels, c, 2)] + [MMInvertedResidual(c, c, 1) for _ in range(n - 1)]
            self.layers.append(nn.Sequential(*blocks))
            self.in_channels = c
        self.layers.append(_conv_bn(self.in_channels, last, 1, act=_relu))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x = self.maxpool(self.conv1(x))
        outs = []
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)


# ----------------------------------------------------------------------------------------------- YOLOv5-Lite


class YoloConv(nn.Module):
    """YOLOv5's Conv: conv (no bias), BN, SiLU."""

    def __init__(self, c1: int, c2: int, k: int = 1, s: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c1, c2, k, s, k // 2, bias=False)
        self.bn = nn.BatchNorm2d(c2)
        self.act = nn.SiLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class ConvBnReluMaxpool(nn.Module):
    """YOLOv5-Lite's stem: 3x3 stride-2 conv, BN, ReLU, 3x3 stride-2 max-pool."""

    def __init__(self, c1: int, c2: int) -> None:
        super().__init__()
        self.conv = _conv_bn(c1, c2, 3, 2, act=_relu)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1, ceil_mode=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.maxpool(self.conv(x))


class ShuffleBlock(NanoShuffleV2Block):
    """YOLOv5-Lite's Shuffle_Block: the same unit with ReLU (both projects start from torchvision's), its shuffle
    written inline as view/transpose/view."""

    def __init__(self, inp: int, oup: int, stride: int) -> None:
        super().__init__(inp, oup, stride, act=_relu)

    def shuffle(self, out: torch.Tensor) -> torch.Tensor:
        b, c, h, w = out.size()
        out = out.view(b, 2, c // 2, h, w)
        out = torch.transpose(out, 1, 2).contiguous()
        return out.view(b, -1, h, w)


class Bottleneck(nn.Module):
    def __init__(self, c1: int, c2: int, shortcut: bool = True) -> None:
        super().__init__()
        self.cv1 = YoloConv(c1, c2, 1)
        self.cv2 = YoloConv(c2, c2, 3)
        self.add = shortcut and c1 == c2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.cv2(self.cv1(x)) if self.add else self.cv2(self.cv1(x))


class C3(nn.Module):
    def __init__(self, c1: int, c2: int, n: int = 1, shortcut: bool = False) -> None:
        super().__init__()
        c_ = c2 // 2
        self.cv1 = YoloConv(c1, c_)
        self.cv2 = YoloConv(c1, c_)
        self.cv3 = YoloConv(2 * c_, c2)
        self.m = nn.Sequential(*[Bottleneck(c_, c_, shortcut) for _ in range(n)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cv3(torch.cat((self.m(self.cv1(x)), self.cv2(x)), dim=1))


class Detect(nn.Module):
    """YOLOv5's Detect as exported raw (training path / ``export`` flag): per level a 1x1 conv, then
    ``view(bs, na, no, ny, nx).permute(0, 1, 3, 4, 2).contiguous()``; decoding left to the app. With `concat` its
    export "concat" mode: sigmoid, boxes decoded to pixels (``(y * 2 - 0.5 + grid) * stride``, ``(y * 2) ** 2 *
    anchor_grid``) and every level in one (bs, N, no) tensor whose values run into the hundreds."""

    def __init__(self, nc: int, ch: tuple[int, ...], anchors: tuple[tuple[int, ...], ...], concat: bool = False,
                 strides: tuple[int, ...] = (8, 16, 32)) -> None:
        super().__init__()
        self.concat, self.strides = concat, strides
        self.nc = nc
        self.no = nc + 5
        self.nl = len(anchors)
        self.na = len(anchors[0]) // 2
        self.register_buffer("anchors", torch.tensor(anchors).float().view(self.nl, -1, 2))
        self.m = nn.ModuleList(nn.Conv2d(c, self.no * self.na, 1) for c in ch)

    def forward(self, xs: list[torch.Tensor]) -> Any:
        out = []
        for i in range(self.nl):
            x = self.m[i](xs[i])
            bs, _, ny, nx = x.shape
            out.append(x.view(bs, self.na, self.no, ny, nx).permute(0, 1, 3, 4, 2).contiguous())
        if not self.concat:
            return out
        z = []
        for i, y in enumerate(out):
            bs, _, ny, nx, _ = y.shape
            gy, gx = torch.meshgrid(torch.arange(ny), torch.arange(nx), indexing="ij")
            grid = torch.stack((gx, gy), 2).view(1, 1, ny, nx, 2).float()
            anchor_grid = (self.anchors[i] * self.strides[i]).view(1, self.na, 1, 1, 2) / self.strides[i]
            y = y.sigmoid()
            xy = (y[..., 0:2] * 2 - 0.5 + grid) * self.strides[i]
            wh = (y[..., 2:4] * 2) ** 2 * anchor_grid
            z.append(torch.cat((xy, wh, y[..., 4:]), -1).view(bs, -1, self.no))
        return torch.cat(z, 1)


class YoloV5Lite(nn.Module):
    """v5Lite-s: stem, Shuffle_Block stages (P3/8, P4/16, P5/32), the YOLOv5 PAN neck, Detect (3 outputs)."""

    def __init__(self, nc: int = 3, c: tuple[int, ...] = (16, 32, 64, 128), neck: tuple[int, ...] = (32, 64),
                 concat: bool = False) -> None:
        super().__init__()
        self.stem = ConvBnReluMaxpool(3, c[0])
        self.p3 = nn.Sequential(ShuffleBlock(c[0], c[1], 2), ShuffleBlock(c[1], c[1], 1), ShuffleBlock(c[1], c[1], 1))
        self.p4 = nn.Sequential(ShuffleBlock(c[1], c[2], 2), ShuffleBlock(c[2], c[2], 1), ShuffleBlock(c[2], c[2], 1))
        self.p5 = nn.Sequential(ShuffleBlock(c[2], c[3], 2), ShuffleBlock(c[3], c[3], 1))
        n3, n4 = neck
        self.conv10 = YoloConv(c[3], n4)
        self.up = nn.Upsample(None, 2, "nearest")
        self.c3_13 = C3(n4 + c[2], n4)
        self.conv14 = YoloConv(n4, n3)
        self.c3_17 = C3(n3 + c[1], n3)
        self.conv18 = YoloConv(n3, n3, 3, 2)
        self.c3_20 = C3(n3 + n3, n4)
        self.conv21 = YoloConv(n4, n4, 3, 2)
        self.c3_23 = C3(n4 + n4, 2 * n4)
        self.detect = Detect(nc, (n3, n4, 2 * n4), ((10, 13, 16, 30, 33, 23), (30, 61, 62, 45, 59, 119),
                                                    (116, 90, 156, 198, 373, 326)), concat=concat)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        p3 = self.p3(self.stem(x))
        p4 = self.p4(p3)
        p5 = self.p5(p4)
        h10 = self.conv10(p5)
        h13 = self.c3_13(torch.cat([self.up(h10), p4], 1))
        h14 = self.conv14(h13)
        h17 = self.c3_17(torch.cat([self.up(h14), p3], 1))
        h20 = self.c3_20(torch.cat([self.conv18(h17), h14], 1))
        h23 = self.c3_23(torch.cat([self.conv21(h20), h10], 1))
        return self.detect([h17, h20, h23])


# ------------------------------------------------------------------------------------------ ShuffleNetV2+


class HS(nn.Module):
    """megvii's h-swish: ``x * clamp(x + 3, 0, 6) / 6`` (Python int constants)."""

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        clip = torch.clamp(inputs + 3, 0, 6) / 6
        return inputs * clip


class SELayer(nn.Module):
    """megvii's SE: pool, 1x1 reduce (BN, ReLU), 1x1 expand, hard-sigmoid ``clamp(a + 3, 0, 6) / 6``, multiply."""

    def __init__(self, inplanes: int) -> None:
        super().__init__()
        self.SE_opr = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(inplanes, inplanes // 4, kernel_size=1, stride=1, bias=False),
            nn.BatchNorm2d(inplanes // 4),
            nn.ReLU(inplace=True),
            nn.Conv2d(inplanes // 4, inplanes, kernel_size=1, stride=1, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        atten = self.SE_opr(x)
        atten = torch.clamp(atten + 3, 0, 6) / 6
        return x * atten


def _act(name: str) -> nn.Module:
    return HS() if name == "HS" else nn.ReLU(inplace=True)


def even_odd_split(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The in-block shuffle + split as strided slices: even channels pass through, odd ones enter the branch."""
    return x[:, 0::2], x[:, 1::2]


class PlusShufflenet(nn.Module):
    """ShuffleNetV2+ block with a 3x3, 5x5 or 7x7 depthwise kernel, ReLU or h-swish, optional SE."""

    def __init__(self, inp: int, oup: int, mid: int, *, ksize: int, stride: int, activation: str, use_se: bool) -> None:
        super().__init__()
        self.stride = stride
        outputs = oup - inp
        branch_main = self.main_layers(inp, mid, outputs, ksize, stride, activation)
        if use_se:
            branch_main.append(SELayer(outputs))
        self.branch_main = nn.Sequential(*branch_main)
        if stride == 2:
            pad = ksize // 2
            self.branch_proj = nn.Sequential(
                nn.Conv2d(inp, inp, ksize, stride, pad, groups=inp, bias=False), nn.BatchNorm2d(inp),
                nn.Conv2d(inp, inp, 1, 1, 0, bias=False), nn.BatchNorm2d(inp), _act(activation),
            )

    @staticmethod
    def main_layers(inp: int, mid: int, outputs: int, ksize: int, stride: int, activation: str) -> list[nn.Module]:
        pad = ksize // 2
        return [
            nn.Conv2d(inp, mid, 1, 1, 0, bias=False), nn.BatchNorm2d(mid), _act(activation),
            nn.Conv2d(mid, mid, ksize, stride, pad, groups=mid, bias=False), nn.BatchNorm2d(mid),
            nn.Conv2d(mid, outputs, 1, 1, 0, bias=False), nn.BatchNorm2d(outputs), _act(activation),
        ]

    def forward(self, old_x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            x_proj, x = even_odd_split(old_x)
            return torch.cat((x_proj, self.branch_main(x)), 1)
        return torch.cat((self.branch_proj(old_x), self.branch_main(old_x)), 1)


class PlusXception(PlusShufflenet):
    """ShuffleNetV2+ Xception block: three depthwise 3x3 + pointwise pairs (the projection as in a 3x3 block)."""

    def __init__(self, inp: int, oup: int, mid: int, *, stride: int, activation: str, use_se: bool) -> None:
        super().__init__(inp, oup, mid, ksize=3, stride=stride, activation=activation, use_se=use_se)

    @staticmethod
    def main_layers(inp: int, mid: int, outputs: int, ksize: int, stride: int, activation: str) -> list[nn.Module]:
        return [
            nn.Conv2d(inp, inp, 3, stride, 1, groups=inp, bias=False), nn.BatchNorm2d(inp),
            nn.Conv2d(inp, mid, 1, 1, 0, bias=False), nn.BatchNorm2d(mid), _act(activation),
            nn.Conv2d(mid, mid, 3, 1, 1, groups=mid, bias=False), nn.BatchNorm2d(mid),
            nn.Conv2d(mid, mid, 1, 1, 0, bias=False), nn.BatchNorm2d(mid), _act(activation),
            nn.Conv2d(mid, mid, 3, 1, 1, groups=mid, bias=False), nn.BatchNorm2d(mid),
            nn.Conv2d(mid, outputs, 1, 1, 0, bias=False), nn.BatchNorm2d(outputs), _act(activation),
        ]


class ShuffleNetV2Plus(nn.Module):
    """Stem conv with h-swish, 4 stages (ReLU in the first, h-swish after; SE in the last two), a searched
    architecture (0/1/2: 3x3/5x5/7x7 blocks, 3: Xception), conv_last, global pool, last SE, fc with h-swish,
    dropout, classifier."""

    def __init__(self, num_classes: int = 10, channels: tuple[int, ...] = (16, 24, 48, 96, 128), last: int = 256,
                 repeats: tuple[int, ...] = (2, 2, 2, 2), architecture: tuple[int, ...] = (0, 1, 2, 3, 1, 2, 0, 3)) -> None:
        super().__init__()
        inp = channels[0]
        self.first_conv = nn.Sequential(nn.Conv2d(3, inp, 3, 2, 1, bias=False), nn.BatchNorm2d(inp), HS())
        features: list[nn.Module] = []
        arch = iter(architecture)
        for stage, (n, oup) in enumerate(zip(repeats, channels[1:])):
            activation = "HS" if stage >= 1 else "ReLU"
            use_se = stage >= 2
            for i in range(n):
                cin, stride = (inp, 2) if i == 0 else (inp // 2, 1)
                kind = next(arch)
                if kind == 3:
                    features.append(PlusXception(cin, oup, oup // 2, stride=stride, activation=activation, use_se=use_se))
                else:
                    features.append(PlusShufflenet(cin, oup, oup // 2, ksize=(3, 5, 7)[kind], stride=stride,
                                                   activation=activation, use_se=use_se))
                inp = oup
        self.features = nn.Sequential(*features)
        self.conv_last = nn.Sequential(nn.Conv2d(inp, last, 1, 1, 0, bias=False), nn.BatchNorm2d(last), HS())
        self.globalpool = nn.AdaptiveAvgPool2d(1)  # megvii: AvgPool2d(7) on the 7x7 map of a 224 input
        self.LastSE = SELayer(last)
        self.fc = nn.Sequential(nn.Linear(last, last, bias=False), HS())
        self.dropout = nn.Dropout(0.2)
        self.classifier = nn.Sequential(nn.Linear(last, num_classes, bias=False))
        self.last = last

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.first_conv(x)
        x = self.features(x)
        x = self.conv_last(x)
        x = self.globalpool(x)
        x = self.LastSE(x)
        x = x.contiguous().view(-1, self.last)
        x = self.fc(x)
        x = self.dropout(x)
        return self.classifier(x)


# ------------------------------------------------------------------------------------------------- Lite-HRNet


class ConvModule(nn.Sequential):
    """mmcv's ConvModule as Lite-HRNet configures it: conv, optional BN, optional activation (in-place ReLU)."""

    def __init__(self, cin: int, cout: int, k: int = 1, stride: int = 1, groups: int = 1, norm: bool = True,
                 act: str | None = "relu") -> None:
        layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=not norm)]
        if norm:
            layers.append(nn.BatchNorm2d(cout))
        if act == "relu":
            layers.append(nn.ReLU(inplace=True))
        elif act == "sigmoid":
            layers.append(nn.Sigmoid())
        super().__init__(*layers)


class HRStem(nn.Module):
    """Lite-HRNet's stem: stride-2 conv, chunk, a stride-2 branch per half, cat, channel shuffle."""

    def __init__(self, in_channels: int, stem_channels: int, out_channels: int, expand_ratio: int = 1) -> None:
        super().__init__()
        self.conv1 = ConvModule(in_channels, stem_channels, 3, 2)
        mid = int(round(stem_channels * expand_ratio))
        branch = stem_channels // 2
        inc = out_channels - branch if stem_channels == out_channels else out_channels - stem_channels
        self.branch1 = nn.Sequential(ConvModule(branch, branch, 3, 2, groups=branch, act=None), ConvModule(branch, inc, 1))
        self.expand_conv = ConvModule(branch, mid, 1)
        self.depthwise_conv = ConvModule(mid, mid, 3, 2, groups=mid, act=None)
        self.linear_conv = ConvModule(mid, branch if stem_channels == out_channels else stem_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        x1, x2 = x.chunk(2, dim=1)
        x2 = self.linear_conv(self.depthwise_conv(self.expand_conv(x2)))
        out = torch.cat((self.branch1(x1), x2), dim=1)
        return channel_shuffle(out, 2)


class SpatialWeighting(nn.Module):
    def __init__(self, channels: int, ratio: int = 4) -> None:
        super().__init__()
        self.global_avgpool = nn.AdaptiveAvgPool2d(1)
        self.conv1 = ConvModule(channels, channels // ratio, 1, norm=False)
        self.conv2 = ConvModule(channels // ratio, channels, 1, norm=False, act="sigmoid")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2(self.conv1(self.global_avgpool(x)))
        return x * out


class CrossResolutionWeighting(nn.Module):
    def __init__(self, channels: list[int], ratio: int = 8) -> None:
        super().__init__()
        self.channels = channels
        total = sum(channels)
        self.conv1 = ConvModule(total, total // ratio, 1)
        self.conv2 = ConvModule(total // ratio, total, 1, act="sigmoid")

    def forward(self, x: list[torch.Tensor]) -> list[torch.Tensor]:
        mini_size = x[-1].size()[-2:]
        out = [F.adaptive_avg_pool2d(s, mini_size) for s in x[:-1]] + [x[-1]]
        out = torch.cat(out, dim=1)
        out = self.conv2(self.conv1(out))
        out = torch.split(out, self.channels, dim=1)
        return [s * F.interpolate(a, size=s.size()[-2:], mode="nearest") for s, a in zip(x, out)]


class ConditionalChannelWeighting(nn.Module):
    def __init__(self, in_channels: list[int], reduce_ratio: int) -> None:
        super().__init__()
        branch_channels = [c // 2 for c in in_channels]
        self.cross_resolution_weighting = CrossResolutionWeighting(branch_channels, ratio=reduce_ratio)
        self.depthwise_convs = nn.ModuleList([ConvModule(c, c, 3, 1, groups=c, act=None) for c in branch_channels])
        self.spatial_weighting = nn.ModuleList([SpatialWeighting(c, 4) for c in branch_channels])

    def forward(self, x: list[torch.Tensor]) -> list[torch.Tensor]:
        parts = [s.chunk(2, dim=1) for s in x]
        x1 = [s[0] for s in parts]
        x2 = [s[1] for s in parts]
        x2 = self.cross_resolution_weighting(x2)
        x2 = [dw(s) for s, dw in zip(x2, self.depthwise_convs)]
        x2 = [sw(s) for s, sw in zip(x2, self.spatial_weighting)]
        out = [torch.cat([s1, s2], dim=1) for s1, s2 in zip(x1, x2)]
        return [channel_shuffle(s, 2) for s in out]


class LiteHRModule(nn.Module):
    """Conditional channel weighting blocks, then HRNet's fuse layers (nearest upsampling of lower branches,
    depthwise-separable stride-2 convs from higher ones, in-place sums, ReLU)."""

    def __init__(self, num_branches: int, num_blocks: int, in_channels: list[int], reduce_ratio: int) -> None:
        super().__init__()
        self.num_branches = num_branches
        self.layers = nn.Sequential(*[ConditionalChannelWeighting(in_channels, reduce_ratio) for _ in range(num_blocks)])
        self.fuse_layers = nn.ModuleList()
        for i in range(num_branches):
            row = nn.ModuleList()
            for j in range(num_branches):
                if j > i:
                    row.append(nn.Sequential(nn.Conv2d(in_channels[j], in_channels[i], 1, bias=False), nn.BatchNorm2d(in_channels[i]),
                                             nn.Upsample(scale_factor=2 ** (j - i), mode="nearest")))
                elif j == i:
                    row.append(nn.Identity())
                else:
                    downs: list[nn.Module] = []
                    for k in range(i - j):
                        last = k == i - j - 1
                        cout = in_channels[i] if last else in_channels[j]
                        seq: list[nn.Module] = [nn.Conv2d(in_channels[j], in_channels[j], 3, 2, 1, groups=in_channels[j], bias=False),
                                                nn.BatchNorm2d(in_channels[j]), nn.Conv2d(in_channels[j], cout, 1, bias=False),
                                                nn.BatchNorm2d(cout)]
                        if not last:
                            seq.append(nn.ReLU(inplace=True))
                        downs.append(nn.Sequential(*seq))
                    row.append(nn.Sequential(*downs))
            self.fuse_layers.append(row)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: list[torch.Tensor]) -> list[torch.Tensor]:
        out = self.layers(x)
        out_fuse = []
        for i in range(len(self.fuse_layers)):
            # mmpose's loop, as shipped: j runs from 0, so for i == 0 the first branch is added to itself in place
            # (y is out[0]), and later rows read that mutated out[0]; for i > 0 its term is added twice.
            y = out[0] if i == 0 else self.fuse_layers[i][0](out[0])
            for j in range(self.num_branches):
                if i == j:
                    y += out[j]
                else:
                    y += self.fuse_layers[i][j](out[j])
            out_fuse.append(self.relu(y))
        return out_fuse


class IterativeHead(nn.Module):
    """From the lowest resolution up: bilinear (align_corners) upsample, add, depthwise-separable conv."""

    def __init__(self, in_channels: list[int]) -> None:
        super().__init__()
        chans = in_channels[::-1]
        self.projects = nn.ModuleList()
        for i, c in enumerate(chans):
            cout = chans[i + 1] if i != len(chans) - 1 else c
            self.projects.append(nn.Sequential(ConvModule(c, c, 3, 1, groups=c, act=None), ConvModule(c, cout, 1)))

    def forward(self, x: list[torch.Tensor]) -> list[torch.Tensor]:
        x = x[::-1]
        y = []
        last_x = None
        for i, s in enumerate(x):
            if last_x is not None:
                last_x = F.interpolate(last_x, size=s.size()[-2:], mode="bilinear", align_corners=True)
                s = s + last_x
            s = self.projects[i](s)
            y.append(s)
            last_x = s
        return y[::-1]


class LiteHRNet(nn.Module):
    """Stem, three stages of 2/3/4 branches (transition layers in between), iterative head; the top-down heatmap
    head's final 1x1 conv gives (1, K, H/4, W/4)."""

    def __init__(self, stem: int = 16, stage_channels: tuple[tuple[int, ...], ...] = ((16, 32), (16, 32, 64), (16, 32, 64, 128)),
                 num_modules: tuple[int, ...] = (1, 2, 1), num_blocks: int = 2, reduce_ratio: int = 8, keypoints: int = 5) -> None:
        super().__init__()
        self.stem = HRStem(3, stem, stem)
        prev = [stem]
        self.stage_channels = stage_channels
        for s, chans in enumerate(stage_channels):
            trans = nn.ModuleList()
            for j, c in enumerate(chans):
                if j < len(prev):
                    trans.append(nn.Identity() if prev[j] == c else nn.Sequential(
                        nn.Conv2d(prev[j], prev[j], 3, 1, 1, groups=prev[j], bias=False), nn.BatchNorm2d(prev[j]),
                        nn.Conv2d(prev[j], c, 1, bias=False), nn.BatchNorm2d(c), nn.ReLU()))
                else:
                    trans.append(nn.Sequential(
                        nn.Conv2d(prev[-1], prev[-1], 3, 2, 1, groups=prev[-1], bias=False), nn.BatchNorm2d(prev[-1]),
                        nn.Conv2d(prev[-1], c, 1, bias=False), nn.BatchNorm2d(c), nn.ReLU()))
            setattr(self, f"transition{s}", trans)
            setattr(self, f"stage{s}", nn.Sequential(*[LiteHRModule(len(chans), num_blocks, list(chans), reduce_ratio)
                                                     for _ in range(num_modules[s])]))
            prev = list(chans)
        self.head_layer = IterativeHead(list(stage_channels[-1]))
        self.final_layer = nn.Conv2d(stage_channels[-1][0], keypoints, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        y_list = [x]
        for s, chans in enumerate(self.stage_channels):
            trans = getattr(self, f"transition{s}")
            x_list = [trans[j](y_list[j] if j < len(y_list) else y_list[-1]) for j in range(len(chans))]
            y_list = getattr(self, f"stage{s}")(x_list)
        return self.final_layer(self.head_layer(y_list)[0])


# ------------------------------------------------------------------------------------------------- factories


def make_nanodet_plus() -> tuple[nn.Module, tuple[int, int, int, int]]:
    return randomize(NanoDetPlus(), 1), (1, 3, 64, 64)


def make_mmpretrain_v1() -> tuple[nn.Module, tuple[int, int, int, int]]:
    return randomize(MMImageClassifier(MMShuffleNetV1(), 240), 2), (1, 3, 64, 64)


def make_mmpretrain_v2() -> tuple[nn.Module, tuple[int, int, int, int]]:
    return randomize(MMShuffleNetV2(), 3), (1, 3, 64, 64)


def make_yolov5_lite() -> tuple[nn.Module, tuple[int, int, int, int]]:
    return randomize(YoloV5Lite(), 4), (1, 3, 64, 64)


def make_shufflenetv2_plus() -> tuple[nn.Module, tuple[int, int, int, int]]:
    return randomize(ShuffleNetV2Plus(), 5), (1, 3, 64, 64)


def make_lite_hrnet() -> tuple[nn.Module, tuple[int, int, int, int]]:
    # Two stages (two and three branches) instead of the paper's three: every mechanism (chunk per branch, the
    # cross-resolution weighting, a shuffle per block, the iterative head) at a third of the conversion time.
    # Pose models take portrait crops (256x192 at full size).
    net = LiteHRNet(stage_channels=((16, 32), (16, 32, 64)), num_modules=(1, 1))
    return randomize(net, 6), (1, 3, 64, 48)


def yolov5_lite_concat() -> tuple[nn.Module, tuple[int, int, int, int]]:
    """v5Lite-s with its Detect head in export "concat" mode: one (1, N, 8) output, boxes in pixels. Not in ZOO (the
    raw-head model covers the backbone and neck); tests/test_zoo.py exports it to ONNX."""
    return randomize(YoloV5Lite(concat=True), 4), (1, 3, 128, 128)


def make_megvii_v2() -> tuple[nn.Module, tuple[int, int, int, int]]:
    from shufflenet_edge.models import build_model

    return randomize(build_model("megvii_shufflenet_v2_x0_5", num_classes=10), 7), (1, 3, 64, 64)


ZOO = {name[len("make_"):]: fn for name, fn in sorted(globals().items()) if name.startswith("make_") and callable(fn)}
