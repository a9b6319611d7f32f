"""An exponential moving average of a model's weights (Polyak averaging), evaluated beside the raw model.

ema ← d·ema + (1−d)·w after every optimizer step, over parameters and floating buffers (BatchNorm
statistics); integer buffers are copied. With ``warmup`` the decay is min(d, (1+t)/(10+t)) at update t,
TF1's form used by EfficientNet and NFNet: early on the average follows the weights closely, so short
runs (a few hundred steps against the papers' hundreds of thousands) still get a useful average.
"""
from __future__ import annotations

import copy

import torch
import torch.nn as nn


class ModelEma:
    def __init__(self, model: nn.Module, decay: float, warmup: bool = True):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must lie between 0 and 1, got {decay}")
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.decay, self.warmup, self.updates = decay, warmup, 0

    def current_decay(self) -> float:
        t = self.updates
        return min(self.decay, (1 + t) / (10 + t)) if self.warmup else self.decay

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        d = self.current_decay()
        averaged, current = [], []
        for ema_value, value in zip(self.module.state_dict().values(), model.state_dict().values()):
            if ema_value.is_floating_point():
                averaged.append(ema_value)
                current.append(value.detach().to(ema_value.dtype))
            else:
                ema_value.copy_(value)
        torch._foreach_lerp_(averaged, current, 1.0 - d)
        self.updates += 1

    def state_dict(self) -> dict:
        return {"module": self.module.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        self.module.load_state_dict(state["module"])
        self.updates = int(state["updates"])
