"""Batch augmentation on the training device: RandAugment / AutoAugment / TrivialAugment and random
erasing from torchvision.transforms.v2 on uint8 batches, and mixup / cutmix with soft targets.

torchvision's v2 transforms draw one operation (and one erasing box) for a whole batched tensor. To
keep images apart, a batch is cut into groups of ``aug_group_size`` images and each group draws its
own; ``aug_group_size: 1`` is exact per-image augmentation, larger groups are faster. The operations
run on the dataset's stored resolution (8 px for digits, 32 px for CIFAR), before resizing.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from harness.config import Config


def build_batch_augment(cfg: Config) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """The recipe's image operations as one function of a uint8 (N, C, H, W) batch, or None."""
    from torchvision.transforms import v2
    ops = []
    if cfg.auto_augment == "randaugment":
        ops.append(v2.RandAugment(num_ops=cfg.randaug_layers, magnitude=cfg.randaug_magnitude))
    elif cfg.auto_augment == "autoaugment":
        policy = v2.AutoAugmentPolicy.CIFAR10 if cfg.dataset.startswith("cifar") else v2.AutoAugmentPolicy.IMAGENET
        ops.append(v2.AutoAugment(policy))
    elif cfg.auto_augment == "trivialaugment":
        ops.append(v2.TrivialAugmentWide())
    if cfg.random_erasing > 0:
        ops.append(v2.RandomErasing(p=cfg.random_erasing, value=0))
    if not ops:
        return None
    transform = v2.Compose(ops)
    group = cfg.aug_group_size

    def augment(images: torch.Tensor) -> torch.Tensor:
        return torch.cat([transform(part) for part in images.split(group)])
    return augment


class MixupCutmix:
    """Per batch, with probability ``prob``: mixup (λ ~ Beta(α, α), images blended) or cutmix (a box of
    area 1−λ pasted, λ corrected to the box actually cut), chosen with ``switch_prob`` when both are on.
    Each image is paired with the batch reversed; targets become λ·onehot(y) + (1−λ)·onehot(y_pair), so
    they sum to 1 (label smoothing is applied by the loss on top)."""

    def __init__(self, num_classes: int, mixup_alpha: float = 0.0, cutmix_alpha: float = 0.0, prob: float = 1.0,
                 switch_prob: float = 0.5):
        self.num_classes, self.mixup_alpha, self.cutmix_alpha = num_classes, mixup_alpha, cutmix_alpha
        self.prob, self.switch_prob = prob, switch_prob

    @classmethod
    def from_config(cls, cfg: Config, num_classes: int) -> MixupCutmix | None:
        if cfg.mixup_alpha == 0 and cfg.cutmix_alpha == 0:
            return None
        return cls(num_classes, cfg.mixup_alpha, cfg.cutmix_alpha, cfg.mixup_prob, cfg.mixup_switch_prob)

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        target = F.one_hot(y, self.num_classes).to(x.dtype)
        if torch.rand(()) >= self.prob:
            return x, target
        use_cutmix = self.cutmix_alpha > 0 and (self.mixup_alpha == 0 or torch.rand(()) < self.switch_prob)
        alpha = self.cutmix_alpha if use_cutmix else self.mixup_alpha
        lam = float(torch.distributions.Beta(alpha, alpha).sample())
        paired = x.flip(0)
        if use_cutmix:
            h, w = x.shape[-2:]
            cut_h, cut_w = int(h * (1 - lam) ** 0.5), int(w * (1 - lam) ** 0.5)
            cy, cx = int(torch.randint(h, ())), int(torch.randint(w, ()))
            top, bottom = max(cy - cut_h // 2, 0), min(cy + cut_h // 2, h)
            left, right = max(cx - cut_w // 2, 0), min(cx + cut_w // 2, w)
            x = x.clone()
            x[..., top:bottom, left:right] = paired[..., top:bottom, left:right]
            lam = 1.0 - (bottom - top) * (right - left) / (h * w)
        else:
            x = x * lam + paired * (1.0 - lam)
        return x, target * lam + target.flip(0) * (1.0 - lam)
