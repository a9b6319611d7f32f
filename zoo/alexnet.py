"""AlexNet — Krizhevsky, Sutskever & Hinton, "ImageNet Classification with Deep Convolutional
Neural Networks", NeurIPS 2012.

``alexnet`` is the paper's two-GPU network on one device: the convolutions that the paper splits
across two GPUs (conv2, conv4, conv5) are grouped convolutions with two groups, conv3 and the fully
connected layers see both halves. Local response normalisation (k=2, n=5, α=1e-4, β=0.75) follows
conv1 and conv2; overlapping 3×3/2 max-pools follow conv1, conv2 and conv5; dropout 0.5 before FC6
and FC7. Native input 227 (the paper's "224" does not tile with an 11×11/4 conv). 60,965,224 params.

``alexnet_tv`` is the single-tower network of torchvision (after Krizhevsky's "One weird trick for
parallelizing convolutional neural networks", 2014): widths 64-192-384-256-256, conv1 padded by 2 for a
224 px input, no LRN, no groups, the same classifier. 61,100,840 params. It keeps PyTorch's default
initialisation, under which torchvision's reference weights were trained.

Deviation: an adaptive average pool to 6×6 sits before the classifier so that any input from 67 px up
works (at 227 px it is the identity). Initialisation follows the paper: N(0, 0.01) weights, biases 1 in
conv2, conv4, conv5 and the hidden FC layers, 0 elsewhere.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from zoo.layers import ClassifierHead, ImageClassifier
from zoo.registry import register_model


def _conv(in_chs: int, out_chs: int, kernel: int, stride: int = 1, padding: int = 0, groups: int = 1):
    return nn.Sequential(nn.Conv2d(in_chs, out_chs, kernel, stride, padding, groups=groups), nn.ReLU(inplace=True))


def _classifier(drop_rate: float) -> nn.Sequential:
    """FC6 and FC7 over the 256×6×6 pooled maps, each after dropout."""
    return nn.Sequential(
        nn.Flatten(), nn.Dropout(drop_rate), nn.Linear(256 * 6 * 6, 4096), nn.ReLU(inplace=True),
        nn.Dropout(drop_rate), nn.Linear(4096, 4096), nn.ReLU(inplace=True))


class AlexNet(ImageClassifier):
    def __init__(self, num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.5):
        super().__init__()
        self.features = nn.Sequential(
            _conv(in_chans, 96, 11, stride=4),
            nn.LocalResponseNorm(size=5, alpha=1e-4, beta=0.75, k=2.0),
            nn.MaxPool2d(3, 2),
            _conv(96, 256, 5, padding=2, groups=2),
            nn.LocalResponseNorm(size=5, alpha=1e-4, beta=0.75, k=2.0),
            nn.MaxPool2d(3, 2),
            _conv(256, 384, 3, padding=1),
            _conv(384, 384, 3, padding=1, groups=2),
            _conv(384, 256, 3, padding=1, groups=2),
            nn.MaxPool2d(3, 2),
            nn.AdaptiveAvgPool2d(6),
        )
        self.fc = _classifier(drop_rate)
        self.head = ClassifierHead(4096, num_classes, pool="none")
        self._init_weights()

    def _init_weights(self) -> None:
        ones_bias = {self.features[3][0], self.features[7][0], self.features[8][0], self.fc[2], self.fc[5]}
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.normal_(m.weight, 0.0, 0.01)
                nn.init.constant_(m.bias, 1.0 if m in ones_bias else 0.0)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


class AlexNetSingleTower(ImageClassifier):
    """The torchvision AlexNet: one tower, 64-192-384-256-256, no LRN."""

    def __init__(self, num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.5):
        super().__init__()
        self.features = nn.Sequential(
            _conv(in_chans, 64, 11, stride=4, padding=2),
            nn.MaxPool2d(3, 2),
            _conv(64, 192, 5, padding=2),
            nn.MaxPool2d(3, 2),
            _conv(192, 384, 3, padding=1),
            _conv(384, 256, 3, padding=1),
            _conv(256, 256, 3, padding=1),
            nn.MaxPool2d(3, 2),
            nn.AdaptiveAvgPool2d(6),
        )
        self.fc = _classifier(drop_rate)
        self.head = ClassifierHead(4096, num_classes, pool="none")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


@register_model(family="alexnet", paper="ImageNet Classification with Deep Convolutional Neural Networks",
                year=2012, native_size=227, min_size=67, paper_params=60_965_224,
                paper_top1=59.3)
def alexnet(*, num_classes, in_chans, img_size, **kwargs):
    del img_size
    return AlexNet(num_classes=num_classes, in_chans=in_chans, **kwargs)


@register_model(family="alexnet", paper="One weird trick for parallelizing convolutional neural networks",
                year=2014, native_size=224, min_size=63, paper_params=61_100_840, paper_top1=56.5)
def alexnet_tv(*, num_classes, in_chans, img_size, **kwargs):
    del img_size
    return AlexNetSingleTower(num_classes=num_classes, in_chans=in_chans, **kwargs)
