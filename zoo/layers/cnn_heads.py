"""Classifier parts of the early CNNs that do not fit the pool → Linear head.

``ConvPoolHead`` is the "class maps" head of Network in Network: a 1×1 conv to one map per class, then
global average pooling. ``aux_avg_pool`` is the pooling of the Inception auxiliary classifiers.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from zoo.layers.classifier import ClassifierHead


class ConvPoolHead(ClassifierHead):
    """dropout → 1×1 conv to ``num_classes`` maps → activation → global average pool.

    With an activation after the conv the order matters (pooling first would not be the same model),
    so this head classifies the map and pools the scores. ``pre_logits`` gives the pooled input features,
    of width ``in_features`` like every other head.
    """

    def __init__(self, in_features: int, num_classes: int, drop: float = 0.0, act_layer=nn.ReLU):
        self.act_layer = act_layer
        super().__init__(in_features, num_classes, pool="avg", drop=drop)

    def _make_fc(self, num_classes: int) -> nn.Module:
        if num_classes <= 0:
            return nn.Identity()
        return nn.Sequential(nn.Conv2d(self.in_features, num_classes, 1), self.act_layer())

    def forward(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.drop(x)
        return x.mean((2, 3)) if pre_logits else self.fc(x).mean((2, 3))


def aux_avg_pool(x: torch.Tensor, grid: int) -> torch.Tensor:
    """The Inception auxiliary heads' 5×5/3 average pool, then an adaptive pool to ``grid``.

    At the native input the 5×5/3 pool already gives ``grid`` × ``grid`` (GoogLeNet: 14 → 4, Inception-v3:
    17 → 5) and the adaptive pool is the identity; on larger maps it brings the pool's output to the grid
    the auxiliary FC layer was built for, and maps smaller than the window are pooled adaptively alone.
    """
    if min(x.shape[-2:]) >= 5:
        x = F.avg_pool2d(x, kernel_size=5, stride=3)
    return F.adaptive_avg_pool2d(x, grid)
