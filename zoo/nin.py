"""Network in Network — Lin, Chen & Yan, "Network In Network", ICLR 2014 (arXiv 2013).

Each "mlpconv" block is a k×k conv followed by two 1×1 convs (a small MLP slid over the image), all
with ReLU. The last block's last 1×1 conv makes one map per class and global average pooling turns the
maps into scores: there are no fully connected layers. Dropout 0.5 follows every mlpconv block but the
last, as in the paper.

Variants (the paper does not tabulate widths; both follow the authors' Caffe models):
  * ``nin_cifar``: three blocks (5×5:192,160,96) (5×5:192,192,192) (3×3:192,192,classes), 3×3/2
    max-pools after the first two. 966,986 params at 10 classes.
  * ``nin_imagenet``: the Caffe-zoo four-block ImageNet net, (11×11/4:96,96,96) (5×5:256,256,256)
    (3×3:384,384,384) (3×3:1024,1024,classes), 3×3/2 max-pools after the first three. 7,595,176 params.

Pools round up (Caffe's ceil mode), which the authors' nets were built with: 32 → 16 → 8 on CIFAR.
The paper gives no initialisation; PyTorch's default is kept.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from zoo.layers import ConvPoolHead, ImageClassifier, conv_relu
from zoo.registry import register_model

PAPER = "Network In Network"


def _first_conv(in_chs: int, out_chs: int, kernel: int, stride: int) -> nn.Module:
    """A block's k×k conv: 'same' padding, except the strided ImageNet stem conv, which is unpadded."""
    return conv_relu(in_chs, out_chs, kernel, stride, padding=0 if stride > 1 else None)


def mlpconv(in_chs: int, widths: tuple[int, int, int], kernel: int, stride: int = 1) -> nn.Sequential:
    """k×k conv → 1×1 conv → 1×1 conv, each with ReLU."""
    return nn.Sequential(_first_conv(in_chs, widths[0], kernel, stride),
                         conv_relu(widths[0], widths[1], 1),
                         conv_relu(widths[1], widths[2], 1))


class NiN(ImageClassifier):
    """``blocks`` lists (kernel, stride, widths) per mlpconv block; the last block's last width is the
    class count and is left out, it lives in the head."""

    def __init__(self, blocks: list[tuple[int, int, tuple[int, ...]]], num_classes: int = 1000,
                 in_chans: int = 3, drop_rate: float = 0.5):
        super().__init__()
        layers, in_chs = [], in_chans
        *hidden, (last_kernel, last_stride, last_widths) = blocks
        for kernel, stride, widths in hidden:
            layers += [mlpconv(in_chs, widths, kernel, stride), nn.MaxPool2d(3, 2, ceil_mode=True),
                       nn.Dropout(drop_rate)]
            in_chs = widths[-1]
        layers += [_first_conv(in_chs, last_widths[0], last_kernel, last_stride),
                   conv_relu(last_widths[0], last_widths[1], 1)]
        self.features = nn.Sequential(*layers)
        self.head = ConvPoolHead(last_widths[1], num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


@register_model(family="nin", paper=PAPER, year=2014, native_size=32, min_size=4, aliases=("nin",))
def nin_cifar(*, num_classes, in_chans, img_size, **kwargs):
    del img_size  # fully convolutional with global pooling
    blocks = [(5, 1, (192, 160, 96)), (5, 1, (192, 192, 192)), (3, 1, (192, 192))]
    return NiN(blocks, num_classes=num_classes, in_chans=in_chans, **kwargs)


@register_model(family="nin", paper=PAPER, year=2014, native_size=224, min_size=39, paper_params=7_595_176)
def nin_imagenet(*, num_classes, in_chans, img_size, **kwargs):
    del img_size
    blocks = [(11, 4, (96, 96, 96)), (5, 1, (256, 256, 256)), (3, 1, (384, 384, 384)), (3, 1, (1024, 1024))]
    return NiN(blocks, num_classes=num_classes, in_chans=in_chans, **kwargs)
