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

    def forward(self, x: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
        """γ·scale·g(x); ``scale`` folds a following constant (NFNet's β) into the same pass."""
        out = self.fn(x)
        # GELU and SiLU keep their input for the backward, so their output can be scaled in place (no second
        # activation-sized tensor); ReLU keeps its output, which must stay as it is.
        return out * (self.gamma * scale) if self.kind == "relu" else out.mul_(self.gamma * scale)

    def extra_repr(self) -> str:
        return f"{self.kind}, gamma={self.gamma:.6f}"


def _rows(t: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """A 4-D weight (or its gradient) as (out channels, fan-in) in the weight's memory order: a view, not a copy."""
    return (t.permute(0, 2, 3, 1) if channels_last else t).reshape(t.shape[0], -1)


def _unrows(rows: torch.Tensor, like: torch.Tensor, channels_last: bool) -> torch.Tensor:
    if channels_last:
        out_chs, in_chs, height, width = like.shape
        return rows.view(out_chs, height, width, in_chs).permute(0, 3, 1, 2)
    return rows.view(like.shape)


def _is_channels_last(weight: torch.Tensor) -> bool:
    return not weight.is_contiguous() and weight.is_contiguous(memory_format=torch.channels_last)


def _standardize(weight: torch.Tensor, gain: torch.Tensor, eps: float, eps_mode: str):
    """(Ŵ, mean, scale, live): Ŵ = gain · (W − mean) · scale with scale = 1/√max(N·Var, eps) ("bound") or
    1/√(N·(Var + eps)) ("add"); ``live`` is 0 where the bound holds the scale constant (no gradient through Var).

    The mean is taken of the row shifted by its first element (the shifted-data algorithm): a constant row then
    centres to exactly zero, and the sum sees no large common offset. N·Var is the squared norm of the centred
    row (two passes, no cancellation). Every pass stays in the weight's dtype: a float64 accumulation would copy
    all 46.5 M weights of NFNet-F0 to double every step, which costs more than the rest of the standardisation.
    """
    channels_last = _is_channels_last(weight)
    rows = _rows(weight, channels_last)
    fan_in = rows.shape[1]
    first = rows[:, :1]
    centred = rows - first
    shift_mean = centred.mean(1, keepdim=True)
    centred.sub_(shift_mean)
    mean = first + shift_mean
    n_var = torch.linalg.vector_norm(centred, dim=1, keepdim=True).square()
    if eps_mode == "bound":
        scale, live = torch.rsqrt(n_var.clamp(min=eps)), (n_var > eps).to(rows.dtype)
    else:
        scale, live = torch.rsqrt(n_var + fan_in * eps), torch.ones_like(n_var)
    out = centred.mul_(scale * gain.view(-1, 1))
    return _unrows(out, weight, channels_last), mean, scale, live


class _StandardizedWeight(torch.autograd.Function):
    """Weight standardisation with its backward written out. Autograd's graph of var_mean, sub and mul is about
    3× slower on a CPU (a Welford pass and a full-size temporary per op), and NFNet-F0 standardises 46.5 M
    weights every step, whatever the batch size: with x̂ = (W − mean) · scale and dY the output's gradient,
    dgain = Σ dY·x̂ and dW = gain · scale · (dY − mean(dY) − x̂ · dgain · live), sums over each fan-in."""

    @staticmethod
    def forward(ctx, weight, gain, eps, eps_mode):
        out, mean, scale, live = _standardize(weight, gain, eps, eps_mode)
        ctx.save_for_backward(weight, gain, mean, scale, live)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        weight, gain, mean, scale, live = ctx.saved_tensors
        channels_last = _is_channels_last(weight)
        rows, grad_rows = _rows(weight, channels_last), _rows(grad_out, channels_last)
        grad_sum = grad_rows.sum(1, keepdim=True)
        grad_gain = scale * (torch.linalg.vecdot(grad_rows, rows).unsqueeze(1) - mean * grad_sum)
        gain_scale = gain.view(-1, 1) * scale
        projection = grad_gain * live * scale
        # dW = gain·scale·dY − gain·scale·projection·W + gain·scale·(projection·mean − mean(dY)): two passes.
        grad_rows = torch.addcmul(gain_scale * (projection * mean - grad_sum / rows.shape[1]), rows,
                                  -gain_scale * projection).addcmul_(grad_rows, gain_scale)
        return _unrows(grad_rows, weight, channels_last), grad_gain.view_as(gain), None, None


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
        if torch.is_grad_enabled() and (self.weight.requires_grad or self.gain.requires_grad):
            return _StandardizedWeight.apply(self.weight, self.gain, self.eps, self.eps_mode)
        return _standardize(self.weight, self.gain, self.eps, self.eps_mode)[0]

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
