"""Normalizer-free building blocks (Brock et al., 2021): scaled weight-standardised convolutions and
variance-preserving ("scaled") activations, which together replace batch normalisation.
"""
from __future__ import annotations

from functools import partial

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
    # jax.nn.gelu, which the official code calls, defaults to the tanh approximation; timm uses the exact erf.
    "gelu": lambda x, approximate="tanh": F.gelu(x, approximate=approximate),
    "silu": F.silu,
}


class ScaledActivation(nn.Module):
    """γ·g(x): a nonlinearity rescaled so a unit-Gaussian input gives a unit-variance output.
    ``gelu_approximate`` is "tanh" (jax.nn.gelu, the official code) or "none" (the exact GELU, timm)."""

    def __init__(self, kind: str = "gelu", gelu_approximate: str = "tanh"):
        super().__init__()
        if kind not in NF_ACT_GAMMAS:
            raise ValueError(f"no scaled activation {kind!r}; choose one of {sorted(NF_ACT_GAMMAS)}")
        if gelu_approximate not in ("tanh", "none"):
            raise ValueError(f"gelu_approximate must be 'tanh' or 'none', got {gelu_approximate!r}")
        self.kind = kind
        self.gamma = NF_ACT_GAMMAS[kind]
        self.fn = partial(_ACT_FNS[kind], approximate=gelu_approximate) if kind == "gelu" else _ACT_FNS[kind]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x) * self.gamma

    def extra_repr(self) -> str:
        return f"{self.kind}, gamma={self.gamma:.6f}"


class WSConv2d(nn.Conv2d):
    """Conv2d with scaled weight standardisation and a learned per-output-channel gain.

    The weight used is Ŵ = gain · (W − mean(W)) / √max(N·Var(W), eps), mean and (biased) variance
    taken over each output channel's fan-in of N = C_in/groups · k·k, so every output unit has
    ‖Ŵ_i‖ = gain_i and a unit-variance input gives a unit-variance pre-activation. eps bounds the
    product N·Var as in the official code; ``eps_mode="add"`` uses N·(Var + eps) instead, as timm does.
    ``padding`` is "symmetric" (k//2 on every side) or "same" (TensorFlow's SAME, which pads a strided conv
    more at the bottom/right, as the official JAX code). Bias is always on.
    """

    def __init__(self, in_chs: int, out_chs: int, kernel_size: int = 1, stride: int = 1, groups: int = 1,
                 eps: float = 1e-4, eps_mode: str = "bound", padding: str = "symmetric"):
        if eps_mode not in ("bound", "add") or padding not in ("symmetric", "same"):
            raise ValueError(f"WSConv2d takes eps_mode 'bound'|'add' and padding 'symmetric'|'same', "
                             f"got {eps_mode!r} and {padding!r}")
        super().__init__(in_chs, out_chs, kernel_size, stride, padding=kernel_size // 2 if padding == "symmetric"
                         else 0, groups=groups, bias=True)
        self.gain = nn.Parameter(torch.ones(out_chs, 1, 1, 1))
        self.eps = eps
        self.eps_mode = eps_mode
        self.same_padding = padding == "same"
        self.fan_in = self.weight[0].numel()

    def reset_parameters(self) -> None:
        # Called by nn.Conv2d.__init__: N(0, 1/fan_in) as the official code, though WS makes the scale moot.
        nn.init.normal_(self.weight, std=self.weight[0].numel() ** -0.5)
        nn.init.zeros_(self.bias)

    def standardized_weight(self) -> torch.Tensor:
        var, mean = torch.var_mean(self.weight, dim=(1, 2, 3), correction=0, keepdim=True)
        if self.eps_mode == "bound":
            scale = torch.rsqrt(torch.clamp(var * self.fan_in, min=self.eps)) * self.gain
        else:
            scale = torch.rsqrt((var + self.eps) * self.fan_in) * self.gain
        return (self.weight - mean) * scale

    def _pad_same(self, x: torch.Tensor) -> torch.Tensor:
        """TensorFlow SAME: total padding so that out = ceil(in / stride), the odd pixel at the bottom/right."""
        pads = []
        for size, kernel, stride in zip(x.shape[:-3:-1], self.kernel_size[::-1], self.stride[::-1]):
            total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
            pads += [total // 2, total - total // 2]
        return F.pad(x, pads)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.same_padding:
            x = self._pad_same(x)
        return F.conv2d(x, self.standardized_weight(), self.bias, self.stride, self.padding, self.dilation,
                        self.groups)
