"""Activations that torch does not ship, each an ``nn.Module`` so it can sit in ``nn.Sequential``,
and ``get_act_layer`` to pick an activation by name from a config."""
from __future__ import annotations

import math

import torch
import torch.nn as nn


def raised_cosine_cdf(x: torch.Tensor, a: float) -> torch.Tensor:
    """CDF of the raised-cosine distribution on [−a, a]: ½(1 + x/a + sin(πx/a)/π), 0 below, 1 above."""
    inside = 0.5 * (1.0 + x / a + torch.sin(math.pi * x / a) / math.pi)
    # Select the tails exactly: sin(±π) is not exactly 0 in floating point.
    return torch.where(x < -a, torch.zeros_like(x), torch.where(x > a, torch.ones_like(x), inside))


def kelu(x: torch.Tensor, a: float = 3.5) -> torch.Tensor:
    """x·F(x) with F the raised-cosine CDF: 0 for x < −a, x for x > a, smooth (C¹) in between."""
    return x * raised_cosine_cdf(x, a)


class KeLU(nn.Module):
    """KeLU (SdP-Net): a GELU whose gate is a compactly supported CDF, so it is exactly 0 below −a and
    exactly the identity above a. Value and slope match at ±a: f(−a) = 0, f'(−a) = 0, f(a) = a, f'(a) = 1."""

    def __init__(self, a: float = 3.5):
        super().__init__()
        if a <= 0:
            raise ValueError(f"KeLU needs a > 0, got {a}")
        self.a = float(a)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return kelu(x, self.a)

    def extra_repr(self) -> str:
        return f"a={self.a}"


_ACTIVATIONS = {"gelu": nn.GELU, "kelu": KeLU, "relu": nn.ReLU, "relu6": nn.ReLU6, "silu": nn.SiLU}


def get_act_layer(act: str | type[nn.Module]) -> type[nn.Module]:
    """An activation class from its name ('gelu', 'kelu', 'relu', 'relu6', 'silu'); classes pass through."""
    if not isinstance(act, str):
        return act
    try:
        return _ACTIVATIONS[act.lower()]
    except KeyError:
        raise ValueError(f"unknown activation {act!r}; choose one of {sorted(_ACTIVATIONS)}") from None
