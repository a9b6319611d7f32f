"""ResMLP — Touvron et al., "ResMLP: Feedforward networks for image classification with data-efficient
training", IEEE TPAMI 2022 (arXiv 2105.03404, 2021).

Variants: ResMLP-S12 (d=384, 12 blocks, LayerScale init 0.1) and ResMLP-S24 (d=384, 24 blocks,
LayerScale init 1e-5), both with 16×16 patches at 224 px (196 patches).

The model: patches → linear projection → N × [Aff → one Linear across patches (196→196, shared over
channels) → LayerScale → residual; Aff → MLP (ratio 4, GELU) → LayerScale → residual] → Aff → mean
over patches → Linear. Aff is the paper's affine "normalisation" x·α + β (α = 1, β = 0 at init, no
statistics), which replaces LayerNorm. Stochastic depth uses one *uniform* rate for every block, as the
paper does.

The token-mixing Linear has one weight per patch position, so a model is built for one ``img_size``:
another size is a ``ModelConfigError`` (at build time when the patch does not tile it, at forward
otherwise).

Deviations: none known in the architecture; weights use trunc-normal(0.02) init as the released code.
"""
from __future__ import annotations

import functools

import torch
import torch.nn as nn
from einops import rearrange

from zoo.layers import DropPath, LayerScale, Mlp, PatchMlpClassifier
from zoo.registry import register_model

PAPER = "ResMLP: Feedforward networks for image classification with data-efficient training"


class Affine(nn.Module):
    """Aff(x) = α ⊙ x + β per channel: ResMLP's normalisation-free replacement for LayerNorm."""

    def __init__(self, dim: int):
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(dim))
        self.beta = nn.Parameter(torch.zeros(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.addcmul(self.beta, self.alpha, x)


class ResMlpBlock(nn.Module):
    """Cross-patch Linear then cross-channel MLP, each behind Aff and LayerScale."""

    def __init__(self, num_patches: int, dim: int, mlp_ratio: float = 4.0, layer_scale_init: float = 0.1,
                 drop: float = 0.0, drop_path: float = 0.0):
        super().__init__()
        self.norm1 = Affine(dim)
        self.token_mix = nn.Linear(num_patches, num_patches)
        self.ls1 = LayerScale(dim, layer_scale_init)
        self.norm2 = Affine(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop=drop)
        self.ls2 = LayerScale(dim, layer_scale_init)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mixed = self.token_mix(rearrange(self.norm1(x), "b n c -> b c n"))
        x = x + self.drop_path(self.ls1(rearrange(mixed, "b c n -> b n c")))
        return x + self.drop_path(self.ls2(self.mlp(self.norm2(x))))


class ResMlp(PatchMlpClassifier):
    def __init__(self, img_size: int = 224, patch_size: int = 16, in_chans: int = 3, num_classes: int = 1000,
                 dim: int = 384, depth: int = 12, mlp_ratio: float = 4.0, layer_scale_init: float = 0.1,
                 drop_rate: float = 0.0, drop_path_rate: float = 0.0):
        block = functools.partial(ResMlpBlock, dim=dim, mlp_ratio=mlp_ratio, layer_scale_init=layer_scale_init,
                                  drop=drop_rate)
        super().__init__(img_size, patch_size, in_chans, num_classes, dim, block, [drop_path_rate] * depth,
                         norm_layer=Affine, drop_rate=drop_rate)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)


def _resmlp(config: dict, overrides: dict) -> ResMlp:
    """``overrides`` (num_classes, in_chans, img_size and any architecture option) win over ``config``."""
    return ResMlp(**{**config, **overrides})


_META = dict(family="resmlp", paper=PAPER, year=2021, native_size=224, min_size=16)


@register_model(**_META, aliases=("resmlp",), paper_params=15_350_872, paper_top1=76.6)
def resmlp_12(**kwargs):
    return _resmlp(dict(patch_size=16, dim=384, depth=12, layer_scale_init=0.1), kwargs)


@register_model(**_META)
def resmlp_24(**kwargs):
    return _resmlp(dict(patch_size=16, dim=384, depth=24, layer_scale_init=1e-5), kwargs)


# Small-input variant (ours, not the paper's): ResMLP-12 with 4-pixel patches, 64 tokens at 32 px (16-pixel
# patches leave 4 tokens there, and the cross-patch layer would mix almost nothing).
@register_model(**dict(_META, native_size=32, min_size=4))
def resmlp_12_patch4_32(**kwargs):
    """ResMLP-12 with 4×4 patches for 32-px inputs (the paper's ResMLP-12 sees 196 tokens at 224 px)."""
    return _resmlp(dict(patch_size=4, dim=384, depth=12, layer_scale_init=0.1), kwargs)
