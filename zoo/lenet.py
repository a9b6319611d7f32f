"""LeNet-5 — LeCun, Bottou, Bengio & Haffner, "Gradient-Based Learning Applied to Document
Recognition", Proc. IEEE 1998, with BatchNorm (the seed repository's ``cnn``).

``lenet5`` keeps the paper's layer plan for 28×28 digits: C1 6@5×5 (padded by 2, so a 28×28 image gives
the paper's 28×28 maps, as the paper padded its digits to 32×32), 2×2 subsampling, C3 16@5×5, 2×2
subsampling, C5 120 units over the 16×5×5 maps, F6 84, output layer.

Deliberate deviations, all of them the common modern reading of the network: BatchNorm after every
conv and hidden FC layer, ReLU instead of the scaled tanh, plain 2×2 average pooling instead of the
trainable subsampling, C3 connected to all six C1 maps instead of the paper's partial connection table,
a linear output layer instead of the RBF units. An adaptive average pool to 5×5 sits before C5 so any
input from 12 px up works (at 28 px it is the identity).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from zoo.layers import ClassifierHead, ConvNormAct, ImageClassifier
from zoo.registry import register_model


class LeNet5(ImageClassifier):
    def __init__(self, num_classes: int = 10, in_chans: int = 1, drop_rate: float = 0.0):
        super().__init__()
        self.features = nn.Sequential(
            ConvNormAct(in_chans, 6, 5, padding=2),   # C1
            nn.AvgPool2d(2),                          # S2
            ConvNormAct(6, 16, 5, padding=0),         # C3
            nn.AvgPool2d(2),                          # S4
            nn.AdaptiveAvgPool2d(5),
        )
        self.fc = nn.Sequential(
            nn.Flatten(),
            nn.Linear(16 * 5 * 5, 120, bias=False), nn.BatchNorm1d(120), nn.ReLU(inplace=True),  # C5
            nn.Linear(120, 84, bias=False), nn.BatchNorm1d(84), nn.ReLU(inplace=True),          # F6
        )
        self.head = ClassifierHead(84, num_classes, pool="none", drop=drop_rate)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


@register_model(family="lenet", paper="Gradient-Based Learning Applied to Document Recognition", year=1998,
                native_size=28, min_size=12, aliases=("cnn",))
def lenet5(*, num_classes, in_chans, img_size, **kwargs):
    del img_size  # the adaptive pool before C5 takes any size from the minimum up
    return LeNet5(num_classes=num_classes, in_chans=in_chans, **kwargs)
