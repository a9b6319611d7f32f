"""MLP-Mixer — Tolstikhin et al., "MLP-Mixer: An all-MLP Architecture for Vision", NeurIPS 2021.

Variants (paper Table 1): S/32, S/16 (8 layers, C=512, token MLP D_S=256, channel MLP D_C=2048) and
B/32, B/16 (12 layers, C=768, D_S=384, D_C=3072). L/16 (24 layers, 208M params) is left out: it adds
nothing the B/16 does not test and is too heavy for a CPU test walk.

The model: patches → linear projection → N × [LayerNorm → token-mixing MLP (across the S patches, per
channel) → residual; LayerNorm → channel-mixing MLP (per patch) → residual] → LayerNorm → mean over
patches → Linear. GELU, no position embeddings (token mixing is position-aware by construction).

The token-mixing MLP has one weight per patch position, so a model is built for one ``img_size``:
a size the patch does not tile is a ``ModelConfigError`` at build time, and a forward pass at any
other size is a ``ModelConfigError`` too, naming the size it was built for.

Deviations: LayerNorm eps 1e-6 (Flax's default, used by the released models); ``drop_path_rate`` is
spread linearly over the blocks (the paper's stochastic depth 0.1 gives no schedule); head weights
are zero-initialised as in the paper's code.
"""
from __future__ import annotations

import functools

import torch
import torch.nn as nn
from einops import rearrange

from zoo.layers import DropPath, Mlp, PatchMlpClassifier, linear_drop_path_rates
from zoo.registry import register_model

PAPER = "MLP-Mixer: An all-MLP Architecture for Vision"

LayerNorm = functools.partial(nn.LayerNorm, eps=1e-6)


class MixerBlock(nn.Module):
    """Token mixing (an MLP across patches, shared over channels), then channel mixing (across channels,
    shared over patches); both pre-norm and residual."""

    def __init__(self, num_tokens: int, dim: int, tokens_hidden: int, channels_hidden: int, drop: float = 0.0,
                 drop_path: float = 0.0):
        super().__init__()
        self.norm1 = LayerNorm(dim)
        self.token_mlp = Mlp(num_tokens, tokens_hidden, drop=drop)
        self.norm2 = LayerNorm(dim)
        self.channel_mlp = Mlp(dim, channels_hidden, drop=drop)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mixed = self.token_mlp(rearrange(self.norm1(x), "b s c -> b c s"))
        x = x + self.drop_path(rearrange(mixed, "b c s -> b s c"))
        return x + self.drop_path(self.channel_mlp(self.norm2(x)))


class MlpMixer(PatchMlpClassifier):
    def __init__(self, img_size: int = 224, patch_size: int = 16, in_chans: int = 3, num_classes: int = 1000,
                 dim: int = 768, depth: int = 12, tokens_hidden: int = 384, channels_hidden: int = 3072,
                 drop_rate: float = 0.0, drop_path_rate: float = 0.0):
        block = functools.partial(MixerBlock, dim=dim, tokens_hidden=tokens_hidden,
                                  channels_hidden=channels_hidden, drop=drop_rate)
        super().__init__(img_size, patch_size, in_chans, num_classes, dim, block,
                         linear_drop_path_rates(drop_path_rate, depth), norm_layer=LayerNorm, drop_rate=drop_rate)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.normal_(m.bias, std=1e-6)
        if isinstance(self.head.fc, nn.Linear):
            nn.init.zeros_(self.head.fc.weight)
            nn.init.zeros_(self.head.fc.bias)


def _mixer(config: dict, overrides: dict) -> MlpMixer:
    """``overrides`` (num_classes, in_chans, img_size and any architecture option) win over ``config``."""
    return MlpMixer(**{**config, **overrides})


_META = dict(family="mlp_mixer", paper=PAPER, year=2021, native_size=224)
_SMALL = dict(dim=512, depth=8, tokens_hidden=256, channels_hidden=2048)
_BASE = dict(dim=768, depth=12, tokens_hidden=384, channels_hidden=3072)


@register_model(**_META, min_size=16, paper_params=18_528_264)
def mixer_s16_224(**kwargs):
    return _mixer(dict(patch_size=16, **_SMALL), kwargs)


@register_model(**_META, min_size=32)
def mixer_s32_224(**kwargs):
    return _mixer(dict(patch_size=32, **_SMALL), kwargs)


@register_model(**_META, min_size=16, aliases=("mlpmixer",), paper_params=59_880_472, paper_top1=76.44)
def mixer_b16_224(**kwargs):
    return _mixer(dict(patch_size=16, **_BASE), kwargs)


@register_model(**_META, min_size=32)
def mixer_b32_224(**kwargs):
    return _mixer(dict(patch_size=32, **_BASE), kwargs)


# Small-input variants (ours, not the paper's): at 32 px a 16-pixel patch leaves 4 tokens, so token mixing
# would mix almost nothing; these keep the paper's S and B widths with 4-pixel patches (64 tokens at 32 px).
_META_SMALL_INPUT = dict(_META, native_size=32, min_size=4)


@register_model(**_META_SMALL_INPUT)
def mixer_s_patch4_32(**kwargs):
    """Mixer-S with 4×4 patches for 32-px inputs (the paper's Mixer-S/16 sees 196 tokens at 224 px)."""
    return _mixer(dict(patch_size=4, **_SMALL), kwargs)


@register_model(**_META_SMALL_INPUT)
def mixer_b_patch4_32(**kwargs):
    """Mixer-B with 4×4 patches for 32-px inputs (the paper's Mixer-B/16 sees 196 tokens at 224 px)."""
    return _mixer(dict(patch_size=4, **_BASE), kwargs)
