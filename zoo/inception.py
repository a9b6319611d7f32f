"""Inception-v3 — Szegedy, Vanhoucke, Ioffe, Shlens & Wojna, "Rethinking the Inception Architecture for
Computer Vision", CVPR 2016.

The network of the paper's Table 1 at 299 px: a stem of five convs and two max-pools (35×35×192), three
35×35 modules with the 5×5 branch kept and the double-3×3 branch (Figure 5), a grid reduction to 17×17
(Figure 10), four 17×17 modules with 7×7 convs factorised into 1×7 and 7×1 (Figure 6), a reduction to
8×8, two 8×8 modules with expanded 1×3 | 3×1 filter banks (Figure 7), global average pool, dropout, FC.
Every conv is conv (no bias) → BN (ε=1e-3) → ReLU. 23,834,568 params without the auxiliary head; the
widths are those of the authors' TF-Slim release, which torchvision and timm share.

The BN-auxiliary classifier on the last 17×17 module (5×5/3 average pool, 1×1 conv 128, a 5×5 conv 768
as the batch-normalised "fully connected" layer, FC) is used in training only: the model returns
``(logits, (aux,))`` in training mode and plain logits in eval; ``aux_logits=False`` leaves it out. The
paper gives no weight for its loss; the zoo uses 0.4, the weight of the authors' TF-Slim training script.

Deviations: the auxiliary pool is followed by an adaptive pool to the paper's 5×5 grid so that any input
from 75 px works (at 299 px it is the identity). Dropout before the classifier is 0.2 (TF-Slim's keep
probability 0.8; the paper gives none). The paper gives no initialisation; PyTorch's default is kept.
"""
from __future__ import annotations

from functools import partial

import torch
import torch.nn as nn

from zoo.layers import ClassifierHead, ConvNormAct, ImageClassifier, aux_avg_pool
from zoo.registry import register_model

# The TF-Slim BN epsilon, which the published counts and weights were made with.
_norm = partial(nn.BatchNorm2d, eps=1e-3)


def conv_bn(in_chs: int, out_chs: int, kernel: int | tuple[int, int], stride: int = 1,
            padding: int | tuple[int, int] | None = None) -> ConvNormAct:
    """conv → BN → ReLU; 'same' padding unless given (``padding=0`` for the 'valid' convs)."""
    return ConvNormAct(in_chs, out_chs, kernel, stride, padding=padding, norm_layer=_norm)


def _avg_pool_proj(in_chs: int, out_chs: int) -> nn.Sequential:
    """The pool branch: 3×3/1 average pool → 1×1 projection."""
    return nn.Sequential(nn.AvgPool2d(3, 1, padding=1), conv_bn(in_chs, out_chs, 1))


class Branches(nn.Module):
    """Concatenation of parallel branches over the channel axis."""

    def __init__(self, *branches: nn.Module):
        super().__init__()
        self.branches = nn.ModuleList(branches)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([branch(x) for branch in self.branches], dim=1)


class InceptionA(Branches):
    """35×35 module: 1×1 | 1×1 → 5×5 | 1×1 → 3×3 → 3×3 | pool → 1×1."""

    def __init__(self, in_chs: int, pool_proj: int):
        super().__init__(
            conv_bn(in_chs, 64, 1),
            nn.Sequential(conv_bn(in_chs, 48, 1), conv_bn(48, 64, 5)),
            nn.Sequential(conv_bn(in_chs, 64, 1), conv_bn(64, 96, 3), conv_bn(96, 96, 3)),
            _avg_pool_proj(in_chs, pool_proj))
        self.out_channels = 64 + 64 + 96 + pool_proj


class ReductionA(Branches):
    """35 → 17: 3×3/2 conv | 1×1 → 3×3 → 3×3/2 | 3×3/2 max-pool."""

    def __init__(self, in_chs: int):
        super().__init__(
            conv_bn(in_chs, 384, 3, 2, padding=0),
            nn.Sequential(conv_bn(in_chs, 64, 1), conv_bn(64, 96, 3), conv_bn(96, 96, 3, 2, padding=0)),
            nn.MaxPool2d(3, 2))
        self.out_channels = 384 + 96 + in_chs


class InceptionB(Branches):
    """17×17 module with factorised 7×7s: 1×1 | 1×7 → 7×1 | (7×1 → 1×7) twice | pool → 1×1."""

    def __init__(self, in_chs: int, mid: int):
        super().__init__(
            conv_bn(in_chs, 192, 1),
            nn.Sequential(conv_bn(in_chs, mid, 1), conv_bn(mid, mid, (1, 7)), conv_bn(mid, 192, (7, 1))),
            nn.Sequential(conv_bn(in_chs, mid, 1), conv_bn(mid, mid, (7, 1)), conv_bn(mid, mid, (1, 7)),
                          conv_bn(mid, mid, (7, 1)), conv_bn(mid, 192, (1, 7))),
            _avg_pool_proj(in_chs, 192))
        self.out_channels = 4 * 192


class ReductionB(Branches):
    """17 → 8: 1×1 → 3×3/2 | 1×1 → 1×7 → 7×1 → 3×3/2 | 3×3/2 max-pool."""

    def __init__(self, in_chs: int):
        super().__init__(
            nn.Sequential(conv_bn(in_chs, 192, 1), conv_bn(192, 320, 3, 2, padding=0)),
            nn.Sequential(conv_bn(in_chs, 192, 1), conv_bn(192, 192, (1, 7)), conv_bn(192, 192, (7, 1)),
                          conv_bn(192, 192, 3, 2, padding=0)),
            nn.MaxPool2d(3, 2))
        self.out_channels = 320 + 192 + in_chs


class SplitConv(Branches):
    """A 1×3 and a 3×1 conv side by side on the same input (the expanded filter bank of Figure 7)."""

    def __init__(self, in_chs: int, out_chs: int):
        super().__init__(conv_bn(in_chs, out_chs, (1, 3)), conv_bn(in_chs, out_chs, (3, 1)))


class InceptionC(Branches):
    """8×8 module: 1×1 | 1×1 → (1×3 ‖ 3×1) | 1×1 → 3×3 → (1×3 ‖ 3×1) | pool → 1×1."""

    def __init__(self, in_chs: int):
        super().__init__(
            conv_bn(in_chs, 320, 1),
            nn.Sequential(conv_bn(in_chs, 384, 1), SplitConv(384, 384)),
            nn.Sequential(conv_bn(in_chs, 448, 1), conv_bn(448, 384, 3), SplitConv(384, 384)),
            _avg_pool_proj(in_chs, 192))
        self.out_channels = 320 + 2 * 384 + 2 * 384 + 192


class AuxClassifier(nn.Module):
    """5×5/3 average pool → 1×1 conv 128 → 5×5 conv 768 (the BN 'fully connected' layer) → FC."""

    def __init__(self, in_chs: int, num_classes: int):
        super().__init__()
        self.convs = nn.Sequential(conv_bn(in_chs, 128, 1), conv_bn(128, 768, 5, padding=0))
        self.fc = nn.Linear(768, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.convs(aux_avg_pool(x, 5)).flatten(1))


class InceptionV3(ImageClassifier):
    def __init__(self, num_classes: int = 1000, in_chans: int = 3, aux_logits: bool = True, drop_rate: float = 0.2):
        super().__init__()
        self.stem = nn.Sequential(
            conv_bn(in_chans, 32, 3, 2, padding=0), conv_bn(32, 32, 3, padding=0), conv_bn(32, 64, 3),
            nn.MaxPool2d(3, 2),
            conv_bn(64, 80, 1), conv_bn(80, 192, 3, padding=0),
            nn.MaxPool2d(3, 2))
        modules_35 = [InceptionA(192, 32), InceptionA(256, 64), InceptionA(288, 64), ReductionA(288)]
        modules_17 = [InceptionB(768, 128), InceptionB(768, 160), InceptionB(768, 160), InceptionB(768, 192)]
        self.grid_35 = nn.Sequential(*modules_35)
        self.grid_17 = nn.Sequential(*modules_17)
        self.aux_head = AuxClassifier(768, num_classes) if aux_logits else None
        reduction_b = ReductionB(768)
        self.grid_8 = nn.Sequential(reduction_b, InceptionC(reduction_b.out_channels), InceptionC(2048))
        self.head = ClassifierHead(2048, num_classes, pool="avg", drop=drop_rate)

    def _trunk(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The feature map, and the auxiliary logits when training with the auxiliary head."""
        x = self.grid_17(self.grid_35(self.stem(x)))
        aux = self.aux_head(x) if self.training and self.aux_head is not None else None
        return self.grid_8(x), aux

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self._trunk(x)[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        features, aux = self._trunk(x)
        logits = self.forward_head(features)
        return logits if aux is None else (logits, (aux,))

    def reset_classifier(self, num_classes: int) -> None:
        super().reset_classifier(num_classes)
        if self.aux_head is not None:
            self.aux_head.fc = nn.Linear(768, num_classes)


@register_model(family="inception", paper="Rethinking the Inception Architecture for Computer Vision", year=2016,
                native_size=299, min_size=75, aliases=("inceptionv3",), aux_loss_weights=(0.4,), paper_top1=78.8)
def inception_v3(*, num_classes, in_chans, img_size, **kwargs):
    del img_size  # fully convolutional trunk with global pooling; the auxiliary head pools adaptively
    return InceptionV3(num_classes=num_classes, in_chans=in_chans, **kwargs)
