"""A run's training recipe from the config: optimizer, per-iteration lr schedule, gradient clipping.

Schedule compression (the one rule): a paper's schedule is written in the paper's epochs; with
``paper_epochs`` > 0 every epoch-denominated schedule quantity (warmup_epochs, decay_epochs,
restart_epochs, cycle_epochs) is multiplied by ``epochs / paper_epochs``. Milestones are fractions of
the run already. So a 10-epoch run traces the paper's whole curve, squeezed: the same warm-up share,
the same number of decays, the same final lr.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn

from harness.config import NO_DECAY_KINDS, Config
from harness.optim import SAM, Lamb, RMSpropTF, adaptive_clip_grad_, classifier_parameters

# ---------------------------------------------------------------- parameter groups


def _kinds(model: nn.Module) -> dict[str, set[str]]:
    """Each parameter's kinds among NO_DECAY_KINDS, by module type and name."""
    kinds: dict[str, set[str]] = {}
    for module_name, module in model.named_modules():
        is_norm = isinstance(module, (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm)) or \
            "Norm" in type(module).__name__
        for param_name, param in module.named_parameters(recurse=False):
            name = f"{module_name}.{param_name}" if module_name else param_name
            found = set()
            if is_norm:
                found.add("norm")
            elif param_name == "bias":
                found.add("bias")
            elif param.ndim <= 1 or "gain" in param_name or "gamma" in param_name:
                found.add("gain")
            if "pos_embed" in name or "position" in name:
                found.add("pos_embed")
            if "token" in name or "register" in name:
                found.add("token")
            kinds[name] = found
    return kinds


def param_groups(model: nn.Module, weight_decay: float, no_decay: tuple[str, ...] | list[str] = NO_DECAY_KINDS
                 ) -> list[dict]:
    """Two groups: weight decay on every parameter except those of the ``no_decay`` kinds."""
    kinds = _kinds(model)
    decay, skip = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (skip if kinds.get(name, set()) & set(no_decay) else decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": skip, "weight_decay": 0.0}]


def effective_lr(cfg: Config) -> float:
    """The recipe's lr, scaled linearly from its reference batch to this run's batch when it names one."""
    return cfg.lr * cfg.batch_size / cfg.lr_reference_batch if cfg.lr_reference_batch > 0 else cfg.lr


def build_optimizer(cfg: Config, model: nn.Module) -> torch.optim.Optimizer:
    groups = param_groups(model, cfg.weight_decay, cfg.no_weight_decay)
    lr, name = effective_lr(cfg), cfg.optimizer
    if name == "sgd":
        base = torch.optim.SGD(groups, lr=lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0)
    elif name == "adam":  # coupled L2 decay, as the ViT paper's Adam
        base = torch.optim.Adam(groups, lr=lr, betas=tuple(cfg.betas), eps=cfg.opt_eps)
    elif name == "adamw":
        base = torch.optim.AdamW(groups, lr=lr, betas=tuple(cfg.betas), eps=cfg.opt_eps)
    elif name == "rmsprop_tf":
        base = RMSpropTF(groups, lr=lr, alpha=cfg.rmsprop_alpha, eps=cfg.opt_eps, momentum=cfg.momentum)
    else:
        base = Lamb(groups, lr=lr, betas=tuple(cfg.betas), eps=cfg.opt_eps)
    return SAM(base, rho=cfg.sam_rho, adaptive=cfg.sam_adaptive) if cfg.sam else base


class GradientClipping:
    """AGC (unit-wise, the final classifier excluded) and then global-norm clipping, each when the recipe asks."""

    def __init__(self, cfg: Config, model: nn.Module):
        self.agc_clip, self.agc_eps, self.max_norm = cfg.agc_clip, cfg.agc_eps, cfg.grad_clip
        head = classifier_parameters(model)
        self.agc_params = [p for p in model.parameters() if p.requires_grad and p not in head]
        self.params = [p for p in model.parameters() if p.requires_grad]

    @property
    def active(self) -> bool:
        return self.agc_clip > 0 or self.max_norm > 0

    def __call__(self) -> None:
        if self.agc_clip > 0:
            adaptive_clip_grad_(self.agc_params, self.agc_clip, self.agc_eps)
        if self.max_norm > 0:
            nn.utils.clip_grad_norm_(self.params, self.max_norm)


# ---------------------------------------------------------------- schedules


def compression(cfg: Config) -> float:
    """run epochs per paper epoch: the factor on every epoch-denominated schedule quantity."""
    return cfg.epochs / cfg.paper_epochs if cfg.paper_epochs > 0 else 1.0


def lr_factor(cfg: Config, step: int, steps_per_epoch: int) -> float:
    """Multiplier of the base lr for optimizer step ``step`` (0-based) of ``steps_per_epoch × epochs``."""
    scale = compression(cfg)
    total = steps_per_epoch * cfg.epochs
    base = effective_lr(cfg)
    floor, start = cfg.min_lr / base, cfg.warmup_lr / base
    warmup = int(round(cfg.warmup_epochs * scale * steps_per_epoch))
    if step < warmup:
        ramp = (step + 1) / warmup  # the last warm-up step runs at the base rate
        if cfg.scheduler == "onecycle":
            ramp = 0.5 * (1 - math.cos(math.pi * ramp))
        return start + (1.0 - start) * ramp
    progress = min(1.0, (step - warmup) / max(1, total - warmup))   # of the decay phase
    epochs_in = (step - warmup) / steps_per_epoch                       # run epochs since warm-up
    name = cfg.scheduler

    def anneal(fraction: float) -> float:
        return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * fraction))

    if name == "constant":
        return 1.0
    if name == "step":  # ×gamma every decay_epochs, staircase ("÷10 every 30 epochs", "×0.97 every 2.4")
        return max(floor, cfg.gamma ** math.floor(epochs_in / (cfg.decay_epochs * scale)))
    if name == "exponential":
        return max(floor, cfg.gamma ** (epochs_in / (cfg.decay_epochs * scale)))
    if name == "multistep":
        return cfg.gamma ** sum(step / total >= m for m in cfg.milestones)
    if name in ("cosine", "onecycle"):
        return anneal(progress)
    if name == "linear":
        return floor + (1.0 - floor) * (1.0 - progress)
    if name == "poly":
        return floor + (1.0 - floor) * (1.0 - progress) ** cfg.poly_power
    if name == "cosine_restarts":
        period, t = cfg.restart_epochs * scale, epochs_in
        while t >= period:
            t, period = t - period, period * cfg.restart_mult
        return anneal(t / period)
    # cyclic: the triangle between min_lr and lr, one cycle every cycle_epochs, as torch's CyclicLR
    phase = (epochs_in / (cfg.cycle_epochs * scale)) % 1.0
    return floor + (1.0 - floor) * (1.0 - abs(2.0 * phase - 1.0))


def build_scheduler(cfg: Config, optimizer: torch.optim.Optimizer, steps_per_epoch: int):
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(cfg, step, steps_per_epoch))
