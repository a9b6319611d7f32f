"""gMLP — Liu et al., "Pay Attention to MLPs", NeurIPS 2021.

Variants: gMLP-Ti (30 blocks, d=128, d_ffn=768) and gMLP-S (30 blocks, d=256, d_ffn=1536), 16×16
patches at 224 px. The seed alias ``gmlp`` builds gMLP-S, the paper's headline ImageNet model
(79.6 %); gMLP-Ti is the cheap one for quick runs.

The model: patches → linear projection → N × [LayerNorm → Linear(d→d_ffn) → GELU → spatial gating
unit → Linear(d_ffn/2→d) → residual] → LayerNorm → mean over patches → Linear. No position
embeddings. The spatial gating unit splits the channels into (z1, z2), normalises z2, mixes it across
patches with one n×n Linear and returns z1 ⊙ f(z2). Its weights start near 0 and its bias at 1, so at
init f(z2) ≈ 1 and the unit passes z1 through: every block starts as a plain channel MLP.

Paper stochastic-depth survival: Ti 1.00, S 0.95 (``drop_path_rate`` 0 / 0.05, spread linearly);
the default here is 0 and a recipe sets it. The spatial Linear has one weight per patch position, so a
model is built for one ``img_size``; another size is a ``ModelConfigError``.

Deviations: none known in the architecture.
"""
from __future__ import annotations

import functools

import torch
import torch.nn as nn
from einops import rearrange

from zoo.layers import DropPath, PatchMlpClassifier, linear_drop_path_rates
from zoo.registry import register_model

PAPER = "Pay Attention to MLPs"

LayerNorm = functools.partial(nn.LayerNorm, eps=1e-6)


class SpatialGatingUnit(nn.Module):
    """(z1, z2) → z1 ⊙ (W·LayerNorm(z2) + b) with W mixing across patches; ≈ z1 at init."""

    def __init__(self, channels: int, num_patches: int):
        super().__init__()
        self.norm = nn.LayerNorm(channels // 2)
        self.spatial_proj = nn.Linear(num_patches, num_patches)
        # Near-zero weights and unit bias make the gate ≈ 1, which the paper found key to training.
        nn.init.normal_(self.spatial_proj.weight, std=1e-6)
        nn.init.ones_(self.spatial_proj.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z1, z2 = x.chunk(2, dim=-1)
        gate = self.spatial_proj(rearrange(self.norm(z2), "b n c -> b c n"))
        return z1 * rearrange(gate, "b c n -> b n c")


class GmlpBlock(nn.Module):
    def __init__(self, num_patches: int, dim: int, ffn_dim: int, drop_path: float = 0.0):
        super().__init__()
        self.norm = LayerNorm(dim)
        self.proj_in = nn.Linear(dim, ffn_dim)
        self.act = nn.GELU()
        self.sgu = SpatialGatingUnit(ffn_dim, num_patches)
        self.proj_out = nn.Linear(ffn_dim // 2, dim)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.drop_path(self.proj_out(self.sgu(self.act(self.proj_in(self.norm(x))))))


class Gmlp(PatchMlpClassifier):
    def __init__(self, img_size: int = 224, patch_size: int = 16, in_chans: int = 3, num_classes: int = 1000,
                 dim: int = 256, depth: int = 30, ffn_dim: int = 1536, drop_rate: float = 0.0,
                 drop_path_rate: float = 0.0):
        if ffn_dim % 2:
            raise ValueError(f"gMLP splits the hidden channels in two, so ffn_dim must be even, got {ffn_dim}")
        block = functools.partial(GmlpBlock, dim=dim, ffn_dim=ffn_dim)
        super().__init__(img_size, patch_size, in_chans, num_classes, dim, block,
                         linear_drop_path_rates(drop_path_rate, depth), norm_layer=LayerNorm, drop_rate=drop_rate)


def _gmlp(config: dict, overrides: dict) -> Gmlp:
    """``overrides`` (num_classes, in_chans, img_size and any architecture option) win over ``config``."""
    return Gmlp(**{**config, **overrides})


_META = dict(family="gmlp", paper=PAPER, year=2021, native_size=224, min_size=16)


@register_model(**_META, paper_params=5_867_328, paper_top1=72.3)
def gmlp_ti16_224(**kwargs):
    return _gmlp(dict(patch_size=16, dim=128, depth=30, ffn_dim=768), kwargs)


@register_model(**_META, aliases=("gmlp",), paper_params=19_422_656, paper_top1=79.6)
def gmlp_s16_224(**kwargs):
    return _gmlp(dict(patch_size=16, dim=256, depth=30, ffn_dim=1536), kwargs)


# Small-input variants (ours, not the paper's): gMLP-Ti and -S with 4-pixel patches, 64 tokens at 32 px
# (16-pixel patches leave 4 tokens there, and the spatial gating unit would mix almost nothing).
_META_SMALL_INPUT = dict(_META, native_size=32, min_size=4)


@register_model(**_META_SMALL_INPUT)
def gmlp_ti_patch4_32(**kwargs):
    """gMLP-Ti with 4×4 patches for 32-px inputs (the paper's gMLP-Ti/16 sees 196 tokens at 224 px)."""
    return _gmlp(dict(patch_size=4, dim=128, depth=30, ffn_dim=768), kwargs)


@register_model(**_META_SMALL_INPUT)
def gmlp_s_patch4_32(**kwargs):
    """gMLP-S with 4×4 patches for 32-px inputs (the paper's gMLP-S/16 sees 196 tokens at 224 px)."""
    return _gmlp(dict(patch_size=4, dim=256, depth=30, ffn_dim=1536), kwargs)
