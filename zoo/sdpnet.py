"""SdP-Net ("SlapDash Net") — Y. Akbal, y-akbal/SdP-Net (GitHub, from 2023; README, no paper).

A hybrid: a patchifying conv, then N SdP blocks, each = 2 conv mixers ("DW conv + MLP") + 1
transformer encoder layer, then one more encoder layer and a head. A few learned *register* tokens
see the image only through attention: they get no position embedding and never enter the conv
mixers; in every encoder layer they are concatenated before the patch tokens (full attention over
registers + patches) and go through that layer's FFN, and they are carried from layer to layer.

Parts (as the authors' code in y-akbal/SdP-Net builds them, written here from a description of it; no code
taken from the authors):
* patcher: Conv2d(in→C, kernel = stride = patch, no bias), no conv stem.
* position: ``position="rowcol"`` adds a learned row table and a learned column table
  (Embedding(max_grid, C) each) to the C×H×W grid; ``position="neighbourhood"`` adds a frozen random
  table (0.02·randn of size C×(G+w)×(G+w)) average-pooled w×w with stride 1 and sliced to the grid,
  so neighbouring patches get correlated embeddings (a buffer: saved, not trained, not counted).
  ``max_grid`` G = img_size / patch; smaller inputs use the top-left part of the tables, larger ones
  are a ``ModelConfigError``.
* conv mixer, pre-norm, biases off: channel LayerNorm (eps 1e-6) → depthwise k×k ('same') → 1×1 →
  act → residual; channel LayerNorm → 1×1 C→4C → act → 1×1 4C→C → residual. No LayerScale, no
  drop-path.
* encoder layer: the shared pre-norm ``TransformerBlock`` with q,k,v and out-projection without bias,
  QK-norm (LayerNorm over each head's q and k), dropout on attention, projections and FFN, and
  drop-path on both residuals.
* ``block_order="conv_first"`` (README and model default) or ``"encoder_first"`` (the authors'
  committed ImageNet config).
* final encoder layer without drop-path, then the head: ``head="registers"`` (README): mean over the
  registers → LayerNorm → Linear(C→K, no bias) → Tanh → Dropout → Linear(K→classes, no bias), with
  K = ``head_hidden_dim`` (the authors use K = number of classes; ``reset_classifier`` swaps only
  the last Linear); ``head="avg"``: mean over patch tokens → Linear(C→classes).
* drop-path, angular schedule over the N blocks: p_i = cos(arccos(p0)(1−i/N) + arccos(p1)·i/N),
  p0 = ``drop_path_start``, p1 = ``drop_path_rate``; it is applied in each block's encoder layer.
* activation: ``act_layer`` ('gelu' default, 'kelu' = the authors' KeLU with a = 3.5, 'relu',
  'silu' or a class) is used everywhere the model has one (conv mixers, encoder FFNs); the head's Tanh
  is part of the authors' head design and stays.
* init: normal(std 0.01) on every Linear and Conv weight (the authors' trunc-normal with bounds ±2 =
  ±200σ, which never truncates), zero biases; registers and row/column tables N(0, 1).

Sizes. The README's size table is inconsistent (an XXS of 55M params at width 128 cannot exist) and
gives no heads or MLP ratio, so the zoo uses its own table (MLP ratio 4, 2 conv mixers per block,
5 registers, row/column position, register head, conv first, 224 px):

    name        width  blocks  heads  patch  kernel  params (1000 cls)  GMACs @224 (attention included)
    sdpnet_xxs   128     10      4     16      5       6,430,912         1.16
    sdpnet_s     256     10      8     16      5      22,084,032         4.34
    sdpnet_m     384     12      6     16      5      56,861,504        11.37
    sdpnet_l     512     12      8     16      5      99,860,288        20.00
    sdpnet_xl    768      6      8     14      3     115,666,624        30.11

(sdpnet_xxs is the authors' model-default width/depth/kernel/patch; with their average-pool head
it has about 5.43M params, an analytic count of that default. sdpnet_xl has the widths of the
authors' ImageNet config.)

* ``sdpnet_authors_imagenet``: the authors' committed ImageNet config ("XL"): C=768, 6 blocks,
  8 heads, patch 14, k=3, encoder first, register head, MLP ratio 4, dropout 0.2. Built in torch it
  has 115,666,624 params, the analytic count of that config, with 5 register vectors and 16-entry row and
  column tables (224/14); with 4 registers it would be 115,665,856, so 5 registers is what that
  count implies (the README's 5; the code's ``num_registers + 1`` with num_registers = 4).
  30.11 GMACs at 224, attention included (FlopCounterMode; fvcore + analytic QKᵀ/AV agree).
* ``sdpnet_cifar``: the authors' CIFAR-100 test config: C=128, 16 blocks, 4 heads, patch 2 on
  32×32, k=5, neighbourhood embedding (window 5), average-pool head, 4 registers (the code default);
  8,216,420 params at 100 classes (8,332,520 at 1000), 2.40 GMACs at 32 px.

Reported: 82.1 % ImageNet top-1 for the largest model after 200 epochs (README).

Deviations and choices: the neighbourhood table is pooled once at build time (the same values as
pooling it every forward); its window defaults to the conv kernel size (``neighbourhood_window``).
Conv mixers take no drop-path (the authors' description has none). Default activation GELU.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange, repeat

from zoo.layers import ClassifierHead, ImageClassifier, PatchEmbed, TransformerBlock, get_act_layer
from zoo.model_info import ModelConfigError
from zoo.registry import register_model

PAPER = "SdP-Net (SlapDash Net): conv mixers + transformer encoders with register tokens (GitHub README)"


def angular_drop_path_rates(start: float, end: float, depth: int) -> list[float]:
    """p_i = cos(arccos(p0)(1 − i/N) + arccos(p1)·i/N), i = 0..N−1: rates that move from p0 towards
    p1 along the angle whose cosine they are."""
    for p in (start, end):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"drop-path rates must lie in [0, 1], got {p}")
    theta0, theta1 = math.acos(start), math.acos(end)
    rates = [math.cos(theta0 * (1 - i / depth) + theta1 * i / depth) for i in range(depth)]
    # cos(π/2) is 6e-17, not 0: snap float noise to 0 so a zero rate really turns drop-path off.
    return [0.0 if abs(p) < 1e-12 else p for p in rates]


class ChannelLayerNorm(nn.LayerNorm):
    """LayerNorm over the channels of each pixel of a (B, C, H, W) map."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = super().forward(rearrange(x, "b c h w -> b h w c"))
        return rearrange(x, "b h w c -> b c h w")


class ConvMixer(nn.Module):
    """Spatial mixing (depthwise k×k → 1×1 → act) then channel MLP (1×1 → act → 1×1), pre-norm, residual."""

    def __init__(self, dim: int, kernel_size: int, act_layer: type[nn.Module], mlp_ratio: float = 4.0):
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.norm1 = ChannelLayerNorm(dim, eps=1e-6)
        self.spatial = nn.Sequential(
            nn.Conv2d(dim, dim, kernel_size, padding="same", groups=dim, bias=False),
            nn.Conv2d(dim, dim, 1, bias=False),
            act_layer())
        self.norm2 = ChannelLayerNorm(dim, eps=1e-6)
        self.channel = nn.Sequential(
            nn.Conv2d(dim, hidden, 1, bias=False),
            act_layer(),
            nn.Conv2d(hidden, dim, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.spatial(self.norm1(x))
        return x + self.channel(self.norm2(x))


class RowColumnPosition(nn.Module):
    """A learned embedding per row plus one per column, added to the (B, C, H, W) patch grid."""

    def __init__(self, max_grid: int, dim: int):
        super().__init__()
        self.max_grid = max_grid
        self.rows = nn.Embedding(max_grid, dim)
        self.cols = nn.Embedding(max_grid, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        rows = rearrange(self.rows.weight[:h], "h c -> c h 1")
        cols = rearrange(self.cols.weight[:w], "w c -> c 1 w")
        return x + rows + cols


class NeighbourhoodPosition(nn.Module):
    """A frozen random table smoothed by a w×w box filter: nearby patches get correlated embeddings."""

    def __init__(self, max_grid: int, dim: int, window: int):
        super().__init__()
        self.max_grid = max_grid
        table = 0.02 * torch.randn(dim, max_grid + window, max_grid + window)
        self.register_buffer("table", F.avg_pool2d(table, window, stride=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        return x + self.table[:, :h, :w]


class SdPBlock(nn.Module):
    """Conv mixers on the patch grid and one encoder layer on [registers; patches], in either order."""

    def __init__(self, dim: int, num_heads: int, kernel_size: int, num_mixers: int, mlp_ratio: float,
                 act_layer: type[nn.Module], encoder_first: bool, drop: float, drop_path: float):
        super().__init__()
        self.encoder_first = encoder_first
        self.mixers = nn.Sequential(*[ConvMixer(dim, kernel_size, act_layer, mlp_ratio) for _ in range(num_mixers)])
        self.encoder = _encoder_layer(dim, num_heads, mlp_ratio, act_layer, drop, drop_path)

    def forward(self, grid: torch.Tensor, registers: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.encoder_first:
            grid, registers = _encode(self.encoder, grid, registers)
            return self.mixers(grid), registers
        return _encode(self.encoder, self.mixers(grid), registers)


def _encoder_layer(dim, num_heads, mlp_ratio, act_layer, drop, drop_path) -> TransformerBlock:
    return TransformerBlock(dim, num_heads, mlp_ratio, qkv_bias=False, proj_bias=False, qk_norm=True, drop=drop,
                            attn_drop=drop, drop_path=drop_path, act_layer=act_layer)


def _encode(encoder: nn.Module, grid: torch.Tensor, registers: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Run an encoder layer over [registers; patch tokens] and split the result back."""
    num_registers, height = registers.shape[1], grid.shape[2]
    tokens = encoder(torch.cat([registers, rearrange(grid, "b c h w -> b (h w) c")], dim=1))
    grid = rearrange(tokens[:, num_registers:], "b (h w) c -> b c h w", h=height)
    return grid, tokens[:, :num_registers]


class SdPNet(ImageClassifier):
    POSITIONS = ("rowcol", "neighbourhood")
    ORDERS = ("conv_first", "encoder_first")
    HEADS = ("registers", "avg")

    def __init__(self, img_size: int = 224, patch_size: int = 16, in_chans: int = 3, num_classes: int = 1000,
                 dim: int = 128, depth: int = 10, num_heads: int = 4, kernel_size: int = 5, mixers_per_block: int = 2,
                 mlp_ratio: float = 4.0, num_registers: int = 5, position: str = "rowcol",
                 neighbourhood_window: int | None = None, block_order: str = "conv_first", head: str = "registers",
                 head_hidden_dim: int | None = None, act_layer: str | type[nn.Module] = "gelu",
                 drop_rate: float = 0.0, drop_path_rate: float = 0.0, drop_path_start: float = 0.0):
        super().__init__()
        for value, allowed, what in ((position, self.POSITIONS, "position"), (block_order, self.ORDERS, "block_order"),
                                     (head, self.HEADS, "head")):
            if value not in allowed:
                raise ModelConfigError(f"SdP-Net {what} must be one of {allowed}, got {value!r}")
        if num_registers < (1 if head == "registers" else 0):
            raise ModelConfigError(f"the register head needs at least one register, got num_registers={num_registers}")
        act = get_act_layer(act_layer)
        self.head_type = head
        self.patch_embed = PatchEmbed(img_size, patch_size, in_chans, dim, bias=False, flatten=False)
        max_grid = self.patch_embed.grid
        self.pos_embed = (RowColumnPosition(max_grid, dim) if position == "rowcol" else
                          NeighbourhoodPosition(max_grid, dim, neighbourhood_window or kernel_size))
        self.registers = nn.Parameter(torch.randn(1, num_registers, dim))
        self.blocks = nn.ModuleList([
            SdPBlock(dim, num_heads, kernel_size, mixers_per_block, mlp_ratio, act,
                     encoder_first=block_order == "encoder_first", drop=drop_rate, drop_path=rate)
            for rate in angular_drop_path_rates(drop_path_start, drop_path_rate, depth)])
        self.final_encoder = _encoder_layer(dim, num_heads, mlp_ratio, act, drop_rate, 0.0)
        if head == "registers":
            hidden = head_hidden_dim or num_classes
            self.pre_head = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, hidden, bias=False), nn.Tanh())
            self.head = ClassifierHead(hidden, num_classes, pool="none", drop=drop_rate, bias=False)
        else:
            self.pre_head = nn.Identity()
            self.head = ClassifierHead(dim, num_classes, pool="none", drop=drop_rate)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                # The authors' trunc_normal(std=0.01) keeps torch's default bounds ±2, i.e. ±200σ, which
                # never cut: it is a plain normal, and normal_ is many times faster to draw.
                nn.init.normal_(m.weight, std=0.01)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C_in, H, W) → tokens (B, registers + patches, C) after the final encoder layer."""
        grid = self.patch_embed(x)
        if max(grid.shape[-2:]) > self.pos_embed.max_grid:
            raise ModelConfigError(
                f"SdP-Net position tables were built for at most {self.pos_embed.max_grid} patches per side, "
                f"got a {grid.shape[-2]}×{grid.shape[-1]} grid: build the model with a larger img_size")
        grid = self.pos_embed(grid)
        registers = repeat(self.registers, "1 r c -> b r c", b=x.shape[0])
        for block in self.blocks:
            grid, registers = block(grid, registers)
        grid, registers = _encode(self.final_encoder, grid, registers)
        return torch.cat([registers, rearrange(grid, "b c h w -> b (h w) c")], dim=1)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        num_registers = self.registers.shape[1]
        pooled = x[:, :num_registers].mean(1) if self.head_type == "registers" else x[:, num_registers:].mean(1)
        return self.head(self.pre_head(pooled), pre_logits=pre_logits)


def _sdpnet(config: dict, overrides: dict) -> SdPNet:
    """``overrides`` (num_classes, in_chans, img_size and any architecture option) win over ``config``."""
    return SdPNet(**{**config, **overrides})


_META = dict(family="sdpnet", paper=PAPER, year=2023, native_size=224)


@register_model(**_META, min_size=16)
def sdpnet_xxs(**kwargs):
    return _sdpnet(dict(patch_size=16, dim=128, depth=10, num_heads=4, kernel_size=5), kwargs)


@register_model(**_META, min_size=16, aliases=("sdpnet",))
def sdpnet_s(**kwargs):
    return _sdpnet(dict(patch_size=16, dim=256, depth=10, num_heads=8, kernel_size=5), kwargs)


@register_model(**_META, min_size=16)
def sdpnet_m(**kwargs):
    return _sdpnet(dict(patch_size=16, dim=384, depth=12, num_heads=6, kernel_size=5), kwargs)


@register_model(**_META, min_size=16)
def sdpnet_l(**kwargs):
    return _sdpnet(dict(patch_size=16, dim=512, depth=12, num_heads=8, kernel_size=5), kwargs)


@register_model(**_META, min_size=14)
def sdpnet_xl(**kwargs):
    return _sdpnet(dict(patch_size=14, dim=768, depth=6, num_heads=8, kernel_size=3), kwargs)


@register_model(**_META, min_size=14, paper_params=115_666_624, paper_top1=82.1)
def sdpnet_authors_imagenet(**kwargs):
    config = dict(patch_size=14, dim=768, depth=6, num_heads=8, kernel_size=3, num_registers=5,
                  block_order="encoder_first", head="registers", drop_rate=0.2)
    return _sdpnet(config, kwargs)


@register_model(family="sdpnet", paper=PAPER, year=2023, native_size=32, min_size=2)
def sdpnet_cifar(**kwargs):
    config = dict(patch_size=2, dim=128, depth=16, num_heads=4, kernel_size=5, num_registers=4,
                  position="neighbourhood", head="avg")
    return _sdpnet(config, kwargs)
