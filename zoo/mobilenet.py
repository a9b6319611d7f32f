"""MobileNetV1 and MobileNetV2.

MobileNetV1 — Howard et al., "MobileNets: Efficient Convolutional Neural Networks for Mobile Vision
Applications", 2017. A 3×3/2 conv (32) and 13 depthwise-separable blocks (depthwise 3×3 → BN → ReLU,
pointwise 1×1 → BN → ReLU) with widths 64, 128/2, 128, 256/2, 256, 512/2, 512×5, 1024/2, 1024, then
global average pool and a Linear. 1.0-224: 4,231,976 params, 0.58 GMACs.

MobileNetV2 — Sandler et al., "MobileNetV2: Inverted Residuals and Linear Bottlenecks", CVPR 2018.
A 3×3/2 conv (32), inverted-residual rows (t, c, n, s) = (1,16,1,1) (6,24,2,2) (6,32,3,2) (6,64,4,2)
(6,96,3,1) (6,160,3,2) (6,320,1,1), a 1×1 conv to 1280, pool, dropout, Linear. ReLU6 everywhere except
after the projection (the linear bottleneck). 1.0-224: 3,504,872 params, 0.31 GMACs.

Scaling rules (both papers): the width multiplier α scales every layer's channels, rounded with
``make_divisible`` (nearest multiple of 8, never more than 10 % down); V2 keeps its last conv at 1280 for
α < 1 and widens it for α > 1. The resolution multiplier ρ is just the input size: the nets are fully
convolutional with global pooling, so any ``img_size`` from 32 px up works (MACs scale with ρ²).
Registered: ``mobilenetv1_{025,050,075,100}`` and ``mobilenetv2_{050,075,100,140}``; the multiplier is also
the builder kwarg ``width_multiplier``.

Deviations: MobileNetV1 uses ReLU as in the paper (timm and TF-slim use ReLU6; the parameter count is
the same; ``act_layer="relu6"`` builds theirs). The V2 classifier dropout is 0.2 (the paper does not state
one; it follows the released models). Weights use He (fan-out) init for convs and N(0, 0.01) for the classifier.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from zoo.layers import (ClassifierHead, ConvNormAct, ImageClassifier, MBConv, get_act_layer, he_init_conv_bn,
                        make_divisible)
from zoo.registry import register_model

V1_PAPER = "MobileNets: Efficient Convolutional Neural Networks for Mobile Vision Applications"
V2_PAPER = "MobileNetV2: Inverted Residuals and Linear Bottlenecks"

# MobileNetV1 body (paper Table 1): (output channels, stride) of each depthwise-separable block.
V1_BLOCKS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
             (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1))
# MobileNetV2 body (paper Table 2): (expansion t, output channels c, repeats n, first stride s).
V2_ROWS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
           (6, 320, 1, 1))


def _init_weights(model: nn.Module) -> None:
    he_init_conv_bn(model)
    for m in model.modules():
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.01)
            nn.init.zeros_(m.bias)


class DepthwiseSeparable(nn.Sequential):
    """depthwise 3×3 (stride) → BN → act, then pointwise 1×1 → BN → act: MobileNetV1's unit (paper Fig. 3)."""

    def __init__(self, in_chs: int, out_chs: int, stride: int, act_layer=nn.ReLU):
        super().__init__(ConvNormAct(in_chs, in_chs, 3, stride, groups=in_chs, act_layer=act_layer),
                         ConvNormAct(in_chs, out_chs, 1, act_layer=act_layer))


class MobileNetV1(ImageClassifier):
    def __init__(self, width_multiplier: float = 1.0, num_classes: int = 1000, in_chans: int = 3,
                 drop_rate: float = 0.0, act_layer: str | type[nn.Module] = "relu"):
        super().__init__()
        act_layer = get_act_layer(act_layer)
        in_chs = make_divisible(32 * width_multiplier)
        self.stem = ConvNormAct(in_chans, in_chs, 3, 2, act_layer=act_layer)
        blocks = []
        for out_chs, stride in V1_BLOCKS:
            out_chs = make_divisible(out_chs * width_multiplier)
            blocks.append(DepthwiseSeparable(in_chs, out_chs, stride, act_layer))
            in_chs = out_chs
        self.blocks = nn.Sequential(*blocks)
        self.head = ClassifierHead(in_chs, num_classes, pool="avg", drop=drop_rate)
        _init_weights(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.stem(x))


class MobileNetV2(ImageClassifier):
    def __init__(self, width_multiplier: float = 1.0, num_classes: int = 1000, in_chans: int = 3,
                 drop_rate: float = 0.2):
        super().__init__()
        in_chs = make_divisible(32 * width_multiplier)
        self.stem = ConvNormAct(in_chans, in_chs, 3, 2, act_layer=nn.ReLU6)
        blocks = []
        for expand_ratio, out_chs, repeats, first_stride in V2_ROWS:
            out_chs = make_divisible(out_chs * width_multiplier)
            for i in range(repeats):
                blocks.append(MBConv(in_chs, out_chs, 3, first_stride if i == 0 else 1, expand_ratio,
                                     act_layer=nn.ReLU6))
                in_chs = out_chs
        self.blocks = nn.Sequential(*blocks)
        # The paper keeps the last conv at 1280 for multipliers below 1 (small nets need the features).
        head_chs = make_divisible(1280 * max(1.0, width_multiplier))
        self.conv_head = ConvNormAct(in_chs, head_chs, 1, act_layer=nn.ReLU6)
        self.head = ClassifierHead(head_chs, num_classes, pool="avg", drop=drop_rate)
        _init_weights(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_head(self.blocks(self.stem(x)))


def _build(cls, default_width: float, *, num_classes, in_chans, img_size, width_multiplier=None, **kwargs):
    del img_size  # fully convolutional with global pooling: any size from the minimum up
    width = default_width if width_multiplier is None else width_multiplier
    return cls(width_multiplier=width, num_classes=num_classes, in_chans=in_chans, **kwargs)


_V1 = dict(family="mobilenet", paper=V1_PAPER, year=2017, native_size=224, min_size=32)
_V2 = dict(family="mobilenet", paper=V2_PAPER, year=2018, native_size=224, min_size=32)


# paper_top1 from MobileNetV1 Table 6 (width multiplier, 224 px).
@register_model(**_V1, paper_top1=50.6)
def mobilenetv1_025(**kwargs):
    return _build(MobileNetV1, 0.25, **kwargs)


@register_model(**_V1, paper_top1=63.7)
def mobilenetv1_050(**kwargs):
    return _build(MobileNetV1, 0.5, **kwargs)


@register_model(**_V1, paper_top1=68.4)
def mobilenetv1_075(**kwargs):
    return _build(MobileNetV1, 0.75, **kwargs)


@register_model(**_V1, aliases=("mobilenetv1",), paper_params=4_231_976, paper_top1=70.6)
def mobilenetv1_100(**kwargs):
    return _build(MobileNetV1, 1.0, **kwargs)


@register_model(**_V2)
def mobilenetv2_050(**kwargs):
    return _build(MobileNetV2, 0.5, **kwargs)


@register_model(**_V2)
def mobilenetv2_075(**kwargs):
    return _build(MobileNetV2, 0.75, **kwargs)


@register_model(**_V2, aliases=("mobilenetv2",), paper_params=3_504_872, paper_top1=72.0)
def mobilenetv2_100(**kwargs):
    return _build(MobileNetV2, 1.0, **kwargs)


@register_model(**_V2, paper_top1=74.7)  # paper Table 4
def mobilenetv2_140(**kwargs):
    return _build(MobileNetV2, 1.4, **kwargs)
