"""Optimizers and per-iteration learning-rate schedules built from the config."""
from __future__ import annotations

import math

import torch
import torch.nn as nn

from harness.config import Config
from harness.errors import UsageError

NO_DECAY_NAME_PARTS = ("pos_embed", "cls_token", "token")


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on weight matrices and conv kernels only: not on norms, biases, gains, tokens."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        skip = param.ndim <= 1 or any(part in name for part in NO_DECAY_NAME_PARTS)
        (no_decay if skip else decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def effective_lr(cfg: Config) -> float:
    """The recipe's lr, scaled linearly from its reference batch to this run's batch when it names one."""
    return cfg.lr * cfg.batch_size / cfg.lr_reference_batch if cfg.lr_reference_batch > 0 else cfg.lr


def build_optimizer(cfg: Config, model: nn.Module) -> torch.optim.Optimizer:
    groups = param_groups(model, cfg.weight_decay)
    lr = effective_lr(cfg)
    name = cfg.optimizer.lower()
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=cfg.momentum, nesterov=cfg.nesterov)
    if name == "adam":
        return torch.optim.Adam(groups, lr=lr, betas=tuple(cfg.betas))
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, betas=tuple(cfg.betas))
    raise UsageError(f"unknown optimizer '{cfg.optimizer}': choose one of sgd, adam, adamw")


def lr_factor(cfg: Config, step: int, total_steps: int) -> float:
    """Multiplier of the base lr after ``step`` optimizer steps of ``total_steps``."""
    warmup = int(round(cfg.warmup_epochs * total_steps / cfg.epochs))
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total_steps - warmup)
    floor = cfg.min_lr / effective_lr(cfg)
    if cfg.scheduler == "constant":
        return 1.0
    if cfg.scheduler == "cosine":
        return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    if cfg.scheduler == "step":
        return cfg.gamma ** sum(progress >= m for m in cfg.milestones)
    raise UsageError(f"unknown scheduler '{cfg.scheduler}': choose one of constant, cosine, step")


def build_scheduler(cfg: Config, optimizer: torch.optim.Optimizer, steps_per_epoch: int):
    total = steps_per_epoch * cfg.epochs
    lr_factor(cfg, 0, total)  # an unknown scheduler name fails here, before training starts
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(cfg, step, total))
