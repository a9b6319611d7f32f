"""SqueezeNet — Iandola et al., "SqueezeNet: AlexNet-level accuracy with 50x fewer parameters and <0.5MB
model size", 2016.

Fire module: squeeze 1×1 (s) → ReLU → [expand 1×1 (e1) ‖ expand 3×3 (e3)] → ReLU, concatenated.
Variants (the authors' forresti/SqueezeNet releases):
  * ``squeezenet1_0`` — the paper's net: conv1 96@7×7/2, max-pools 3×3/2 after conv1, fire4 and fire8.
    1,248,424 params, 0.82 GMACs.
  * ``squeezenet1_1`` — conv1 64@3×3/2, pools after conv1, fire3 and fire5: same accuracy with 2.4× fewer
    MACs. 1,235,496 params, 0.35 GMACs.
Both end with dropout 0.5 after fire9, conv10 (1×1 to the classes) and a global average pool. The seed
alias ``squeezenet`` means 1.0, the architecture the paper describes.

The head is the authors': dropout → conv10 → ReLU → global average pool, so the classifier runs on every
position (86 M of the 1.0 net's MACs at 224 px) and the logits are non-negative. ``pre_logits`` gives
the pooled fire9 features. Max-pools round their output size up (Caffe's rule). Init follows the Caffe
model: Caffe's "xavier" filler for the convs — uniform in ±√(3/fan_in), fan-in only (its default
``variance_norm: FAN_IN``), not Glorot's average of fan-in and fan-out, which shrinks every expand layer
(16 → 64 channels) by √2.5 more and leaves the deep ReLU stack's output near zero — and N(0, 0.01) for
conv10.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from zoo.layers import ClassifierHead, ImageClassifier, conv_relu
from zoo.registry import register_model

PAPER = "SqueezeNet: AlexNet-level accuracy with 50x fewer parameters and <0.5MB model size"

# (squeeze, expand 1×1, expand 3×3) of fire2 … fire9; both versions use the same fire modules.
FIRES = ((16, 64, 64), (16, 64, 64), (32, 128, 128), (32, 128, 128),
         (48, 192, 192), (48, 192, 192), (64, 256, 256), (64, 256, 256))


class Fire(nn.Module):
    def __init__(self, in_chs: int, squeeze: int, expand1x1: int, expand3x3: int):
        super().__init__()
        self.squeeze = conv_relu(in_chs, squeeze, 1)
        self.expand1x1 = conv_relu(squeeze, expand1x1, 1)
        self.expand3x3 = conv_relu(squeeze, expand3x3, 3)
        self.out_channels = expand1x1 + expand3x3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.squeeze(x)
        return torch.cat([self.expand1x1(x), self.expand3x3(x)], dim=1)


class ConvClassifierHead(ClassifierHead):
    """dropout → 1×1 conv to the classes → ReLU → global average pool (SqueezeNet's conv10 head)."""

    def __init__(self, in_features: int, num_classes: int, drop: float = 0.5):
        super().__init__(in_features, num_classes, pool="avg", drop=drop)

    def _make_fc(self, num_classes: int) -> nn.Module:
        if num_classes <= 0:
            return nn.Identity()
        conv = nn.Conv2d(self.in_features, num_classes, 1)
        nn.init.normal_(conv.weight, 0.0, 0.01)
        nn.init.zeros_(conv.bias)
        return nn.Sequential(conv, nn.ReLU(inplace=True))

    def forward(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if pre_logits or isinstance(self.fc, nn.Identity):
            return x.mean((2, 3))
        return self.fc(self.drop(x)).mean((2, 3))


class SqueezeNet(ImageClassifier):
    """``version`` '1_0' or '1_1' picks the stem and where the three max-pools sit."""

    STEMS = {"1_0": (96, 7), "1_1": (64, 3)}
    POOL_AFTER_FIRE = {"1_0": (4, 8), "1_1": (3, 5)}

    def __init__(self, version: str = "1_0", num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.5):
        super().__init__()
        if version not in self.STEMS:
            raise ValueError(f"SqueezeNet version must be one of {sorted(self.STEMS)}, got {version!r}")
        stem_chs, stem_kernel = self.STEMS[version]
        layers = [conv_relu(in_chans, stem_chs, stem_kernel, stride=2, padding=0), _max_pool()]
        in_chs = stem_chs
        for fire_index, widths in enumerate(FIRES, start=2):
            fire = Fire(in_chs, *widths)
            layers.append(fire)
            in_chs = fire.out_channels
            if fire_index in self.POOL_AFTER_FIRE[version]:
                layers.append(_max_pool())
        self.features = nn.Sequential(*layers)
        for m in self.features.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_uniform_(m.weight, nonlinearity="linear")  # gain 1: U(±√(3/fan_in))
                nn.init.zeros_(m.bias)
        self.head = ConvClassifierHead(in_chs, num_classes, drop=drop_rate)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


def _max_pool() -> nn.MaxPool2d:
    return nn.MaxPool2d(3, stride=2, ceil_mode=True)


def _squeezenet(version: str, *, num_classes, in_chans, img_size, **kwargs) -> SqueezeNet:
    del img_size  # fully convolutional with global pooling: any size from the minimum up
    return SqueezeNet(version, num_classes=num_classes, in_chans=in_chans, **kwargs)


_META = dict(family="squeezenet", paper=PAPER, year=2016, native_size=224)


@register_model(**_META, min_size=21, aliases=("squeezenet",), paper_params=1_248_424,
                paper_top1=57.5)
def squeezenet1_0(**kwargs):
    return _squeezenet("1_0", **kwargs)


@register_model(**_META, min_size=17, paper_params=1_235_496)
def squeezenet1_1(**kwargs):
    return _squeezenet("1_1", **kwargs)
