"""NFNet — Brock, De, Smith & Simonyan, "High-Performance Large-Scale Image Recognition Without
Normalization", ICML 2021.

Variants: NFNet-F0 to F3. All share widths 256-512-1536-1536 and stage strides 1-2-2-2; F<k> has
depths (k+1)·(1, 2, 6, 3). Per variant (official ``base.nfnet_params``):

    variant  depths         train / test px  dropout  RandAugment (layers, magnitude)
    F0       1, 2, 6, 3     192 / 256        0.2      "405"  (4, 5)
    F1       2, 4, 12, 6    224 / 320        0.3      "410"  (4, 10)
    F2       3, 6, 18, 9    256 / 352        0.4      "410"
    F3       4, 8, 24, 12   320 / 416        0.4      "415"

The registered ``native_size`` is the test size; ``NFNET_VARIANTS`` keeps the train size for recipes.

The network has no normalisation layer. Signal is kept at unit scale by construction:
* every conv is a ``WSConv2d`` (scaled weight standardisation with a learned gain) and every
  nonlinearity a ``ScaledActivation`` (tanh-approximated GELU × 1.7015, as jax.nn.gelu), so each
  conv-activation pair preserves variance;
* each residual block is ``x + α · skip_gain · f(β · act(x))``. β = 1/expected std of x, tracked
  analytically: the variance grows by α² per block and is reset to 1 (plus one block of growth, 1 + α²)
  after the first block of each stage, whose projection shortcut re-normalises the signal. α = 0.2.
  ``skip_gain`` is a scalar initialised to 0 (SkipInit), so at init every block is its shortcut;
* the squeeze-excite gate is doubled (a sigmoid at init halves the signal).

Block (pre-activation bottleneck, width = 0.5 × output width, 3×3 convs grouped by 128 channels):
act·β → 1×1 → act → 3×3 (stride) → act → 3×3 → act → 1×1 → SE×2 → stochastic depth → ×skip_gain·α,
plus the shortcut: identity on the raw input, or on a change of shape 1×1 WSConv of the activated input
(after a 2×2 average pool when strided). Stem: 3×3/2 16 → 32 → 64 → 3×3/2 128 (no activation after the
last; each block begins with one). Head: 1×1 WSConv to 2 × 1536 = 3072 → act → global average pool →
dropout → Linear, initialised N(0, 0.01) with zero bias.

Stochastic depth follows the official code: rate 0.25 · i / (number of blocks) for block i (0 for the
first), and a dropped sample keeps only its shortcut with no 1/keep rescaling of the kept ones.

For adaptive gradient clipping: the final classifier is ``model.head.fc``, the only ``nn.Linear`` in
the model (the SE layers are 1×1 convs), which the paper excludes from clipping.

Size: F0 has 71,489,284 parameters at 1000 classes and 12.38 GMACs at 256 px (6.98 G at 192), the
paper's count. fvcore reports 12.62 G for timm's F0 only because it also counts timm's weight
standardisation (a batch_norm over the 46.5 M conv weights, 5 ops each).

Deliberate deviations from the official JAX code (none changes the parameter count or MACs):
* symmetric k//2 padding instead of TensorFlow 'SAME' (which pads strided 3×3 convs only at the
  bottom/right); same output sizes, the strided taps are shifted by one pixel;
* SE fully connected layers are 1×1 convolutions (identical parameters and arithmetic).

Options for the conventions of other implementations (``zoo.pretrained`` sets them for timm's
``dm_nfnet_f*`` weights): ``padding="same"`` (TF SAME, the official code's), ``ws_eps`` / ``ws_eps_mode="add"``
(timm: N·(Var + 1e-5)), ``gelu_approximate="none"`` (timm's exact GELU).

Kept as official where timm differs: WS eps bounds N·Var(W) from below at 1e-4 (timm adds 1e-5 to
Var(W); numerically negligible). The shortcut's average pool runs in ceil mode without counting
padding, which is exactly 'SAME' pooling, so it agrees with the strided conv on odd input sizes
(min_size is 32, the total stride; smaller inputs also run, on 1×1 maps padded by the 3×3 convs).
Init as official: N(0, 1/fan_in) for WSConv weights, truncated (±2σ) N(0, 1/fan_in) for the SE
layers, zero biases.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial

import torch
import torch.nn as nn

from zoo.layers import ClassifierHead, DropPath, ImageClassifier, ScaledActivation, SqueezeExcite, WSConv2d
from zoo.registry import register_model

PAPER = "High-Performance Large-Scale Image Recognition Without Normalization"


@dataclass(frozen=True)
class NFNetVariant:
    depths: tuple[int, int, int, int]
    train_size: int
    test_size: int
    drop_rate: float
    randaug: str  # official "RA_level": layers then magnitude, e.g. "405" = 4 layers at magnitude 5


NFNET_VARIANTS = {
    "nfnet_f0": NFNetVariant((1, 2, 6, 3), 192, 256, 0.2, "405"),
    "nfnet_f1": NFNetVariant((2, 4, 12, 6), 224, 320, 0.3, "410"),
    "nfnet_f2": NFNetVariant((3, 6, 18, 9), 256, 352, 0.4, "410"),
    "nfnet_f3": NFNetVariant((4, 8, 24, 12), 320, 416, 0.4, "415"),
}


class NFBlock(nn.Module):
    """Normalizer-free bottleneck: x + α · skip_gain · residual(β · act(x))."""

    def __init__(self, in_chs: int, out_chs: int, stride: int, beta: float, alpha: float, drop_path: float,
                 act: str = "gelu", expansion: float = 0.5, group_size: int = 128, se_ratio: float = 0.5,
                 conv_layer=WSConv2d, gelu_approximate: str = "tanh"):
        super().__init__()
        groups = int(out_chs * expansion) // group_size
        width = groups * group_size
        self.beta, self.alpha = beta, alpha
        self.act = ScaledActivation(act, gelu_approximate)
        self.conv0 = conv_layer(in_chs, width, 1)
        self.conv1 = conv_layer(width, width, 3, stride, groups=groups)
        self.conv1b = conv_layer(width, width, 3, groups=groups)
        self.conv2 = conv_layer(width, out_chs, 1)
        self.se = SqueezeExcite(out_chs, max(1, int(out_chs * se_ratio)), scale=2.0)
        self.drop_path = DropPath(drop_path, scale_by_keep=False)
        self.skip_gain = nn.Parameter(torch.zeros(()))
        if stride > 1 or in_chs != out_chs:
            pool = nn.AvgPool2d(2, 2, ceil_mode=True, count_include_pad=False) if stride > 1 else nn.Identity()
            self.shortcut = nn.Sequential(pool, conv_layer(in_chs, out_chs, 1))
        else:
            self.shortcut = None  # identity on the raw (un-activated, un-scaled) input

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act(x, self.beta)
        shortcut = x if self.shortcut is None else self.shortcut(out)
        out = self.conv0(out)
        out = self.conv1(self.act(out))
        out = self.conv1b(self.act(out))
        out = self.conv2(self.act(out))
        # Stochastic depth drops a sample's whole branch, so its mask joins the per-sample branch gain (B×1×1×1)
        # and the branch is scaled once, fused with the residual sum.
        branch_gain = self.drop_path((self.skip_gain * self.alpha).expand(out.shape[0], 1, 1, 1))
        return torch.addcmul(shortcut, self.se(out), branch_gain)


class NFNet(ImageClassifier):
    def __init__(self, depths: tuple[int, ...], widths: tuple[int, ...] = (256, 512, 1536, 1536),
                 num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.2, drop_path_rate: float = 0.25,
                 alpha: float = 0.2, act: str = "gelu", final_conv_mult: int = 2, padding: str = "symmetric",
                 ws_eps: float = 1e-4, ws_eps_mode: str = "bound", gelu_approximate: str = "tanh"):
        super().__init__()
        stem_chs = widths[0] // 2
        conv_layer = partial(WSConv2d, eps=ws_eps, eps_mode=ws_eps_mode, padding=padding)
        scaled_act = partial(ScaledActivation, act, gelu_approximate)
        self.stem = nn.Sequential(
            conv_layer(in_chans, 16, 3, 2), scaled_act(),
            conv_layer(16, 32, 3), scaled_act(),
            conv_layer(32, 64, 3), scaled_act(),
            conv_layer(64, stem_chs, 3, 2))
        num_blocks, index = sum(depths), 0
        expected_std, in_chs, stages = 1.0, stem_chs, []
        for stage_index, (width, depth) in enumerate(zip(widths, depths)):
            blocks = []
            for block_index in range(depth):
                stride = 2 if stage_index > 0 and block_index == 0 else 1
                blocks.append(NFBlock(in_chs, width, stride, beta=1.0 / expected_std, alpha=alpha,
                                      drop_path=drop_path_rate * index / num_blocks, act=act,
                                      conv_layer=conv_layer, gelu_approximate=gelu_approximate))
                in_chs, index = width, index + 1
                if block_index == 0:
                    expected_std = 1.0  # the stage's projection shortcut restarts the signal at unit variance
                expected_std = (expected_std ** 2 + alpha ** 2) ** 0.5
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.final_conv = conv_layer(in_chs, final_conv_mult * in_chs, 1)
        self.final_act = scaled_act()
        self.head = ClassifierHead(final_conv_mult * in_chs, num_classes, pool="avg", drop=drop_rate)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, SqueezeExcite):
                for conv in (m.reduce, m.expand):
                    _truncated_normal_(conv.weight, std=conv.weight[0].numel() ** -0.5)
                    nn.init.zeros_(conv.bias)
        self._init_classifier()

    def _init_classifier(self) -> None:
        if isinstance(self.head.fc, nn.Linear):
            nn.init.normal_(self.head.fc.weight, std=0.01)
            nn.init.zeros_(self.head.fc.bias)

    def reset_classifier(self, num_classes: int) -> None:
        super().reset_classifier(num_classes)
        self._init_classifier()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.final_act(self.final_conv(self.stages(self.stem(x))))


def _truncated_normal_(tensor: torch.Tensor, std: float) -> None:
    """N(0, std²) cut at ±2σ by inverse-CDF sampling (nn.init.trunc_normal_ is far slower on big tensors)."""
    edge = math.erf(2 / math.sqrt(2))  # z = √2·erfinv(u) lies in (−2, 2) for u in (−edge, edge)
    with torch.no_grad():
        tensor.uniform_(-edge, edge).erfinv_().mul_(std * math.sqrt(2))


def _nfnet(variant: str, *, num_classes, in_chans, img_size, **kwargs) -> NFNet:
    del img_size  # fully convolutional with global pooling: any size from the minimum up
    spec = NFNET_VARIANTS[variant]
    kwargs.setdefault("drop_rate", spec.drop_rate)
    return NFNet(spec.depths, num_classes=num_classes, in_chans=in_chans, **kwargs)


_META = dict(family="nfnet", paper=PAPER, year=2021, min_size=32)


@register_model(**_META, native_size=256, aliases=("nfnet",), paper_params=71_489_284, paper_top1=83.6)
def nfnet_f0(**kwargs):
    return _nfnet("nfnet_f0", **kwargs)


@register_model(**_META, native_size=320, paper_top1=84.7)
def nfnet_f1(**kwargs):
    return _nfnet("nfnet_f1", **kwargs)


@register_model(**_META, native_size=352, paper_top1=85.1)
def nfnet_f2(**kwargs):
    return _nfnet("nfnet_f2", **kwargs)


@register_model(**_META, native_size=416, paper_top1=85.7)
def nfnet_f3(**kwargs):
    return _nfnet("nfnet_f3", **kwargs)
