"""Vision Transformer — Dosovitskiy et al., "An Image is Worth 16x16 Words: Transformers for Image
Recognition at Scale", ICLR 2021.

Variants: ViT-Ti/16, ViT-S/16 (from DeiT's widths), ViT-B/16 (d=768, 12 layers, 12 heads, MLP 3072),
and ViT-Lite-7/4 for 32 px CIFAR input (Hassani et al., "Escaping the Big Data Paradigm with Compact
Transformers", 2021: patch 4, d=256, 7 layers, 4 heads, MLP ratio 2, no qkv bias).

The model: patches → linear projection → [class token; tokens] + learned 1-D position embedding →
pre-norm encoder blocks → LayerNorm → class token (or mean of tokens) → Linear. Dropout follows the
paper: after the position embedding and after every dense layer except qkv.

The position table is built for ``img_size``; an input of another size (a multiple of the patch) gets
the table resized bicubically on the fly, so a model built at 224 can be evaluated at 384.
"""
from __future__ import annotations

import torch
import torch.nn as nn
from einops import repeat

from zoo.layers import (ClassifierHead, ImageClassifier, PatchEmbed, TransformerBlock, linear_drop_path_rates,
                        resample_pos_embed)
from zoo.registry import register_model

PAPER = "An Image is Worth 16x16 Words: Transformers for Image Recognition at Scale"


class VisionTransformer(ImageClassifier):
    def __init__(self, img_size: int = 224, patch_size: int = 16, in_chans: int = 3, num_classes: int = 1000,
                 dim: int = 768, depth: int = 12, num_heads: int = 12, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 pool: str = "token", drop_rate: float = 0.0, attn_drop_rate: float = 0.0,
                 drop_path_rate: float = 0.0):
        super().__init__()
        if pool not in ("token", "mean"):
            raise ValueError(f"ViT pooling must be 'token' or 'mean', got {pool!r}")
        self.patch_embed = PatchEmbed(img_size, patch_size, in_chans, dim)
        self.num_prefix_tokens = 1 if pool == "token" else 0
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim)) if pool == "token" else None
        self.pos_embed = nn.Parameter(torch.zeros(1, self.num_prefix_tokens + self.patch_embed.num_patches, dim))
        self.pos_drop = nn.Dropout(drop_rate)
        self.blocks = nn.Sequential(*[
            TransformerBlock(dim, num_heads, mlp_ratio, qkv_bias=qkv_bias, drop=drop_rate, attn_drop=attn_drop_rate,
                             drop_path=rate)
            for rate in linear_drop_path_rates(drop_path_rate, depth)])
        self.norm = nn.LayerNorm(dim)
        self.head = ClassifierHead(dim, num_classes, pool=pool)
        self._init_weights()

    def _init_weights(self) -> None:
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        if self.cls_token is not None:
            nn.init.normal_(self.cls_token, std=1e-6)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def _pos_embed(self, x: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        pos = resample_pos_embed(self.pos_embed, grid, self.num_prefix_tokens)
        if self.cls_token is not None:
            x = torch.cat([repeat(self.cls_token, "1 1 d -> b 1 d", b=x.shape[0]), x], dim=1)
        return self.pos_drop(x + pos)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        grid = (x.shape[-2] // self.patch_embed.patch_size, x.shape[-1] // self.patch_embed.patch_size)
        x = self._pos_embed(self.patch_embed(x), grid)
        return self.norm(self.blocks(x))


def _vit(*, num_classes, in_chans, img_size, **kwargs) -> VisionTransformer:
    return VisionTransformer(img_size=img_size, in_chans=in_chans, num_classes=num_classes, **kwargs)


_META = dict(family="vit", paper=PAPER, year=2021, native_size=224, min_size=16)


@register_model(**_META, paper_params=5_717_416, paper_top1=72.2)
def vit_tiny_patch16_224(**kwargs):
    return _vit(patch_size=16, dim=192, depth=12, num_heads=3, **kwargs)


@register_model(**_META, paper_params=22_050_664, paper_top1=79.8)
def vit_small_patch16_224(**kwargs):
    return _vit(patch_size=16, dim=384, depth=12, num_heads=6, **kwargs)


@register_model(**_META, aliases=("vit",), paper_params=86_567_656, paper_top1=77.9)
def vit_base_patch16_224(**kwargs):
    return _vit(patch_size=16, dim=768, depth=12, num_heads=12, **kwargs)


@register_model(family="vit", paper="Escaping the Big Data Paradigm with Compact Transformers", year=2021,
                native_size=32, min_size=4)
def vit_lite_7_4(**kwargs):
    return _vit(patch_size=4, dim=256, depth=7, num_heads=4, mlp_ratio=2.0, qkv_bias=False, **kwargs)
