"""The classifier head and the small API every zoo model shares.

``forward_features(x)`` is the trunk, ``forward_head(x, pre_logits=False)`` pools and classifies,
``reset_classifier(num_classes)`` swaps the last layer, ``num_features`` is the pooled width.
"""
from __future__ import annotations

import torch
import torch.nn as nn


class ClassifierHead(nn.Module):
    """pool → dropout → Linear. ``pool`` is 'avg' (over H, W of a feature map), 'token' (first token),
    'mean' (mean over tokens) or 'none' (input already pooled)."""

    POOLS = ("avg", "token", "mean", "none")

    def __init__(self, in_features: int, num_classes: int, pool: str = "avg", drop: float = 0.0, bias: bool = True):
        super().__init__()
        if pool not in self.POOLS:
            raise ValueError(f"unknown pooling {pool!r}; choose one of {self.POOLS}")
        self.in_features = in_features
        self.pool = pool
        self.bias = bias
        self.drop = nn.Dropout(drop)
        self.fc = self._make_fc(num_classes)

    def _make_fc(self, num_classes: int) -> nn.Module:
        return nn.Linear(self.in_features, num_classes, bias=self.bias) if num_classes > 0 else nn.Identity()

    def reset(self, num_classes: int) -> None:
        self.fc = self._make_fc(num_classes)

    def forward(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if self.pool == "avg":
            x = x.mean((2, 3))
        elif self.pool == "token":
            x = x[:, 0]
        elif self.pool == "mean":
            x = x.mean(1)
        x = self.drop(x)
        return x if pre_logits else self.fc(x)


class ImageClassifier(nn.Module):
    """Base class: subclasses define ``forward_features`` and set ``self.head`` to a ClassifierHead."""

    head: ClassifierHead

    @property
    def num_features(self) -> int:
        return self.head.in_features

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return self.head(x, pre_logits=pre_logits)

    def reset_classifier(self, num_classes: int) -> None:
        self.head.reset(num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))
