"""Stochastic depth (Huang et al., 2016): drop a residual branch per sample while training."""
from __future__ import annotations

import torch
import torch.nn as nn


def drop_path(x: torch.Tensor, p: float, training: bool, scale_by_keep: bool = True) -> torch.Tensor:
    if p == 0.0 or not training:
        return x
    keep = 1.0 - p
    mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
    return x * (mask / keep if scale_by_keep else mask)


class DropPath(nn.Module):
    """Identity at eval. ``scale_by_keep=False`` is NFNet's variant: no 1/keep rescale in training."""

    def __init__(self, p: float = 0.0, scale_by_keep: bool = True):
        super().__init__()
        self.p = p
        self.scale_by_keep = scale_by_keep

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return drop_path(x, self.p, self.training, self.scale_by_keep)

    def extra_repr(self) -> str:
        return f"p={self.p}"


def linear_drop_path_rates(max_rate: float, depth: int) -> list[float]:
    """0 → max_rate linearly over ``depth`` blocks, the schedule most papers use."""
    if depth == 1:
        return [0.0]
    return [max_rate * i / (depth - 1) for i in range(depth)]
