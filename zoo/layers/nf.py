"""Normalizer-free building blocks (Brock et al., 2021): scaled weight-standardised convolutions and
variance-preserving ("scaled") activations, which together replace batch normalisation.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

# γ such that Var(γ·g(x)) ≈ 1 for x ~ N(0, 1): the constants of the official NFNet code (base.py).
# They are empirical: for ReLU the closed form is √(2/(1−1/π)) = 1.7129, and γ² Var ≈ 1.001–1.002.
NF_ACT_GAMMAS = {
    "relu": 1.7139588594436646,
    "gelu": 1.7015043497085571,
    "silu": 1.7881293296813965,
}

_ACT_FNS = {
    "relu": F.relu,
    # jax.nn.gelu, which the official code calls, defaults to the tanh approximation.
    "gelu": lambda x: F.gelu(x, approximate="tanh"),
    "silu": F.silu,
}


class ScaledActivation(nn.Module):
    """γ·g(x): a nonlinearity rescaled so a unit-Gaussian input gives a unit-variance output."""

    def __init__(self, kind: str = "gelu"):
        super().__init__()
        if kind not in NF_ACT_GAMMAS:
            raise ValueError(f"no scaled activation {kind!r}; choose one of {sorted(NF_ACT_GAMMAS)}")
        self.kind = kind
        self.gamma = NF_ACT_GAMMAS[kind]
        self.fn = _ACT_FNS[kind]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x) * self.gamma

    def extra_repr(self) -> str:
        return f"{self.kind}, gamma={self.gamma:.6f}"


class WSConv2d(nn.Conv2d):
    """Conv2d with scaled weight standardisation and a learned per-output-channel gain.

    The weight used is Ŵ = gain · (W − mean(W)) / √max(N·Var(W), eps), mean and (biased) variance
    taken over each output channel's fan-in of N = C_in/groups · k·k, so every output unit has
    ‖Ŵ_i‖ = gain_i and a unit-variance input gives a unit-variance pre-activation. eps bounds the
    product N·Var as in the official code (timm adds its eps to Var instead). Bias is always on.
    """

    def __init__(self, in_chs: int, out_chs: int, kernel_size: int = 1, stride: int = 1, groups: int = 1,
                 eps: float = 1e-4):
        super().__init__(in_chs, out_chs, kernel_size, stride, padding=kernel_size // 2, groups=groups, bias=True)
        self.gain = nn.Parameter(torch.ones(out_chs, 1, 1, 1))
        self.eps = eps
        self.fan_in = self.weight[0].numel()

    def reset_parameters(self) -> None:
        # Called by nn.Conv2d.__init__: N(0, 1/fan_in) as the official code, though WS makes the scale moot.
        nn.init.normal_(self.weight, std=self.weight[0].numel() ** -0.5)
        nn.init.zeros_(self.bias)

    def standardized_weight(self) -> torch.Tensor:
        var, mean = torch.var_mean(self.weight, dim=(1, 2, 3), correction=0, keepdim=True)
        scale = torch.rsqrt(torch.clamp(var * self.fan_in, min=self.eps)) * self.gain
        return (self.weight - mean) * scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.standardized_weight(), self.bias, self.stride, self.padding, self.dilation,
                        self.groups)
