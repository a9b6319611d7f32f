"""ResNet — He et al., "Deep Residual Learning for Image Recognition", CVPR 2016, and the two families
that change only its block: ResNeXt — Xie et al., "Aggregated Residual Transformations for Deep Neural
Networks", CVPR 2017 — and SE-ResNet — Hu et al., "Squeeze-and-Excitation Networks", CVPR 2018.

Variants: ResNet-18/34 (basic blocks) and ResNet-50/101/152 (bottlenecks), each in the paper's ImageNet
layout (7×7/2 stem, 3×3/2 max-pool); ResNet-18/34/50 also in a CIFAR layout (3×3/1 stem, no max-pool; the
layout of SAM's and most CIFAR ResNet-18 baselines, not the paper's 6n+2 CIFAR nets). ``resnet18_sam`` is the
CIFAR ResNet-18 once more, registered so that its name selects the SAM recipe (Foret et al. 2021).
ResNeXt-50 (32×4d): grouped 3×3 in every bottleneck, 32 groups of 4 channels in the first stage, doubling
per stage. ResNeXt-29 (8×64d) is the ResNeXt paper's CIFAR net: a 3×3 64-channel stem, three stages of
three bottlenecks with outputs 256/512/1024 and 8 groups of 64 channels (doubling per stage), 34.4M params
at 10 classes. SE-ResNet-18/50: a squeeze-excitation gate (reduction r=16, FCs with biases as in the
paper) on the residual branch, before the addition.

Options: ``stride_in_1x1`` puts a bottleneck's stride on its first 1×1 as in the paper and the
original Caffe model (3.88 GMACs for ResNet-50, registered as ``resnet50_v1``); the default puts it on the
3×3 ("v1.5", torchvision, 4.11 GMACs; ``resnet50``). SE-ResNet-50 uses the paper's (Caffe) placement, which
gives its 3.87 GMACs; ResNeXt's own code puts the stride on the 3×3. ``zero_init_last`` zero-initialises the
last BatchNorm of each residual branch (Goyal et al., 2017), off by default since the paper does not do it.
``stem_pool="ceil"`` makes the stem's max-pool unpadded with Caffe's round-up, as the SENet Caffe models (and
timm's ``legacy_seresnet*`` ports) have it; ``act_before_se`` puts a ReLU between a basic block's second BN and
its SE gate, as timm's ``legacy_seresnet18`` does.
Projection shortcuts (option B) on every change of shape. Weights use He (fan-out) init, as the paper
cites.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from zoo.layers import ClassifierHead, ConvNormAct, ImageClassifier, SqueezeExcite, he_init_conv_bn
from zoo.registry import register_model

PAPER = "Deep Residual Learning for Image Recognition"


class BasicBlock(nn.Module):
    """3×3 → 3×3, the block of ResNet-18/34."""

    expansion = 1

    def __init__(self, in_chs: int, width: int, stride: int = 1, se_ratio: float = 0.0, act_before_se: bool = False):
        super().__init__()
        if act_before_se and not se_ratio:
            raise ValueError("act_before_se puts a ReLU between the second BatchNorm and the SE gate: it needs an SE "
                             "gate (se_resnet18)")
        out_chs = width * self.expansion
        self.conv1 = ConvNormAct(in_chs, width, 3, stride)
        self.conv2 = ConvNormAct(width, out_chs, 3, act_layer=nn.ReLU if act_before_se else None)
        self.se = SqueezeExcite(out_chs, max(1, int(out_chs * se_ratio))) if se_ratio else nn.Identity()
        self.shortcut = _shortcut(in_chs, out_chs, stride)
        self.act = nn.ReLU(inplace=True)

    def last_norm(self) -> nn.BatchNorm2d:
        return self.conv2[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _add_and_activate(self.se(self.conv2(self.conv1(x))), self.shortcut(x), self.act)


class Bottleneck(nn.Module):
    """1×1 reduce → 3×3 (optionally grouped, ResNeXt) → 1×1 expand ×4, the block of ResNet-50 and up."""

    expansion = 4

    def __init__(self, in_chs: int, width: int, stride: int = 1, se_ratio: float = 0.0, groups: int = 1,
                 base_width: int = 64, stride_in_1x1: bool = False):
        super().__init__()
        inner = int(width * base_width / 64) * groups
        out_chs = width * self.expansion
        stride_1x1, stride_3x3 = (stride, 1) if stride_in_1x1 else (1, stride)
        self.conv1 = ConvNormAct(in_chs, inner, 1, stride_1x1)
        self.conv2 = ConvNormAct(inner, inner, 3, stride_3x3, groups=groups)
        self.conv3 = ConvNormAct(inner, out_chs, 1, act_layer=None)
        self.se = SqueezeExcite(out_chs, max(1, int(out_chs * se_ratio))) if se_ratio else nn.Identity()
        self.shortcut = _shortcut(in_chs, out_chs, stride)
        self.act = nn.ReLU(inplace=True)

    def last_norm(self) -> nn.BatchNorm2d:
        return self.conv3[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _add_and_activate(self.se(self.conv3(self.conv2(self.conv1(x)))), self.shortcut(x), self.act)


def _add_and_activate(branch: torch.Tensor, shortcut: torch.Tensor, act: nn.Module) -> torch.Tensor:
    # In place: the branch ends in a BatchNorm or an SE product, whose backward needs only their inputs, so its
    # output can take the sum. One block-sized allocation fewer per block (torchvision adds in place too).
    branch += shortcut
    return act(branch)


def _shortcut(in_chs: int, out_chs: int, stride: int) -> nn.Module:
    if stride == 1 and in_chs == out_chs:
        return nn.Identity()
    return ConvNormAct(in_chs, out_chs, 1, stride, act_layer=None)


# The stem's 3×3/2 max-pool: padded by 1 (torchvision, timm's ResNet), or unpadded rounding up (Caffe).
STEM_POOLS = {"pad": lambda: nn.MaxPool2d(3, stride=2, padding=1),
              "ceil": lambda: nn.MaxPool2d(3, stride=2, ceil_mode=True)}


class ResNet(ImageClassifier):
    def __init__(self, block: type[nn.Module], depths: tuple[int, ...], num_classes: int = 1000, in_chans: int = 3,
                 cifar_stem: bool = False, widths: tuple[int, ...] = (64, 128, 256, 512), drop_rate: float = 0.0,
                 zero_init_last: bool = False, stem_pool: str = "pad", **block_kwargs):
        super().__init__()
        stem_width = widths[0]
        if stem_pool not in STEM_POOLS:
            raise ValueError(f"stem_pool must be one of {sorted(STEM_POOLS)}, got {stem_pool!r}")
        if cifar_stem:
            self.stem = ConvNormAct(in_chans, stem_width, 3)
        else:
            self.stem = nn.Sequential(ConvNormAct(in_chans, stem_width, 7, 2), STEM_POOLS[stem_pool]())
        stages, in_chs = [], stem_width
        for i, (width, depth) in enumerate(zip(widths, depths)):
            blocks = []
            for j in range(depth):
                stride = 2 if i > 0 and j == 0 else 1
                blocks.append(block(in_chs, width, stride, **block_kwargs))
                in_chs = width * block.expansion
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.head = ClassifierHead(in_chs, num_classes, pool="avg", drop=drop_rate)
        self._init_weights(zero_init_last)

    def _init_weights(self, zero_init_last: bool) -> None:
        he_init_conv_bn(self)
        if zero_init_last:
            for m in self.modules():
                if isinstance(m, (BasicBlock, Bottleneck)):
                    nn.init.zeros_(m.last_norm().weight)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(x))


def _resnet(block, depths, *, num_classes, in_chans, img_size, **kwargs) -> ResNet:
    del img_size  # fully convolutional with global pooling: any size from the minimum up
    return ResNet(block, depths, num_classes=num_classes, in_chans=in_chans, **kwargs)


_IMAGENET = dict(family="resnet", paper=PAPER, year=2016, native_size=224, min_size=32)
_CIFAR = dict(family="resnet", paper=PAPER, year=2016, native_size=32, min_size=8)


@register_model(**_IMAGENET, aliases=("resnet",), paper_params=11_689_512, paper_top1=72.1)
def resnet18(**kwargs):
    return _resnet(BasicBlock, (2, 2, 2, 2), **kwargs)


@register_model(**_IMAGENET, paper_params=21_797_672, paper_top1=75.5)
def resnet34(**kwargs):
    return _resnet(BasicBlock, (3, 4, 6, 3), **kwargs)


@register_model(**_IMAGENET, paper_params=25_557_032, paper_top1=77.15)
def resnet50(**kwargs):
    return _resnet(Bottleneck, (3, 4, 6, 3), **kwargs)


@register_model(**_IMAGENET, paper_params=25_557_032, paper_top1=77.15)
def resnet50_v1(**kwargs):
    return _resnet(Bottleneck, (3, 4, 6, 3), **{"stride_in_1x1": True, **kwargs})


@register_model(**_IMAGENET, paper_params=44_549_160, paper_top1=78.25)
def resnet101(**kwargs):
    return _resnet(Bottleneck, (3, 4, 23, 3), **kwargs)


@register_model(**_IMAGENET, paper_params=60_192_808, paper_top1=78.57)
def resnet152(**kwargs):
    return _resnet(Bottleneck, (3, 8, 36, 3), **kwargs)


@register_model(**_CIFAR)
def resnet18_cifar(**kwargs):
    return _resnet(BasicBlock, (2, 2, 2, 2), cifar_stem=True, **kwargs)


@register_model(**_CIFAR)
def resnet34_cifar(**kwargs):
    return _resnet(BasicBlock, (3, 4, 6, 3), cifar_stem=True, **kwargs)


@register_model(**_CIFAR)
def resnet50_cifar(**kwargs):
    return _resnet(Bottleneck, (3, 4, 6, 3), cifar_stem=True, **kwargs)


@register_model(**_CIFAR)
def resnet18_sam(**kwargs):
    """CIFAR ResNet-18 under the name that selects the SAM recipe (configs/models/resnet.yaml)."""
    return _resnet(BasicBlock, (2, 2, 2, 2), cifar_stem=True, **kwargs)


RESNEXT_PAPER = "Aggregated Residual Transformations for Deep Neural Networks"
SENET_PAPER = "Squeeze-and-Excitation Networks"


@register_model(family="resnext", paper=RESNEXT_PAPER, year=2017, native_size=224, min_size=32,
                aliases=("resnext",), paper_params=25_028_904, paper_top1=77.8)
def resnext50_32x4d(**kwargs):
    return _resnet(Bottleneck, (3, 4, 6, 3), groups=32, base_width=4, **kwargs)


@register_model(family="resnext", paper=RESNEXT_PAPER, year=2017, native_size=32, min_size=8)
def resnext29_8x64d(**kwargs):
    return _resnet(Bottleneck, (3, 3, 3), widths=(64, 128, 256), cifar_stem=True, groups=8, base_width=64,
                   **kwargs)


@register_model(family="senet", paper=SENET_PAPER, year=2018, native_size=224, min_size=32, aliases=("senet",))
def se_resnet18(**kwargs):
    return _resnet(BasicBlock, (2, 2, 2, 2), se_ratio=1 / 16, **kwargs)


@register_model(family="senet", paper=SENET_PAPER, year=2018, native_size=224, min_size=32,
                paper_params=28_088_024, paper_top1=76.71)
def se_resnet50(**kwargs):
    return _resnet(Bottleneck, (3, 4, 6, 3), se_ratio=1 / 16, stride_in_1x1=True, **kwargs)
