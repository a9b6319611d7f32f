"""The trunk shared by the all-MLP models (MLP-Mixer, ResMLP, gMLP).

patches → linear projection → blocks → norm → mean over patches → Linear. Each family brings its own
block; the trunk builds one per drop-path rate and hands it the patch count, because these blocks mix
tokens with one weight per patch position. A model is therefore built for one ``img_size`` and refuses
any other at forward.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn as nn

from zoo.layers.classifier import ClassifierHead, ImageClassifier
from zoo.layers.patch import PatchEmbed, check_fixed_input_size


class PatchMlpClassifier(ImageClassifier):
    """``make_block(num_patches, drop_path=rate)`` builds one block for each of ``drop_path_rates``;
    ``norm_layer(dim)`` is the final norm; ``drop_rate`` is the dropout before the classifier."""

    def __init__(self, img_size: int, patch_size: int, in_chans: int, num_classes: int, dim: int,
                 make_block: Callable[..., nn.Module], drop_path_rates: Sequence[float],
                 norm_layer: Callable[[int], nn.Module], drop_rate: float = 0.0):
        super().__init__()
        self.img_size = img_size
        self.patch_embed = PatchEmbed(img_size, patch_size, in_chans, dim)
        num_patches = self.patch_embed.num_patches
        self.blocks = nn.Sequential(*[make_block(num_patches, drop_path=rate) for rate in drop_path_rates])
        self.norm = norm_layer(dim)
        self.head = ClassifierHead(dim, num_classes, pool="mean", drop=drop_rate)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        check_fixed_input_size(x, self.img_size, type(self).__name__)
        return self.norm(self.blocks(self.patch_embed(x)))
