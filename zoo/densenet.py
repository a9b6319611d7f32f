"""DenseNet — Huang, Liu, van der Maaten & Weinberger, "Densely Connected Convolutional Networks",
CVPR 2017.

Every layer of a dense block sees the concatenation of all earlier maps of the block and adds ``growth``
(k) new ones. Layers are pre-activation: BN-ReLU-3×3 conv, or with bottlenecks ("B") BN-ReLU-1×1 conv
(4k)-BN-ReLU-3×3 conv (k). Transitions between blocks are BN-ReLU-1×1 conv-2×2 average pool; with
compression ("C") the 1×1 conv keeps θ = 0.5 of the channels. The head is BN-ReLU-global pool-FC.

Variants:
  * ``densenet121``: ImageNet DenseNet-BC, k=32, blocks (6, 12, 24, 16), 7×7/2 stem of 2k channels
    and a 3×3/2 max-pool. 7,978,856 params.
  * ``densenet40``: the CIFAR DenseNet (L=40, k=12, no bottleneck, no compression), 3×3 stem of 16
    channels, three blocks of 12 layers. 1,019,722 params at 10 classes.
  * ``densenet_bc_100``: the CIFAR DenseNet-BC (L=100, k=12), stem of 2k channels, three blocks of 16
    bottleneck layers. 769,162 params at 10 classes.
The paper's "dropout 0.2 after each conv" is for its runs without augmentation: ``drop_rate`` (default 0).
Convs use He init, as in the authors' code; BN weights 1 and biases 0; the FC bias 0.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from zoo.layers import ClassifierHead, ImageClassifier, he_init_conv_bn
from zoo.registry import register_model

PAPER = "Densely Connected Convolutional Networks"


def _norm_act_conv(in_chs: int, out_chs: int, kernel: int, drop_rate: float) -> nn.Sequential:
    """The pre-activation unit BN → ReLU → conv (no bias) → dropout."""
    return nn.Sequential(nn.BatchNorm2d(in_chs), nn.ReLU(inplace=True),
                         nn.Conv2d(in_chs, out_chs, kernel, padding=kernel // 2, bias=False),
                         nn.Dropout(drop_rate))


class DenseLayer(nn.Module):
    """Adds ``growth`` maps computed from everything before it in the block."""

    def __init__(self, in_chs: int, growth: int, bottleneck: bool, drop_rate: float):
        super().__init__()
        inner = 4 * growth if bottleneck else in_chs
        self.reduce = _norm_act_conv(in_chs, inner, 1, drop_rate) if bottleneck else nn.Identity()
        self.conv = _norm_act_conv(inner, growth, 3, drop_rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, self.conv(self.reduce(x))], dim=1)


class Transition(nn.Sequential):
    """BN → ReLU → 1×1 conv to ``out_chs`` → 2×2 average pool."""

    def __init__(self, in_chs: int, out_chs: int, drop_rate: float):
        super().__init__(_norm_act_conv(in_chs, out_chs, 1, drop_rate), nn.AvgPool2d(2, 2))


class DenseNet(ImageClassifier):
    def __init__(self, block_depths: tuple[int, ...], growth: int, num_classes: int = 1000, in_chans: int = 3,
                 stem_width: int | None = None, bottleneck: bool = True, compression: float = 0.5,
                 imagenet_stem: bool = True, drop_rate: float = 0.0):
        super().__init__()
        chs = stem_width or 2 * growth
        if imagenet_stem:
            self.stem = nn.Sequential(
                nn.Conv2d(in_chans, chs, 7, 2, 3, bias=False), nn.BatchNorm2d(chs), nn.ReLU(inplace=True),
                nn.MaxPool2d(3, 2, padding=1))
        else:
            self.stem = nn.Conv2d(in_chans, chs, 3, padding=1, bias=False)
        blocks = []
        for i, depth in enumerate(block_depths):
            layers = []
            for _ in range(depth):
                layers.append(DenseLayer(chs, growth, bottleneck, drop_rate))
                chs += growth
            blocks.append(nn.Sequential(*layers))
            if i < len(block_depths) - 1:
                out_chs = int(chs * compression)
                blocks.append(Transition(chs, out_chs, drop_rate))
                chs = out_chs
        self.blocks = nn.Sequential(*blocks)
        self.final_act = nn.Sequential(nn.BatchNorm2d(chs), nn.ReLU(inplace=True))
        self.head = ClassifierHead(chs, num_classes, pool="avg")
        self._init_weights()

    def _init_weights(self) -> None:
        he_init_conv_bn(self)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.final_act(self.blocks(self.stem(x)))


def _densenet(block_depths, growth, *, num_classes, in_chans, img_size, **kwargs) -> DenseNet:
    del img_size  # fully convolutional with global pooling
    return DenseNet(block_depths, growth, num_classes=num_classes, in_chans=in_chans, **kwargs)


@register_model(family="densenet", paper=PAPER, year=2017, native_size=224, min_size=29,
                paper_params=7_978_856, paper_top1=74.98)
def densenet121(**kwargs):
    return _densenet((6, 12, 24, 16), 32, **kwargs)


@register_model(family="densenet", paper=PAPER, year=2017, native_size=32, min_size=4, aliases=("densenet",))
def densenet40(**kwargs):
    return _densenet((12, 12, 12), 12, stem_width=16, bottleneck=False, compression=1.0, imagenet_stem=False,
                     **kwargs)


@register_model(family="densenet", paper=PAPER, year=2017, native_size=32, min_size=4)
def densenet_bc_100(**kwargs):
    return _densenet((16, 16, 16), 12, imagenet_stem=False, **kwargs)
