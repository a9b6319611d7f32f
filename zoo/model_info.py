"""What the zoo knows about a model without building it, and the error for one it cannot build.

A leaf module: it imports nothing from the project, so the registry, its plug-ins (``zoo.external``)
and the layers can all use it without importing each other.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch.nn as nn


class ModelConfigError(ValueError):
    """A model was asked for that cannot be built: unknown name, or arguments it cannot take."""


@dataclass(frozen=True)
class ModelInfo:
    name: str
    builder: Callable[..., nn.Module] = field(repr=False)
    family: str
    paper: str
    year: int | None  # None for library models (torchvision, timm), which have no one paper
    native_size: int
    min_size: int
    aliases: tuple[str, ...] = ()
    paper_params: int | None = None
    paper_top1: float | None = None
    aux_loss_weights: tuple[float, ...] = ()
