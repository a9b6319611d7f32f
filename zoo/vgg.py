"""VGG — Simonyan & Zisserman, "Very Deep Convolutional Networks for Large-Scale Image Recognition",
ICLR 2015.

Variants: configurations A, B, D, E of the paper's Table 1 (VGG-11/13/16/19): stacks of 3×3 convs
(stride 1, padding 1) with ReLU, five 2×2/2 max-pools, FC 4096-4096 with dropout 0.5 before each, and the
classifier. ``vgg*_bn`` add BatchNorm after every conv (a later variant, not in the paper); their convs
keep their biases, so their counts equal torchvision's ``vgg*_bn``.

Deviations: an adaptive average pool to 7×7 sits before FC6 so that any input from 32 px up works (at
224 px it is the identity). The paper trained A from N(0, 0.01) and the deeper nets from A's weights, and
notes that Glorot initialisation trains them without that; the zoo uses Glorot (Xavier uniform) weights
and zero biases for every variant.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from zoo.layers import ClassifierHead, ConvNormAct, ImageClassifier
from zoo.registry import register_model

PAPER = "Very Deep Convolutional Networks for Large-Scale Image Recognition"

# Convs per stage of the five stages (widths 64, 128, 256, 512, 512), Table 1 of the paper.
STAGE_WIDTHS = (64, 128, 256, 512, 512)
CONFIGS = {
    11: (1, 1, 2, 2, 2),  # A
    13: (2, 2, 2, 2, 2),  # B
    16: (2, 2, 3, 3, 3),  # D
    19: (2, 2, 4, 4, 4),  # E
}


class VGG(ImageClassifier):
    def __init__(self, convs_per_stage: tuple[int, ...], num_classes: int = 1000, in_chans: int = 3,
                 batch_norm: bool = False, drop_rate: float = 0.5):
        super().__init__()
        layers, in_chs = [], in_chans
        for width, n_convs in zip(STAGE_WIDTHS, convs_per_stage):
            for _ in range(n_convs):
                layers.append(ConvNormAct(in_chs, width, 3, bias=True,
                                          norm_layer=nn.BatchNorm2d if batch_norm else None))
                in_chs = width
            layers.append(nn.MaxPool2d(2, 2))
        layers.append(nn.AdaptiveAvgPool2d(7))
        self.features = nn.Sequential(*layers)
        self.fc = nn.Sequential(
            nn.Flatten(), nn.Dropout(drop_rate), nn.Linear(512 * 7 * 7, 4096), nn.ReLU(inplace=True),
            nn.Dropout(drop_rate), nn.Linear(4096, 4096), nn.ReLU(inplace=True))
        self.head = ClassifierHead(4096, num_classes, pool="none")
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


def _vgg(depth: int, batch_norm: bool, *, num_classes, in_chans, img_size, **kwargs) -> VGG:
    del img_size  # the adaptive pool before FC6 takes any size from the minimum up
    return VGG(CONFIGS[depth], num_classes=num_classes, in_chans=in_chans, batch_norm=batch_norm, **kwargs)


_VGG = dict(family="vgg", paper=PAPER, year=2015, native_size=224, min_size=32)


@register_model(**_VGG, aliases=("vggnet",), paper_params=132_863_336, paper_top1=70.4)
def vgg11(**kwargs):
    return _vgg(11, False, **kwargs)


@register_model(**_VGG, paper_params=133_047_848)
def vgg13(**kwargs):
    return _vgg(13, False, **kwargs)


@register_model(**_VGG, paper_params=138_357_544, paper_top1=73.0)
def vgg16(**kwargs):
    return _vgg(16, False, **kwargs)


@register_model(**_VGG, paper_params=143_667_240)
def vgg19(**kwargs):
    return _vgg(19, False, **kwargs)


@register_model(**_VGG)
def vgg11_bn(**kwargs):
    return _vgg(11, True, **kwargs)


@register_model(**_VGG)
def vgg13_bn(**kwargs):
    return _vgg(13, True, **kwargs)


@register_model(**_VGG)
def vgg16_bn(**kwargs):
    return _vgg(16, True, **kwargs)


@register_model(**_VGG)
def vgg19_bn(**kwargs):
    return _vgg(19, True, **kwargs)
