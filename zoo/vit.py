"""Vision Transformer — Dosovitskiy et al., "An Image is Worth 16x16 Words: Transformers for Image
Recognition at Scale", ICLR 2021; its convolutional-stem variant ViT-C — Xiao et al., "Early Convolutions
Help Transformers See Better", NeurIPS 2021.

Variants:

* ViT-Ti/S/B/L with patch 16 or 32 (Ti and S are DeiT's widths: d=192/384, 3/6 heads; B: d=768, 12 layers,
  12 heads; L: d=1024, 24 layers, 16 heads; MLP ratio 4). Init: trunc-normal(0.02) Linear weights and table.
* ViT-Lite-7/4 for 32 px CIFAR input (Hassani et al., "Escaping the Big Data Paradigm with Compact
  Transformers", 2021: patch 4, d=256, 7 layers, 4 heads, MLP ratio 2, class token). It is built the way the
  Compact Transformers code builds it: the CCT encoder block (``zoo.layers.CCTBlock``: a LayerNorm on the
  residual stream between attention and MLP, no qkv bias), attention dropout 0.1, stochastic depth 0 → 0.1,
  position table trunc-normal(0.2) and the CCT init. 3,716,874 parameters at 10 classes.
* ViT-C-1GF/4GF/18GF (Xiao et al.): the patchify stem is replaced by a stack of 3×3 convs with BN + ReLU
  (stride 2 doubles the width) and a 1×1 conv to d, overall stride 16; one transformer block fewer than the
  patchify baselines ViT-P-1GF/4GF/18GF (12 blocks). Widths / MLP ratio / heads: 192/3/3, 384/3/6, 768/4/12.
  Both use the pycls init: PE N(0, 0.02), class token 0, patchify conv trunc-normal(√(1/fan_in)), the stem's
  last 1×1 conv N(0, √(2/out)), qkv and MLP weights Xavier-uniform (MLP biases N(0, 1e-6)), zero head.

LayerNorm eps (``norm_eps``) is 1e-6 for the paper's ViTs, the Flax default that the paper's JAX code
(google-research/vision_transformer) trains with and that timm and torchvision keep; 1e-5 (PyTorch's
default) for ViT-Lite and ViT-C/P, whose PyTorch reference code uses it.

The model: stem → tokens → [class token; tokens] + position embedding → encoder blocks → LayerNorm →
class token (or the mean of the tokens, ``pool="mean"``) → Linear. Dropout after the position embedding and
after every dense layer except qkv, as in the paper.

Position embeddings (``pos_embed``):

* ``"learned"`` (default): a 1-D table built for ``img_size``; an input of another size gets the grid part
  resized bicubically on the fly, so a model built at 224 can be evaluated at 384 or 160.
* ``"sincos"``: fixed sinusoids of the continuous patch-centre coordinates, normalised to [-1, 1].
* ``"cape"``: CAPE — Likhomanenko et al., "CAPE: Encoding Relative Positions with Continuous Augmented
  Positional Embeddings", NeurIPS 2021. The same sinusoids, but in training every image draws a random
  global shift (per axis, U(±``cape_global_shift``)), a local shift per patch and axis (U(±``cape_local_shift``)
  patch spacings) and a global scaling (log-uniform in [1/``cape_global_scaling``, ``cape_global_scaling``]);
  at eval it is exactly ``"sincos"``. Defaults 0.5 / 0.5 / 1.4 are the ViT settings of the public CAPE2d
  reimplementation (gcambara/cape, after the paper's ViT experiments; not re-read from the paper's own
  table); a local shift up to half a patch spacing keeps neighbouring patches in order. Deviation: the
  paper mixes x and y with rotating directions per frequency; here half the channels encode y and half x
  (``sincos_1d``), over the same frequency band π·10^(k/q), k = 1..q. The class token gets no position term.
"""
from __future__ import annotations

import math
from functools import partial

import torch
import torch.nn as nn
from einops import rearrange, repeat

from zoo.layers import (CCTBlock, ClassifierHead, ConvNormAct, ImageClassifier, PatchEmbed, TransformerBlock,
                        init_cct_weights, linear_drop_path_rates, resample_pos_embed, sincos_1d)
from zoo.model_info import ModelConfigError
from zoo.registry import register_model

PAPER = "An Image is Worth 16x16 Words: Transformers for Image Recognition at Scale"
PAPER_VIT_C = "Early Convolutions Help Transformers See Better"
PAPER_CCT = "Escaping the Big Data Paradigm with Compact Transformers"

BLOCKS = {"pre_norm": TransformerBlock, "cct": CCTBlock}


class ConvStem(nn.Module):
    """ViT-C stem: 3×3 convs with BN + ReLU (``channels`` and ``strides`` per conv), then a 1×1 conv with
    bias to the model width. Returns the grid (B, dim, H/16, W/16) for the usual stride-16 stems."""

    def __init__(self, img_size: int, in_chans: int, channels: tuple[int, ...], strides: tuple[int, ...],
                 dim: int):
        super().__init__()
        convs, width = [], in_chans
        for out_chs, stride in zip(channels, strides):
            convs.append(ConvNormAct(width, out_chs, 3, stride))
            width = out_chs
        self.convs = nn.Sequential(*convs)
        self.proj = nn.Conv2d(width, dim, 1)
        self.grid = img_size
        for stride in strides:  # a 3×3 conv with padding 1 maps n to ⌈n / stride⌉
            self.grid = -(-self.grid // stride)
        self.num_patches = self.grid ** 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.convs(x))


class CAPE(nn.Module):
    """Sinusoidal embedding of continuous patch-centre coordinates in [-1, 1], randomly shifted and scaled
    per image while training (CAPE); plain fixed sinusoids at eval or with every augmentation off."""

    FREQ_RANGE = 10.0  # frequencies run from π up to 10π per unit of normalised coordinate, as in CAPE

    def __init__(self, dim: int, max_global_shift: float = 0.5, max_local_shift: float = 0.5,
                 max_global_scaling: float = 1.4):
        super().__init__()
        if dim % 4:
            raise ModelConfigError(f"CAPE needs a width divisible by 4, got {dim}")
        if max_global_shift < 0 or max_local_shift < 0 or max_global_scaling < 1:
            raise ModelConfigError("CAPE needs shifts >= 0 and a global scaling >= 1")
        self.dim = dim
        self.max_global_shift = max_global_shift
        self.max_local_shift = max_local_shift
        self.max_global_scaling = max_global_scaling

    def coordinates(self, batch: int, grid: tuple[int, int], device: torch.device) -> torch.Tensor:
        """(B, H, W, 2) patch-centre (y, x) coordinates, augmented in training mode."""
        h, w = grid
        ys = (2 * torch.arange(h, device=device) + 1) / h - 1
        xs = (2 * torch.arange(w, device=device) + 1) / w - 1
        coords = torch.stack(torch.meshgrid(ys, xs, indexing="ij"), dim=-1)
        coords = repeat(coords, "h w two -> b h w two", b=batch)
        if not self.training:
            return coords
        spacing = torch.tensor([2.0 / h, 2.0 / w], device=device)
        global_shift = (2 * torch.rand(batch, 1, 1, 2, device=device) - 1) * self.max_global_shift
        local_shift = (2 * torch.rand(batch, h, w, 2, device=device) - 1) * self.max_local_shift * spacing
        log_scale = (2 * torch.rand(batch, 1, 1, 1, device=device) - 1) * math.log(self.max_global_scaling)
        return (coords + global_shift + local_shift) * log_scale.exp()

    def forward(self, batch: int, grid: tuple[int, int], device: torch.device) -> torch.Tensor:
        """(B, H·W, dim): the first half of the channels encodes y, the second half x."""
        coords = self.coordinates(batch, grid, device) * (math.pi * self.FREQ_RANGE)
        y_emb, x_emb = (sincos_1d(coords[..., axis], self.dim // 2, temperature=self.FREQ_RANGE) for axis in (0, 1))
        return rearrange(torch.cat([y_emb, x_emb], dim=-1), "b h w d -> b (h w) d")

    def extra_repr(self) -> str:
        return (f"dim={self.dim}, max_global_shift={self.max_global_shift}, max_local_shift={self.max_local_shift}, "
                f"max_global_scaling={self.max_global_scaling}")


class VisionTransformer(ImageClassifier):
    """ViT with a pluggable stem (patchify, or ViT-C's conv stem when ``stem_channels`` is given), encoder
    block (``"pre_norm"`` or ``"cct"``), position embedding and init (``"vit"``, ``"pycls"``, ``"cct"``)."""

    def __init__(self, img_size: int = 224, patch_size: int = 16, in_chans: int = 3, num_classes: int = 1000,
                 dim: int = 768, depth: int = 12, num_heads: int = 12, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 pool: str = "token", stem_channels: tuple[int, ...] | None = None,
                 stem_strides: tuple[int, ...] | None = None, block: str = "pre_norm", pos_embed: str = "learned",
                 weight_init: str = "vit", drop_rate: float = 0.0, attn_drop_rate: float = 0.0,
                 drop_path_rate: float = 0.0, cape_global_shift: float = 0.5, cape_local_shift: float = 0.5,
                 cape_global_scaling: float = 1.4, norm_eps: float = 1e-6):
        super().__init__()
        for option, value, choices in (("pool", pool, ("token", "mean")), ("block", block, tuple(BLOCKS)),
                                       ("pos_embed", pos_embed, ("learned", "sincos", "cape")),
                                       ("weight_init", weight_init, ("vit", "pycls", "cct"))):
            if value not in choices:
                raise ModelConfigError(f"ViT {option} must be one of {choices}, got {value!r}")
        if stem_channels is None:
            self.stem = PatchEmbed(img_size, patch_size, in_chans, dim, flatten=False)
        else:
            self.stem = ConvStem(img_size, in_chans, stem_channels, stem_strides, dim)
        self.num_prefix_tokens = 1 if pool == "token" else 0
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim)) if pool == "token" else None
        if pos_embed == "learned":
            self.pos_embed = nn.Parameter(torch.zeros(1, self.num_prefix_tokens + self.stem.num_patches, dim))
            self.cape = None
        else:
            self.pos_embed = None
            augment = (cape_global_shift, cape_local_shift, cape_global_scaling) if pos_embed == "cape" else (0, 0, 1)
            self.cape = CAPE(dim, *augment)
        self.pos_drop = nn.Dropout(drop_rate)
        norm_layer = partial(nn.LayerNorm, eps=norm_eps)
        # The CCT block keeps PyTorch's LayerNorm eps (1e-5), the one the Compact Transformers code trains with.
        block_norm = dict(norm_layer=norm_layer) if block == "pre_norm" else {}
        self.blocks = nn.Sequential(*[
            BLOCKS[block](dim, num_heads, mlp_ratio, qkv_bias=qkv_bias, drop=drop_rate, attn_drop=attn_drop_rate,
                          drop_path=rate, **block_norm)
            for rate in linear_drop_path_rates(drop_path_rate, depth)])
        self.norm = norm_layer(dim)
        self.head = ClassifierHead(dim, num_classes, pool=pool)
        {"vit": self._init_vit, "pycls": self._init_pycls, "cct": self._init_cct}[weight_init]()

    def _init_vit(self) -> None:
        if self.pos_embed is not None:
            nn.init.trunc_normal_(self.pos_embed, std=0.02)
        if self.cls_token is not None:
            nn.init.normal_(self.cls_token, std=1e-6)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def _init_pycls(self) -> None:
        if self.pos_embed is not None:
            nn.init.normal_(self.pos_embed, std=0.02)
        if isinstance(self.stem, PatchEmbed):
            conv = self.stem.proj
            fan_in = conv.in_channels * conv.kernel_size[0] * conv.kernel_size[1]
            nn.init.trunc_normal_(conv.weight, std=math.sqrt(1.0 / fan_in))
        else:  # the 3×3 convs keep PyTorch's default init, as in pycls
            nn.init.normal_(self.stem.proj.weight, std=math.sqrt(2.0 / self.stem.proj.out_channels))
        nn.init.zeros_(self.stem.proj.bias)
        for blk in self.blocks:
            nn.init.xavier_uniform_(blk.attn.qkv.weight)
            for linear in (blk.mlp.fc1, blk.mlp.fc2):
                nn.init.xavier_uniform_(linear.weight)
                nn.init.normal_(linear.bias, std=1e-6)
            for bias in (blk.attn.qkv.bias, blk.attn.proj.bias):
                if bias is not None:
                    nn.init.zeros_(bias)
        nn.init.zeros_(self.head.fc.weight)
        nn.init.zeros_(self.head.fc.bias)

    def _init_cct(self) -> None:
        init_cct_weights(self)
        if self.pos_embed is not None:
            nn.init.trunc_normal_(self.pos_embed, std=0.2)

    def position_table(self, grid: tuple[int, int], batch: int = 1) -> torch.Tensor:
        """The position term added to the grid tokens for a (H, W) token grid: (1 or B, H·W, dim)."""
        if self.pos_embed is not None:
            return resample_pos_embed(self.pos_embed, grid, self.num_prefix_tokens)[:, self.num_prefix_tokens:]
        return self.cape(batch, grid, self.norm.weight.device)

    def _add_positions(self, x: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        if self.cape is not None:  # continuous positions cover the grid tokens only
            x = x + self.cape(x.shape[0], grid, x.device).to(x.dtype)
        if self.cls_token is not None:
            x = torch.cat([repeat(self.cls_token, "1 1 d -> b 1 d", b=x.shape[0]), x], dim=1)
        if self.pos_embed is not None:
            x = x + resample_pos_embed(self.pos_embed, grid, self.num_prefix_tokens)
        return x

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        grid = (x.shape[-2], x.shape[-1])
        x = self._add_positions(rearrange(x, "b d h w -> b (h w) d"), grid)
        return self.norm(self.blocks(self.pos_drop(x)))


def _vit(*, num_classes, in_chans, img_size, **kwargs) -> VisionTransformer:
    return VisionTransformer(img_size=img_size, in_chans=in_chans, num_classes=num_classes, **kwargs)


_META16 = dict(family="vit", paper=PAPER, year=2021, native_size=224, min_size=16)
_META32 = dict(_META16, min_size=32)
_WIDTHS = dict(tiny=(192, 12, 3), small=(384, 12, 6), base=(768, 12, 12), large=(1024, 24, 16))


def _vit_size(size: str, patch_size: int, **kwargs) -> VisionTransformer:
    dim, depth, num_heads = _WIDTHS[size]
    return _vit(patch_size=patch_size, dim=dim, depth=depth, num_heads=num_heads, **kwargs)


@register_model(**_META16, paper_params=5_717_416, paper_top1=72.2)
def vit_tiny_patch16_224(**kwargs):
    return _vit_size("tiny", 16, **kwargs)


@register_model(**_META16, paper_params=22_050_664, paper_top1=79.8)
def vit_small_patch16_224(**kwargs):
    return _vit_size("small", 16, **kwargs)


@register_model(**_META16, aliases=("vit",), paper_params=86_567_656, paper_top1=77.9)
def vit_base_patch16_224(**kwargs):
    return _vit_size("base", 16, **kwargs)


@register_model(**_META16, paper_params=304_326_632)
def vit_large_patch16_224(**kwargs):
    return _vit_size("large", 16, **kwargs)


@register_model(**_META32, paper_params=6_131_560)
def vit_tiny_patch32_224(**kwargs):
    return _vit_size("tiny", 32, **kwargs)


@register_model(**_META32, paper_params=22_878_952)
def vit_small_patch32_224(**kwargs):
    return _vit_size("small", 32, **kwargs)


@register_model(**_META32, paper_params=88_224_232)
def vit_base_patch32_224(**kwargs):
    return _vit_size("base", 32, **kwargs)


@register_model(**_META32, paper_params=306_535_400)
def vit_large_patch32_224(**kwargs):
    return _vit_size("large", 32, **kwargs)


@register_model(family="vit", paper=PAPER_CCT, year=2021, native_size=32, min_size=4)
def vit_lite_7_4(**kwargs):
    kwargs = {"attn_drop_rate": 0.1, "drop_path_rate": 0.1, **kwargs}
    return _vit(patch_size=4, dim=256, depth=7, num_heads=4, mlp_ratio=2.0, qkv_bias=False, block="cct",
                weight_init="cct", **{"norm_eps": 1e-5, **kwargs})


# ViT-C / ViT-P (Xiao et al., Table 1): (dim, MLP ratio, heads), conv stem (channels, strides).
_VIT_C = {
    "1gf": ((192, 3.0, 3), (24, 48, 96, 192), (2, 2, 2, 2)),
    "4gf": ((384, 3.0, 6), (48, 96, 192, 384), (2, 2, 2, 2)),
    "18gf": ((768, 4.0, 12), (64, 128, 128, 256, 256, 512), (2, 2, 1, 2, 1, 2)),
}
_META_C = dict(family="vit", paper=PAPER_VIT_C, year=2021, native_size=224, min_size=16)


def _vit_c(flops: str, conv_stem: bool, **kwargs) -> VisionTransformer:
    (dim, mlp_ratio, num_heads), channels, strides = _VIT_C[flops]
    stem = dict(stem_channels=channels, stem_strides=strides) if conv_stem else dict(patch_size=16)
    return _vit(dim=dim, depth=11 if conv_stem else 12, num_heads=num_heads, mlp_ratio=mlp_ratio,
                weight_init="pycls", **stem, **{"norm_eps": 1e-5, **kwargs})


@register_model(**_META_C, paper_params=4_567_936, paper_top1=75.3)
def vit_c_1gf(**kwargs):
    return _vit_c("1gf", conv_stem=True, **kwargs)


@register_model(**_META_C, paper_params=17_754_136, paper_top1=81.4)
def vit_c_4gf(**kwargs):
    return _vit_c("4gf", conv_stem=True, **kwargs)


@register_model(**_META_C, paper_params=81_573_160, paper_top1=83.0)
def vit_c_18gf(**kwargs):
    return _vit_c("18gf", conv_stem=True, **kwargs)


@register_model(**_META_C)
def vit_p_1gf(**kwargs):
    return _vit_c("1gf", conv_stem=False, **kwargs)


@register_model(**_META_C, paper_params=18_507_112, paper_top1=80.4)
def vit_p_4gf(**kwargs):
    return _vit_c("4gf", conv_stem=False, **kwargs)


@register_model(**_META_C, paper_params=86_567_656)
def vit_p_18gf(**kwargs):
    return _vit_c("18gf", conv_stem=False, **kwargs)


# Small-input variants (ours, not the paper's): at 32 px a 16-pixel patch leaves 4 tokens, too few for
# attention to mean anything, so the Fashion-MNIST and CIFAR protocols run these: the paper's widths and
# depths with 4-pixel patches, 64 tokens and a class token at 32 px.
_META_SMALL_INPUT = dict(family="vit", paper=PAPER, year=2021, native_size=32, min_size=4)


@register_model(**_META_SMALL_INPUT)
def vit_tiny_patch4_32(**kwargs):
    """ViT-Ti with 4×4 patches for 32-px inputs (the paper's ViT-Ti uses 16×16 at 224 px: 196 tokens)."""
    return _vit_size("tiny", 4, **kwargs)


@register_model(**_META_SMALL_INPUT)
def vit_base_patch4_32(**kwargs):
    """ViT-B with 4×4 patches for 32-px inputs (the paper's ViT-B/16 uses 16×16 at 224 px: 196 tokens)."""
    return _vit_size("base", 4, **kwargs)
