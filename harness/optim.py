"""What torch.optim lacks: RMSprop in TensorFlow's form, LAMB, SAM, and adaptive gradient clipping.

- ``RMSpropTF``: TF1's RMSProp as the Inception and EfficientNet papers used it: the mean square starts
  at 1, epsilon sits inside the square root, and the learning rate is folded into the momentum buffer
  (so a changing lr affects only new updates). Weight decay is L2 added to the gradient.
- ``Lamb`` (You et al., "Large Batch Optimization for Deep Learning", 2020): Adam's bias-corrected
  update plus decoupled weight decay, scaled per tensor by the trust ratio ‖w‖ / ‖update‖.
- ``SAM`` (Foret et al., "Sharpness-Aware Minimization", 2021) and its adaptive form ASAM (Kwon et al.
  2021): wraps any base optimizer; ``perturb`` moves the weights to w + ρ·g/‖g‖ (ASAM: ρ·w²g/‖|w|g‖),
  the caller takes the gradient there, ``restore`` moves them back, ``step`` runs the base optimizer.
- ``adaptive_clip_grad_`` (Brock et al., "High-Performance Large-Scale Image Recognition Without
  Normalization", 2021): unit-wise clipping of ‖G_i‖ to λ·max(‖W_i‖, eps).
"""
from __future__ import annotations

import contextlib
from typing import Iterable

import torch
import torch.nn as nn


class _TensorwiseOptimizer(torch.optim.Optimizer):
    """``step(closure)`` for optimizers that update every tensor on its own, in ``_update(p, state, group)``."""

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    self._update(p, self.state[p], group)
        return loss

    def _update(self, p: torch.Tensor, state: dict, group: dict) -> None:
        raise NotImplementedError


class RMSpropTF(_TensorwiseOptimizer):
    """ms ← ρ·ms + (1−ρ)·g²;  buf ← μ·buf + lr·g/√(ms + ε);  w ← w − buf   (ms starts at 1, as in TF1)."""

    def __init__(self, params, lr: float, alpha: float = 0.9, eps: float = 1e-3, momentum: float = 0.9,
                 weight_decay: float = 0.0):
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, momentum=momentum, weight_decay=weight_decay))

    def _update(self, p: torch.Tensor, state: dict, group: dict) -> None:
        grad = p.grad
        if group["weight_decay"]:
            grad = grad.add(p, alpha=group["weight_decay"])
        if not state:
            state["square_avg"] = torch.ones_like(p)
            state["momentum_buffer"] = torch.zeros_like(p)
        square_avg = state["square_avg"]
        square_avg.mul_(group["alpha"]).addcmul_(grad, grad, value=1 - group["alpha"])
        update = grad / (square_avg + group["eps"]).sqrt()
        buf = state["momentum_buffer"]
        buf.mul_(group["momentum"]).add_(update, alpha=group["lr"])
        p.sub_(buf)


class Lamb(_TensorwiseOptimizer):
    """u = m̂/(√v̂ + ε) + λ·w;  w ← w − lr·(‖w‖/‖u‖)·u   (trust ratio 1 where either norm is 0)."""

    def __init__(self, params, lr: float, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-6,
                 weight_decay: float = 0.0):
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay))

    def _update(self, p: torch.Tensor, state: dict, group: dict) -> None:
        beta1, beta2 = group["betas"]
        if not state:
            state["step"] = torch.zeros((), dtype=torch.float32)
            state["exp_avg"] = torch.zeros_like(p)
            state["exp_avg_sq"] = torch.zeros_like(p)
        state["step"] += 1
        step = state["step"]  # a 0-dim CPU tensor: no device sync for the bias corrections
        state["exp_avg"].lerp_(p.grad, 1 - beta1)
        state["exp_avg_sq"].mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
        m_hat = state["exp_avg"] / (1 - beta1 ** step)
        v_hat = state["exp_avg_sq"] / (1 - beta2 ** step)
        update = m_hat / (v_hat.sqrt() + group["eps"]) + group["weight_decay"] * p
        w_norm, u_norm = p.norm(), update.norm()
        trust = torch.where((w_norm > 0) & (u_norm > 0), w_norm / u_norm, torch.ones_like(w_norm))
        p.sub_(update * (group["lr"] * trust))


class SAM(torch.optim.Optimizer):
    """Sharpness-aware minimisation around any base optimizer; shares the base's param groups (so lr
    schedules see them) and keeps only the perturbation in its own state.

    One step: backward → ``perturb()`` → forward/backward at the perturbed weights (with BatchNorm
    statistics frozen: ``frozen_batchnorm_stats``) → ``restore()`` → optional clipping → ``step()``.
    ``step(closure)`` does all of it for a closure that zeroes the gradients, computes the loss and
    calls backward.
    """

    def __init__(self, base: torch.optim.Optimizer, rho: float = 0.05, adaptive: bool = False, eps: float = 1e-12):
        if rho <= 0:
            raise ValueError(f"SAM's rho must be positive, got {rho}")
        self.base, self.rho, self.adaptive, self.eps = base, rho, adaptive, eps
        super().__init__(base.param_groups, dict(base.defaults))
        self.param_groups = base.param_groups  # one set of groups: a scheduler changes the base's lr
        self.perturbation: dict[torch.Tensor, torch.Tensor] = {}

    def _params_with_grad(self) -> list[torch.nn.Parameter]:
        return [p for group in self.param_groups for p in group["params"] if p.grad is not None]

    @torch.no_grad()
    def perturb(self) -> None:
        params = self._params_with_grad()
        scaled = [(p.abs() * p.grad) if self.adaptive else p.grad for p in params]
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in scaled]))
        scale = self.rho / (norm + self.eps)
        for p, g in zip(params, scaled):
            e = (g * p.abs() if self.adaptive else g) * scale  # ASAM: ρ·w²g/‖|w|g‖
            p.add_(e)
            self.perturbation[p] = e

    @torch.no_grad()
    def restore(self) -> None:
        for p, e in self.perturbation.items():
            p.sub_(e)
        self.perturbation.clear()

    def step(self, closure=None):
        if closure is None:
            return self.base.step()
        with torch.enable_grad():
            loss = closure()
        self.perturb()
        with torch.enable_grad():
            closure()
        self.restore()
        self.base.step()
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.base.zero_grad(set_to_none=set_to_none)

    def state_dict(self):
        return self.base.state_dict()

    def load_state_dict(self, state_dict) -> None:
        self.base.load_state_dict(state_dict)


@contextlib.contextmanager
def frozen_batchnorm_stats(model: nn.Module):
    """Run a forward pass without changing any BatchNorm running statistics (SAM's second pass)."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    saved = [{k: v.clone() for k, v in m.named_buffers(recurse=False)} for m in norms]
    try:
        yield
    finally:
        with torch.no_grad():
            for m, buffers in zip(norms, saved):
                for name, value in buffers.items():
                    getattr(m, name).copy_(value)


def unit_norm(x: torch.Tensor) -> torch.Tensor:
    """Per output unit: over all dims but the first for matrices and kernels; the whole tensor for vectors."""
    if x.ndim <= 1:
        return torch.linalg.vector_norm(x)
    return torch.linalg.vector_norm(x, dim=tuple(range(1, x.ndim)), keepdim=True)


@torch.no_grad()
def adaptive_clip_grad_(params: Iterable[torch.Tensor], clip: float, eps: float = 1e-3) -> None:
    """AGC: where ‖G_i‖/max(‖W_i‖, eps) > clip, scale G_i to clip·max(‖W_i‖, eps)·G_i/‖G_i‖ (in place)."""
    for p in params:
        if p.grad is None:
            continue
        max_norm = unit_norm(p).clamp_min(eps) * clip
        grad_norm = unit_norm(p.grad)
        factor = max_norm / grad_norm.clamp_min(1e-6)
        p.grad.mul_(torch.where(grad_norm > max_norm, factor, torch.ones_like(factor)))


def classifier_parameters(model: nn.Module) -> set[nn.Parameter]:
    """The final classifier's parameters: the model's ``head.fc`` (ClassifierHead), if it has one."""
    try:
        return set(model.get_submodule("head.fc").parameters())
    except AttributeError:
        return set()
