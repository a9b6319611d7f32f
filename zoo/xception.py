"""Xception — Chollet, "Xception: Deep Learning with Depthwise Separable Convolutions", CVPR 2017.

The network of the paper's Figure 5 at 299 px: 36 convolutions in 14 modules. Entry flow: 3×3/2 conv 32,
3×3 conv 64, then three modules of two separable convs (128, 256, 728) and a 3×3/2 max-pool, each with a
1×1/2 conv shortcut. Middle flow: eight modules of three ReLU → separable conv 728, with identity
shortcuts. Exit flow: a module of separable convs 728 and 1024 with a 3×3/2 max-pool and a 1×1/2
shortcut, then separable convs 1536 and 2048, global average pool, dropout 0.5, FC. A separable conv is a
3×3 depthwise conv then a 1×1 pointwise conv with no nonlinearity between them; BatchNorm follows every
conv and separable conv; the residual connections are linear. 22,855,952 params.

The first entry module starts without a ReLU (the stem's last conv has just applied one). The two stem
convs are unpadded, as in the paper's Keras code (299 → 149 → 147). The paper gives no initialisation;
PyTorch's default is kept.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from zoo.layers import ClassifierHead, ConvNormAct, ImageClassifier
from zoo.registry import register_model


class SeparableConv(nn.Sequential):
    """3×3 depthwise conv → 1×1 pointwise conv (no bias, no activation between) → BN."""

    def __init__(self, in_chs: int, out_chs: int):
        super().__init__(nn.Conv2d(in_chs, in_chs, 3, padding=1, groups=in_chs, bias=False),
                         nn.Conv2d(in_chs, out_chs, 1, bias=False),
                         nn.BatchNorm2d(out_chs))


class XceptionModule(nn.Module):
    """(ReLU → separable conv) per width, optionally a 3×3/2 max-pool, plus a linear shortcut."""

    def __init__(self, in_chs: int, widths: tuple[int, ...], stride: int = 1, first_relu: bool = True):
        super().__init__()
        layers, chs = [], in_chs
        for i, width in enumerate(widths):
            if i > 0 or first_relu:
                layers.append(nn.ReLU(inplace=i > 0))  # the module's first ReLU must not overwrite its shortcut input
            layers.append(SeparableConv(chs, width))
            chs = width
        if stride > 1:
            layers.append(nn.MaxPool2d(3, stride, padding=1))
        self.body = nn.Sequential(*layers)
        self.shortcut = (nn.Identity() if stride == 1 and in_chs == chs
                         else ConvNormAct(in_chs, chs, 1, stride, act_layer=None))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + self.shortcut(x)


class Xception(ImageClassifier):
    def __init__(self, num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.5):
        super().__init__()
        self.stem = nn.Sequential(ConvNormAct(in_chans, 32, 3, 2, padding=0), ConvNormAct(32, 64, 3, padding=0))
        self.entry_flow = nn.Sequential(
            XceptionModule(64, (128, 128), stride=2, first_relu=False),
            XceptionModule(128, (256, 256), stride=2),
            XceptionModule(256, (728, 728), stride=2))
        self.middle_flow = nn.Sequential(*[XceptionModule(728, (728, 728, 728)) for _ in range(8)])
        self.exit_flow = nn.Sequential(
            XceptionModule(728, (728, 1024), stride=2),
            SeparableConv(1024, 1536), nn.ReLU(inplace=True),
            SeparableConv(1536, 2048), nn.ReLU(inplace=True))
        self.head = ClassifierHead(2048, num_classes, pool="avg", drop=drop_rate)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.exit_flow(self.middle_flow(self.entry_flow(self.stem(x))))


@register_model(family="xception", paper="Xception: Deep Learning with Depthwise Separable Convolutions", year=2017,
                native_size=299, min_size=32, paper_params=22_855_952, paper_top1=79.0)
def xception(*, num_classes, in_chans, img_size, **kwargs):
    del img_size  # fully convolutional with global pooling
    return Xception(num_classes=num_classes, in_chans=in_chans, **kwargs)
