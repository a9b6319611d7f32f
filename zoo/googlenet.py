"""GoogLeNet (Inception v1) — Szegedy et al., "Going Deeper with Convolutions", CVPR 2015.

The network of the paper's Table 1, without the later BatchNorm and without torchvision's 3×3-for-5×5
slip: stem 7×7/2 conv 64, 3×3/2 max-pool, LRN, 1×1 conv 64, 3×3 conv 192, LRN, 3×3/2 max-pool; nine
inception modules 3a-5b (branches 1×1 | 1×1 → 3×3 | 1×1 → 5×5 | 3×3 max-pool → 1×1) with 3×3/2 max-pools
after 3b and 4e; global average pool, dropout 0.4, FC. Every conv has a bias and a ReLU. Max-pools round
up (Caffe's ceil mode), which gives the paper's 112-56-28-14-7 grid at 224 px. 6,998,552 params without the
auxiliary heads.

Auxiliary classifiers on 4a and 4d (5×5/3 average pool, 1×1 conv 128, FC 1024, dropout 0.7, FC), used in
training only: the model returns ``(logits, (aux_4a, aux_4d))`` in training mode and plain logits in eval;
their losses are weighted 0.3. ``aux_logits=False`` builds the network without them.

Deviations: the auxiliary pool is followed by an adaptive pool to the paper's 4×4 grid so that any input
works (at 224 px it is the identity); LRN uses the authors' Caffe settings (size 5, α=1e-4, β=0.75), which
the paper does not give. The paper gives no initialisation either: weights are Xavier-uniform with conv
biases 0.2 and FC biases 0, as in the authors' Caffe reference model.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from zoo.layers import ClassifierHead, ImageClassifier, aux_avg_pool, conv_relu
from zoo.registry import register_model


def _max_pool() -> nn.MaxPool2d:
    return nn.MaxPool2d(3, 2, ceil_mode=True)


def _lrn() -> nn.LocalResponseNorm:
    return nn.LocalResponseNorm(size=5, alpha=1e-4, beta=0.75, k=1.0)


class Inception(nn.Module):
    """Four parallel branches concatenated: 1×1 | 1×1 → 3×3 | 1×1 → 5×5 | max-pool 3×3/1 → 1×1."""

    def __init__(self, in_chs: int, ch1x1: int, ch3x3_reduce: int, ch3x3: int, ch5x5_reduce: int, ch5x5: int,
                 pool_proj: int):
        super().__init__()
        self.branch1x1 = conv_relu(in_chs, ch1x1, 1)
        self.branch3x3 = nn.Sequential(conv_relu(in_chs, ch3x3_reduce, 1), conv_relu(ch3x3_reduce, ch3x3, 3))
        self.branch5x5 = nn.Sequential(conv_relu(in_chs, ch5x5_reduce, 1), conv_relu(ch5x5_reduce, ch5x5, 5))
        self.branch_pool = nn.Sequential(nn.MaxPool2d(3, 1, padding=1), conv_relu(in_chs, pool_proj, 1))
        self.out_channels = ch1x1 + ch3x3 + ch5x5 + pool_proj

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch1x1(x), self.branch3x3(x), self.branch5x5(x), self.branch_pool(x)], dim=1)


class AuxClassifier(nn.Module):
    """5×5/3 average pool → 1×1 conv 128 → FC 1024 → dropout 0.7 → FC."""

    def __init__(self, in_chs: int, num_classes: int):
        super().__init__()
        self.conv = conv_relu(in_chs, 128, 1)
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(128 * 4 * 4, 1024), nn.ReLU(inplace=True), nn.Dropout(0.7),
                                nn.Linear(1024, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(aux_avg_pool(x, 4)))


# Table 1: #1×1, #3×3 reduce, #3×3, #5×5 reduce, #5×5, pool proj.
MODULES = {
    "3a": (64, 96, 128, 16, 32, 32), "3b": (128, 128, 192, 32, 96, 64),
    "4a": (192, 96, 208, 16, 48, 64), "4b": (160, 112, 224, 24, 64, 64), "4c": (128, 128, 256, 24, 64, 64),
    "4d": (112, 144, 288, 32, 64, 64), "4e": (256, 160, 320, 32, 128, 128),
    "5a": (256, 160, 320, 32, 128, 128), "5b": (384, 192, 384, 48, 128, 128),
}
POOL_AFTER = ("3b", "4e")
AUX_AFTER = ("4a", "4d")


class GoogLeNet(ImageClassifier):
    def __init__(self, num_classes: int = 1000, in_chans: int = 3, aux_logits: bool = True, drop_rate: float = 0.4):
        super().__init__()
        self.stem = nn.Sequential(
            conv_relu(in_chans, 64, 7, stride=2), _max_pool(), _lrn(),
            conv_relu(64, 64, 1), conv_relu(64, 192, 3), _lrn(), _max_pool())
        self.inceptions = nn.ModuleDict()
        self.aux_heads = nn.ModuleDict()
        in_chs = 192
        for name, widths in MODULES.items():
            block = Inception(in_chs, *widths)
            in_chs = block.out_channels
            self.inceptions[name] = nn.Sequential(block, _max_pool()) if name in POOL_AFTER else block
            if aux_logits and name in AUX_AFTER:
                self.aux_heads[name] = AuxClassifier(in_chs, num_classes)
        self.head = ClassifierHead(in_chs, num_classes, pool="avg", drop=drop_rate)
        self._init_weights(self)

    @staticmethod
    def _init_weights(root: nn.Module) -> None:
        for m in root.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(m.weight)
                nn.init.constant_(m.bias, 0.2 if isinstance(m, nn.Conv2d) else 0.0)

    def _trunk(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The feature map, and the auxiliary logits when training with auxiliary heads."""
        x = self.stem(x)
        aux = []
        for name, block in self.inceptions.items():
            x = block(x)
            if self.training and name in self.aux_heads:
                aux.append(self.aux_heads[name](x))
        return x, aux

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self._trunk(x)[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        features, aux = self._trunk(x)
        logits = self.forward_head(features)
        return (logits, tuple(aux)) if aux else logits

    def reset_classifier(self, num_classes: int) -> None:
        super().reset_classifier(num_classes)
        for name, aux_head in self.aux_heads.items():
            self.aux_heads[name] = AuxClassifier(aux_head.conv[0].in_channels, num_classes)
        self._init_weights(self.aux_heads)


@register_model(family="googlenet", paper="Going Deeper with Convolutions", year=2015, native_size=224,
                min_size=31, aux_loss_weights=(0.3, 0.3))
def googlenet(*, num_classes, in_chans, img_size, **kwargs):
    del img_size  # fully convolutional trunk with global pooling; the auxiliary heads pool adaptively
    return GoogLeNet(num_classes=num_classes, in_chans=in_chans, **kwargs)
