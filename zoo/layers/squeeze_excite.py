"""Squeeze-and-excitation (Hu et al., 2018): channel gates from globally pooled features."""
from __future__ import annotations

import torch
import torch.nn as nn


class SqueezeExcite(nn.Module):
    """x · gate(W2 · act(W1 · mean_hw(x))), with 1×1 convs for W1 and W2.

    ``rd_channels`` is the bottleneck width: C/r for SENet, 0.25 × block input for EfficientNet.
    ``scale`` multiplies the gate (NFNet uses 2 to keep the signal's variance).
    """

    def __init__(self, channels: int, rd_channels: int, act_layer=nn.ReLU, gate_layer=nn.Sigmoid,
                 scale: float = 1.0):
        super().__init__()
        self.reduce = nn.Conv2d(channels, rd_channels, 1, bias=True)
        self.act = act_layer()
        self.expand = nn.Conv2d(rd_channels, channels, 1, bias=True)
        self.gate = gate_layer()
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)
        s = self.gate(self.expand(self.act(self.reduce(s))))
        return x * (s * self.scale if self.scale != 1.0 else s)
