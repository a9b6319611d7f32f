"""The encoder block of the Compact Transformers code (Hassani et al., 2021), shared by CCT and ViT-Lite.

It is not the plain pre-norm block: after the attention residual the *residual stream itself* is
layer-normalised, and the MLP branch then reads and adds to that normalised stream::

    x = x + drop_path(attn(pre_norm(x)))
    x = norm1(x)
    x = x + drop_path(mlp(x))

The official CCT and ViT-Lite models are trained with this order, so both families use it to stay
faithful (same parameter count as the pre-norm block: two LayerNorms).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from zoo.layers.drop import DropPath
from zoo.layers.transformer import Attention, Mlp


class CCTBlock(nn.Module):
    """CCT's encoder block: attention (pre-norm) → LayerNorm on the residual stream → MLP (no norm)."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 2.0, qkv_bias: bool = False,
                 drop: float = 0.0, attn_drop: float = 0.1, drop_path: float = 0.0, act_layer=nn.GELU):
        super().__init__()
        self.pre_norm = nn.LayerNorm(dim)
        self.attn = Attention(dim, num_heads, qkv_bias=qkv_bias, attn_drop=attn_drop, proj_drop=drop)
        self.norm1 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer=act_layer, drop=drop)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.pre_norm(x)))
        x = self.norm1(x)
        return x + self.drop_path(self.mlp(x))


def init_cct_weights(model: nn.Module) -> None:
    """The Compact Transformers init: Linear trunc-normal(0.02) with zero bias, LayerNorm (1, 0), conv He-normal."""
    for m in model.modules():
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight)
