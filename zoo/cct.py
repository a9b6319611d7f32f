"""Compact Convolutional Transformer — Hassani et al., "Escaping the Big Data Paradigm with Compact
Transformers", 2021 (built from the paper and the facts of the official SHI-Labs code).

CCT-L/K×C: L encoder layers, a convolutional tokenizer of C conv layers with kernel K. Variants:
CCT-2/3×2 and CCT-4/3×2 (d=128, 2 heads, MLP ratio 1), CCT-6/3×1 and CCT-7/3×1 (d=256, 4 heads, MLP
ratio 2) for 32 px CIFAR input, and CCT-14/7×2 (d=384, 6 heads, MLP ratio 3) for 224 px ImageNet.
CCT-7/3×1 has 3,760,139 parameters at 10 classes, CCT-14/7×2 22,367,273 at 1000.

* Tokenizer: per layer Conv(K×K, stride max(1, K//2 − 1), padding max(1, K//2), no bias) → ReLU →
  MaxPool(3, 2, 1); widths in → 64 → … → d. CCT-7/3×1 at 32 px gives 16×16 = 256 tokens, CCT-14/7×2 at
  224 px 14×14 = 196 tokens. There is no class token.
* Position embedding: learned (trunc-normal std 0.2, the default), fixed sinusoids (``pos_embed="sine"``,
  1-D over the token index with interleaved sin/cos channels, as the official code's table) or none. The
  learned table is built for ``img_size`` and bicubically resampled (as a 2-D grid) for other sizes; the
  sine table is recomputed for the token count.
* Encoder: ``zoo.layers.CCTBlock`` — the official order of operations, which layer-normalises the residual
  stream between attention and MLP — with qkv without bias, attention dropout 0.1, no other dropout and
  stochastic depth rising linearly 0 → 0.1 over the layers; then a final LayerNorm.
* Sequence pooling instead of a class token: token weights softmax(Linear(d → 1)) over the sequence,
  pooled = Σ weights · tokens, then Linear(d → classes).
* Init: Linear trunc-normal(0.02) with zero bias, LayerNorm (1, 0), conv He-normal.

Deviation (deliberate fix): the official ``cct_*_sine`` factories silently build a learned table; here
``cct_7_3x1_32_sine`` really uses fixed sinusoids, kept in a buffer — so it has 65,536 fewer parameters than
the learned variant (3,694,603 at 10 classes).
"""
from __future__ import annotations

import torch
import torch.nn as nn
from einops import rearrange

from zoo.layers import (CCTBlock, ClassifierHead, ConvNormAct, ImageClassifier, init_cct_weights,
                        linear_drop_path_rates, resample_pos_embed, sincos_1d)
from zoo.model_info import ModelConfigError
from zoo.registry import register_model

PAPER = "Escaping the Big Data Paradigm with Compact Transformers"


class ConvTokenizer(nn.Module):
    """Conv (no bias) → ReLU → 3×3/2 max-pool, ``num_layers`` times; returns the grid (B, dim, H', W')."""

    def __init__(self, in_chans: int, dim: int, kernel_size: int, num_layers: int, hidden_chs: int = 64):
        super().__init__()
        self.stride = max(1, kernel_size // 2 - 1)
        self.padding = max(1, kernel_size // 2)
        self.kernel_size = kernel_size
        widths = [in_chans] + [hidden_chs] * (num_layers - 1) + [dim]
        self.layers = nn.Sequential(*[
            nn.Sequential(ConvNormAct(w_in, w_out, kernel_size, self.stride, self.padding, bias=False,
                                      norm_layer=None),
                          nn.MaxPool2d(3, stride=2, padding=1))
            for w_in, w_out in zip(widths[:-1], widths[1:])])

    def grid_size(self, img_size: int) -> int:
        """Tokens per side for an ``img_size`` input."""
        side = img_size
        for _ in self.layers:
            side = (side + 2 * self.padding - self.kernel_size) // self.stride + 1
            side = (side - 1) // 2 + 1  # the 3×3/2 max-pool with padding 1
        return side

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class SequencePool(nn.Module):
    """Attention-weighted mean of the tokens: softmax over tokens of a learned score (d + 1 parameters)."""

    def __init__(self, dim: int):
        super().__init__()
        self.score = nn.Linear(dim, 1)

    def weights(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, N, d) tokens → (B, N) pooling weights, summing to 1 over the tokens."""
        return self.score(tokens).squeeze(-1).softmax(dim=-1)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return torch.einsum("bn,bnd->bd", self.weights(tokens), tokens)


def sine_table(num_tokens: int, dim: int) -> torch.Tensor:
    """(1, N, dim) 1-D sinusoids of the token index, channels interleaved sin, cos, sin, cos, …"""
    table = sincos_1d(torch.arange(num_tokens), dim)
    return rearrange(table, "n (sincos k) -> 1 n (k sincos)", sincos=2)


class CompactTransformer(ImageClassifier):
    """Conv tokenizer → position embedding → CCT blocks → LayerNorm → sequence pooling → Linear."""

    def __init__(self, img_size: int = 224, in_chans: int = 3, num_classes: int = 1000, dim: int = 384,
                 depth: int = 14, num_heads: int = 6, mlp_ratio: float = 3.0, kernel_size: int = 7,
                 num_conv_layers: int = 2, pos_embed: str = "learned", drop_rate: float = 0.0,
                 attn_drop_rate: float = 0.1, drop_path_rate: float = 0.1):
        super().__init__()
        if pos_embed not in ("learned", "sine", "none"):
            raise ModelConfigError(f"CCT pos_embed must be 'learned', 'sine' or 'none', got {pos_embed!r}")
        self.tokenizer = ConvTokenizer(in_chans, dim, kernel_size, num_conv_layers)
        self.grid = self.tokenizer.grid_size(img_size)
        num_tokens = self.grid ** 2
        self.pos_embed_kind = pos_embed
        self.pos_embed = nn.Parameter(torch.zeros(1, num_tokens, dim)) if pos_embed == "learned" else None
        if pos_embed == "sine":
            self.register_buffer("sine_pos_embed", sine_table(num_tokens, dim), persistent=False)
        self.pos_drop = nn.Dropout(drop_rate)
        self.blocks = nn.Sequential(*[
            CCTBlock(dim, num_heads, mlp_ratio, drop=drop_rate, attn_drop=attn_drop_rate, drop_path=rate)
            for rate in linear_drop_path_rates(drop_path_rate, depth)])
        self.norm = nn.LayerNorm(dim)
        self.pool = SequencePool(dim)
        self.head = ClassifierHead(dim, num_classes, pool="none")
        init_cct_weights(self)
        if self.pos_embed is not None:
            nn.init.trunc_normal_(self.pos_embed, std=0.2)

    def _position_table(self, grid: tuple[int, int], device: torch.device) -> torch.Tensor | None:
        if self.pos_embed_kind == "learned":
            return resample_pos_embed(self.pos_embed, grid)
        if self.pos_embed_kind == "sine":
            num_tokens = grid[0] * grid[1]
            if num_tokens == self.sine_pos_embed.shape[1]:
                return self.sine_pos_embed
            return sine_table(num_tokens, self.sine_pos_embed.shape[-1]).to(device)
        return None

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) → normalised tokens (B, N, d)."""
        x = self.tokenizer(x)
        grid = (x.shape[-2], x.shape[-1])
        x = rearrange(x, "b d h w -> b (h w) d")
        pos = self._position_table(grid, x.device)
        if pos is not None:
            x = x + pos.to(x.dtype)
        return self.norm(self.blocks(self.pos_drop(x)))

    def sequence_pool_weights(self, x: torch.Tensor) -> torch.Tensor:
        """The (B, N) weights sequence pooling gives each token of the images ``x``."""
        return self.pool.weights(self.forward_features(x))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return self.head(self.pool(x), pre_logits=pre_logits)


def _cct(depth: int, kernel_size: int, num_conv_layers: int, *, num_classes, in_chans, img_size,
         **kwargs) -> CompactTransformer:
    dim, num_heads, mlp_ratio = {2: (128, 2, 1.0), 4: (128, 2, 1.0), 6: (256, 4, 2.0), 7: (256, 4, 2.0),
                                 14: (384, 6, 3.0)}[depth]
    return CompactTransformer(img_size=img_size, in_chans=in_chans, num_classes=num_classes, dim=dim, depth=depth,
                              num_heads=num_heads, mlp_ratio=mlp_ratio, kernel_size=kernel_size,
                              num_conv_layers=num_conv_layers, **kwargs)


# min_size is the tokenizer's overall stride: the smallest input that one whole token covers.
_CIFAR = dict(family="cct", paper=PAPER, year=2021, native_size=32)


@register_model(**_CIFAR, min_size=4)
def cct_2_3x2_32(**kwargs):
    return _cct(2, 3, 2, **kwargs)


@register_model(**_CIFAR, min_size=4)
def cct_4_3x2_32(**kwargs):
    return _cct(4, 3, 2, **kwargs)


@register_model(**_CIFAR, min_size=2)
def cct_6_3x1_32(**kwargs):
    return _cct(6, 3, 1, **kwargs)


@register_model(**_CIFAR, min_size=2, aliases=("cct_7_3x1",))
def cct_7_3x1_32(**kwargs):
    return _cct(7, 3, 1, **kwargs)


@register_model(**_CIFAR, min_size=2)
def cct_7_3x1_32_sine(**kwargs):
    return _cct(7, 3, 1, **{"pos_embed": "sine", **kwargs})


@register_model(family="cct", paper=PAPER, year=2021, native_size=224, min_size=16, paper_params=22_367_273,
                paper_top1=80.67)
def cct_14_7x2_224(**kwargs):
    return _cct(14, 7, 2, **kwargs)
