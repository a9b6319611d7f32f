"""Darknet-53 — Redmon & Farhadi, "YOLOv3: An Incremental Improvement", arXiv 2018.

The classification backbone of the paper's Table 1 (and the authors' darknet53.cfg): a 3×3 conv 32, then
five stages, each a 3×3/2 conv that doubles the width (64, 128, 256, 512, 1024) followed by 1, 2, 8, 8, 4
residual blocks (1×1 conv to half the width → 3×3 conv back, added to the input). Every conv is conv (no
bias) → BN → LeakyReLU(0.1). Head: global average pool, then the cfg's 1×1 conv to the classes, which on a
pooled vector is a Linear layer. Native input 256. 41,609,928 params; 18.7 "Bn Ops" in the paper are
FLOPs, i.e. 9.3 GMACs. ``leaky_slope`` (default the cfg's 0.1) is the LeakyReLU slope; timm's darknet53 uses
0.01.

The paper gives no initialisation; PyTorch's default is kept.
"""
from __future__ import annotations

from functools import partial

import torch
import torch.nn as nn

from zoo.layers import ClassifierHead, ConvNormAct, ImageClassifier
from zoo.registry import register_model

def conv_bn_leaky(in_chs: int, out_chs: int, kernel: int, stride: int = 1, slope: float = 0.1) -> ConvNormAct:
    return ConvNormAct(in_chs, out_chs, kernel, stride, act_layer=partial(nn.LeakyReLU, negative_slope=slope))


class DarkResidual(nn.Module):
    """x + (3×3 conv c ∘ 1×1 conv c/2)(x)."""

    def __init__(self, chs: int, slope: float = 0.1):
        super().__init__()
        self.body = nn.Sequential(conv_bn_leaky(chs, chs // 2, 1, slope=slope),
                                  conv_bn_leaky(chs // 2, chs, 3, slope=slope))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class Darknet53(ImageClassifier):
    def __init__(self, num_classes: int = 1000, in_chans: int = 3, depths: tuple[int, ...] = (1, 2, 8, 8, 4),
                 drop_rate: float = 0.0, leaky_slope: float = 0.1):
        super().__init__()
        self.stem = conv_bn_leaky(in_chans, 32, 3, slope=leaky_slope)
        stages, chs = [], 32
        for depth in depths:
            stages.append(nn.Sequential(conv_bn_leaky(chs, 2 * chs, 3, stride=2, slope=leaky_slope),
                                        *[DarkResidual(2 * chs, leaky_slope) for _ in range(depth)]))
            chs *= 2
        self.stages = nn.Sequential(*stages)
        self.head = ClassifierHead(chs, num_classes, pool="avg", drop=drop_rate)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(x))


@register_model(family="darknet", paper="YOLOv3: An Incremental Improvement", year=2018, native_size=256,
                min_size=32, aliases=("darknet",), paper_params=41_609_928, paper_top1=77.2)
def darknet53(*, num_classes, in_chans, img_size, **kwargs):
    del img_size  # fully convolutional with global pooling
    return Darknet53(num_classes=num_classes, in_chans=in_chans, **kwargs)
