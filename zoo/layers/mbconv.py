"""The inverted residual of MobileNetV2 (Sandler et al., 2018), which EfficientNet calls MBConv and
EfficientNetV2 fuses into Fused-MBConv (Tan & Le, 2019 and 2021), written once for all three."""
from __future__ import annotations

import torch
import torch.nn as nn

from zoo.layers.conv import ConvNormAct
from zoo.layers.drop import DropPath
from zoo.layers.squeeze_excite import SqueezeExcite


class MBConv(nn.Module):
    """expand 1×1 → depthwise k×k (stride) → [SE] → project 1×1, plus the input when shapes agree.

    The projection has no activation (MobileNetV2's linear bottleneck). ``expand_ratio`` 1 drops the
    expansion. ``fused=True`` is Fused-MBConv: one regular k×k conv replaces expand + depthwise; with
    ``expand_ratio`` 1 that conv maps straight to ``out_chs`` (with activation) and there is no
    projection. The SE bottleneck is ``se_ratio`` × the block's *input* channels, as in EfficientNet.
    ``drop_path`` is the stochastic-depth rate of the residual branch.
    """

    def __init__(self, in_chs: int, out_chs: int, kernel_size: int = 3, stride: int = 1, expand_ratio: float = 6.0,
                 se_ratio: float = 0.0, fused: bool = False, drop_path: float = 0.0,
                 act_layer=nn.ReLU6, norm_layer=nn.BatchNorm2d):
        super().__init__()
        norm_act = dict(norm_layer=norm_layer, act_layer=act_layer)
        single_conv = fused and expand_ratio == 1
        mid_chs = out_chs if single_conv else round(in_chs * expand_ratio)
        if fused:
            self.conv = ConvNormAct(in_chs, mid_chs, kernel_size, stride, **norm_act)
        else:
            expand = [ConvNormAct(in_chs, mid_chs, 1, **norm_act)] if expand_ratio != 1 else []
            self.conv = nn.Sequential(*expand, ConvNormAct(mid_chs, mid_chs, kernel_size, stride, groups=mid_chs,
                                                           **norm_act))
        self.se = (SqueezeExcite(mid_chs, max(1, int(in_chs * se_ratio)), act_layer=act_layer)
                   if se_ratio > 0 else nn.Identity())
        self.project = (nn.Identity() if single_conv
                        else ConvNormAct(mid_chs, out_chs, 1, norm_layer=norm_layer, act_layer=None))
        self.has_skip = stride == 1 and in_chs == out_chs
        self.drop_path = DropPath(drop_path) if self.has_skip and drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.project(self.se(self.conv(x)))
        return x + self.drop_path(out) if self.has_skip else out
