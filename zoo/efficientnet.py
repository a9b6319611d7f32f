"""EfficientNet and EfficientNetV2.

EfficientNet — Tan & Le, "EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks",
ICML 2019. B0 is one block table (google/automl ``v1_b0_block_str``; rows in ``B0_STAGES``): stem 3×3/2
32, MBConv stages, head 1×1 1280, pool, dropout, Linear. MBConv = expand 1×1 → depthwise k×k → SE (¼ of
the block *input* channels) → linear 1×1 projection, SiLU, residual + stochastic depth where shapes agree.
B0: 5,288,548 params, 0.39 GMACs.

Compound scaling (paper §3.3, official ``efficientnet_params``): variant bN has a width multiplier w,
depth multiplier d, resolution r and head dropout p —
    b0 (1.0, 1.0, 224, 0.2)  b1 (1.0, 1.1, 240, 0.2)  b2 (1.1, 1.2, 260, 0.3)  b3 (1.2, 1.4, 300, 0.3)
    b4 (1.4, 1.8, 380, 0.4)  b5 (1.6, 2.2, 456, 0.4)  b6 (1.8, 2.6, 528, 0.5)  b7 (2.0, 3.1, 600, 0.5).
Every channel count (stem, stage outputs, head) becomes ``make_divisible(w · c, 8)``, every stage's repeats
``ceil(d · n)``; r is the registered native size. Stochastic depth: survival 0.8, i.e. block i of N drops
its residual branch with probability 0.2 · i / N (the official schedule).

EfficientNetV2 — Tan & Le, "EfficientNetV2: Smaller Models and Faster Training", ICML 2021. The early
stages use Fused-MBConv (one regular k×k conv instead of expand 1×1 + depthwise k×k, no SE); block tables
from google/automl ``v2_s_block`` / ``v2_m_block`` / ``v2_l_block``. S: 21,458,488 params, 8.4 GMACs at
384; M: 54,139,356; L: 118,515,272. Progressive learning trains at growing sizes up to 300 (S) / 384 (M, L)
px and evaluates at 384 (S) / 480 (M, L); the registered native size is that evaluation size, the one
the published accuracy is measured at. Head dropout 0.2 / 0.3 / 0.4, stochastic depth 0.2.

One ``MBConv`` (zoo.layers) serves MobileNetV2, both EfficientNets, and Fused-MBConv. BatchNorm uses the
official eps 1e-3 and momentum 0.01 (TF's decay 0.99); ``bn_eps`` changes the eps (torchvision's B0-B4 and
timm's ports are trained with 1e-5, which ``zoo.pretrained`` sets when it loads their weights). Init: He (fan-out) normal for convs, the official
uniform(±1/√classes) for the classifier. Any input from 32 px up works (overall stride 32).
"""
from __future__ import annotations

import math
from functools import partial
from typing import NamedTuple

import torch
import torch.nn as nn

from zoo.layers import ClassifierHead, ConvNormAct, ImageClassifier, MBConv, he_init_conv_bn, make_divisible
from zoo.registry import register_model

V1_PAPER = "EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks"
V2_PAPER = "EfficientNetV2: Smaller Models and Faster Training"


class Stage(NamedTuple):
    """One row of a block table: ``repeats`` blocks, the first with ``stride``."""
    expand_ratio: int
    kernel_size: int
    stride: int
    out_chs: int
    repeats: int
    se_ratio: float = 0.25
    fused: bool = False


B0_STAGES = (Stage(1, 3, 1, 16, 1), Stage(6, 3, 2, 24, 2), Stage(6, 5, 2, 40, 2), Stage(6, 3, 2, 80, 3),
             Stage(6, 5, 1, 112, 3), Stage(6, 5, 2, 192, 4), Stage(6, 3, 1, 320, 1))
# name: (width multiplier, depth multiplier, resolution, head dropout), official efficientnet_params.
COMPOUND_SCALING = {
    "b0": (1.0, 1.0, 224, 0.2), "b1": (1.0, 1.1, 240, 0.2), "b2": (1.1, 1.2, 260, 0.3),
    "b3": (1.2, 1.4, 300, 0.3), "b4": (1.4, 1.8, 380, 0.4), "b5": (1.6, 2.2, 456, 0.4),
    "b6": (1.8, 2.6, 528, 0.5), "b7": (2.0, 3.1, 600, 0.5)}


def _fused(expand_ratio, kernel_size, stride, out_chs, repeats) -> Stage:
    return Stage(expand_ratio, kernel_size, stride, out_chs, repeats, se_ratio=0.0, fused=True)


# EfficientNetV2: (stem channels, stages), official v2_{s,m,l}_block; the head is 1280 for all three.
V2_CONFIGS = {
    "s": (24, (_fused(1, 3, 1, 24, 2), _fused(4, 3, 2, 48, 4), _fused(4, 3, 2, 64, 4),
               Stage(4, 3, 2, 128, 6), Stage(6, 3, 1, 160, 9), Stage(6, 3, 2, 256, 15))),
    "m": (24, (_fused(1, 3, 1, 24, 3), _fused(4, 3, 2, 48, 5), _fused(4, 3, 2, 80, 5),
               Stage(4, 3, 2, 160, 7), Stage(6, 3, 1, 176, 14), Stage(6, 3, 2, 304, 18),
               Stage(6, 3, 1, 512, 5))),
    "l": (32, (_fused(1, 3, 1, 32, 4), _fused(4, 3, 2, 64, 7), _fused(4, 3, 2, 96, 7),
               Stage(4, 3, 2, 192, 10), Stage(6, 3, 1, 224, 19), Stage(6, 3, 2, 384, 25),
               Stage(6, 3, 1, 640, 7))),
}


def scale_stages(stages: tuple[Stage, ...], width_mult: float, depth_mult: float) -> tuple[Stage, ...]:
    """The compound-scaling rule: channels → make_divisible(w · c, 8), repeats → ceil(d · n)."""
    return tuple(stage._replace(out_chs=make_divisible(stage.out_chs * width_mult),
                                repeats=math.ceil(stage.repeats * depth_mult)) for stage in stages)


class EfficientNet(ImageClassifier):
    """Stem → MBConv / Fused-MBConv stages → 1×1 head conv → pool → dropout → Linear.

    ``stages`` is the unscaled block table; ``width_mult`` and ``depth_mult`` apply the compound-scaling
    rule to it and to the stem and head widths. ``drop_path_rate`` is the stochastic-depth rate reached
    (asymptotically) by the last block; ``bn_eps`` is every BatchNorm's eps.
    """

    def __init__(self, stages: tuple[Stage, ...], stem_chs: int = 32, head_chs: int = 1280, width_mult: float = 1.0,
                 depth_mult: float = 1.0, num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.2,
                 drop_path_rate: float = 0.2, bn_eps: float = 1e-3):
        super().__init__()
        norm_layer = partial(nn.BatchNorm2d, eps=bn_eps, momentum=0.01)
        self.stage_specs = scale_stages(stages, width_mult, depth_mult)
        in_chs = make_divisible(stem_chs * width_mult)
        self.stem = ConvNormAct(in_chans, in_chs, 3, 2, norm_layer=norm_layer, act_layer=nn.SiLU)
        num_blocks = sum(stage.repeats for stage in self.stage_specs)
        blocks = []
        for stage in self.stage_specs:
            for i in range(stage.repeats):
                blocks.append(MBConv(in_chs, stage.out_chs, stage.kernel_size, stage.stride if i == 0 else 1,
                                     stage.expand_ratio, se_ratio=stage.se_ratio, fused=stage.fused,
                                     drop_path=drop_path_rate * len(blocks) / num_blocks,
                                     act_layer=nn.SiLU, norm_layer=norm_layer))
                in_chs = stage.out_chs
        self.blocks = nn.Sequential(*blocks)
        head_chs = make_divisible(head_chs * width_mult)
        self.conv_head = ConvNormAct(in_chs, head_chs, 1, norm_layer=norm_layer, act_layer=nn.SiLU)
        self.head = ClassifierHead(head_chs, num_classes, pool="avg", drop=drop_rate)
        self._init_weights()

    def _init_weights(self) -> None:
        he_init_conv_bn(self)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                bound = 1.0 / math.sqrt(m.out_features)
                nn.init.uniform_(m.weight, -bound, bound)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_head(self.blocks(self.stem(x)))


def _efficientnet(variant: str, *, num_classes, in_chans, img_size, **kwargs) -> EfficientNet:
    del img_size  # fully convolutional with global pooling: any size from the minimum up
    width_mult, depth_mult, _, drop_rate = COMPOUND_SCALING[variant]
    kwargs.setdefault("drop_rate", drop_rate)
    return EfficientNet(B0_STAGES, width_mult=width_mult, depth_mult=depth_mult, num_classes=num_classes,
                        in_chans=in_chans, **kwargs)


def _efficientnetv2(variant: str, drop_rate: float, *, num_classes, in_chans, img_size, **kwargs) -> EfficientNet:
    del img_size
    stem_chs, stages = V2_CONFIGS[variant]
    kwargs.setdefault("drop_rate", drop_rate)
    return EfficientNet(stages, stem_chs=stem_chs, num_classes=num_classes, in_chans=in_chans, **kwargs)


def _v1_meta(variant: str) -> dict:
    return dict(family="efficientnet", paper=V1_PAPER, year=2019, native_size=COMPOUND_SCALING[variant][2],
                min_size=32)


_V2 = dict(family="efficientnet", paper=V2_PAPER, year=2021, min_size=32)


# Parameter counts are the built ones (B0-B7 equal torchvision's efficientnet_b* builds);
# top-1 from EfficientNet Table 2.
@register_model(**_v1_meta("b0"), aliases=("efficientnetb0",), paper_params=5_288_548, paper_top1=77.1)
def efficientnet_b0(**kwargs):
    return _efficientnet("b0", **kwargs)


@register_model(**_v1_meta("b1"), aliases=("efficientnetb1",), paper_params=7_794_184, paper_top1=79.1)
def efficientnet_b1(**kwargs):
    return _efficientnet("b1", **kwargs)


@register_model(**_v1_meta("b2"), aliases=("efficientnetb2",), paper_params=9_109_994, paper_top1=80.1)
def efficientnet_b2(**kwargs):
    return _efficientnet("b2", **kwargs)


@register_model(**_v1_meta("b3"), aliases=("efficientnetb3",), paper_params=12_233_232, paper_top1=81.6)
def efficientnet_b3(**kwargs):
    return _efficientnet("b3", **kwargs)


@register_model(**_v1_meta("b4"), aliases=("efficientnetb4",), paper_params=19_341_616, paper_top1=82.9)
def efficientnet_b4(**kwargs):
    return _efficientnet("b4", **kwargs)


@register_model(**_v1_meta("b5"), aliases=("efficientnetb5",), paper_params=30_389_784, paper_top1=83.6)
def efficientnet_b5(**kwargs):
    return _efficientnet("b5", **kwargs)


@register_model(**_v1_meta("b6"), aliases=("efficientnetb6",), paper_params=43_040_704, paper_top1=84.0)
def efficientnet_b6(**kwargs):
    return _efficientnet("b6", **kwargs)


@register_model(**_v1_meta("b7"), aliases=("efficientnetb7",), paper_params=66_347_960, paper_top1=84.3)
def efficientnet_b7(**kwargs):
    return _efficientnet("b7", **kwargs)


@register_model(**_V2, native_size=384, aliases=("efficientnetv2",), paper_params=21_458_488, paper_top1=83.9)
def efficientnetv2_s(**kwargs):
    return _efficientnetv2("s", 0.2, **kwargs)


@register_model(**_V2, native_size=480, paper_params=54_139_356)
def efficientnetv2_m(**kwargs):
    return _efficientnetv2("m", 0.3, **kwargs)


@register_model(**_V2, native_size=480, paper_params=118_515_272)
def efficientnetv2_l(**kwargs):
    return _efficientnetv2("l", 0.4, **kwargs)
