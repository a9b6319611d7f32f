"""ShuffleNet v1 and v2.

ShuffleNet v1 — Zhang et al., "ShuffleNet: An Extremely Efficient Convolutional Neural Network for Mobile
Devices", CVPR 2018. Stem 3×3/2 conv (24) + 3×3/2 max-pool, three stages of 4 / 8 / 4 units (the first
of each with stride 2), global pool, Linear. Unit (paper Fig. 2): 1×1 group conv (g) → BN → ReLU →
channel shuffle → depthwise 3×3 → BN → 1×1 group conv → BN, added to the input (stride 1) or
concatenated with a 3×3/2 average pool of it (stride 2), then ReLU. Bottleneck = ¼ of the stage output;
the very first 1×1 of stage 2 is not grouped (its input has only 24 channels). Stage output channels per
number of groups g, paper Table 1: g=1 144/288/576, g=2 200/400/800, g=3 240/480/960, g=4 272/544/1088,
g=8 384/768/1536. Scaling rule "ShuffleNet s×": every width × s. g=3 1×: 1,865,728 params, 0.14 GMACs.

ShuffleNet v2 — Ma et al., "ShuffleNet V2: Practical Guidelines for Efficient CNN Architecture Design",
ECCV 2018. Same stem and 4 / 8 / 4 layout; a stride-1 unit splits the channels in half, sends one half
through 1×1 → BN-ReLU → dw 3×3 → BN → 1×1 → BN-ReLU, concatenates and shuffles with 2 groups; a stride-2
unit runs both halves (dw 3×3/2 → BN → 1×1 → BN-ReLU beside the main branch) on the whole input. Then
conv5 1×1, global pool, Linear. Stage widths (paper Table 5): 0.5× 48/96/192, 1× 116/232/464,
1.5× 176/352/704, 2× 244/488/976; conv5 1024 (2048 for 2×). 1×: 2,278,604 params, 0.15 GMACs.

Channel shuffle is one function, used by both. Registered: ``shufflenetv1_g{1,2,3,4,8}_{050,100,200}``
(alias ``shufflenet`` → g=3 1×, the paper's headline model) and ``shufflenetv2_{050,100,150,200}``.

Deviations: the paper does not say how s× rounds; here stage widths are rounded to multiples of 4g (so
the ¼ bottleneck splits into g groups) and the stem to a multiple of g, which leaves every Table-1 width
and the authors' released 0.5×/2× g=3 and g=8 widths unchanged and only moves 0.5× g=2 (100 → 104) and
0.5× g=4 (136 → 144). The v1 classifier has a bias. He (fan-out) init for convs.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from zoo.layers import ClassifierHead, ConvNormAct, ImageClassifier, he_init_conv_bn, make_divisible
from zoo.registry import register_model

V1_PAPER = "ShuffleNet: An Extremely Efficient Convolutional Neural Network for Mobile Devices"
V2_PAPER = "ShuffleNet V2: Practical Guidelines for Efficient CNN Architecture Design"

STAGE_REPEATS = (4, 8, 4)
# ShuffleNet v1 Table 1 (1×): output channels of stages 2-4 for each number of groups.
V1_STAGE_WIDTHS = {1: (144, 288, 576), 2: (200, 400, 800), 3: (240, 480, 960), 4: (272, 544, 1088),
                   8: (384, 768, 1536)}
# ShuffleNet v2 Table 5: output channels of stages 2-4 and of conv5 per scale.
V2_WIDTHS = {0.5: ((48, 96, 192), 1024), 1.0: ((116, 232, 464), 1024), 1.5: ((176, 352, 704), 1024),
             2.0: ((244, 488, 976), 2048)}


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """Interleave the channels of ``groups`` groups: view (g, C/g), transpose to (C/g, g), flatten.

    Output channel j·g + i is input channel i·(C/g) + j, so after the next group conv every group sees
    channels from every previous group (ShuffleNet v1, Fig. 1).
    """
    batch, channels, height, width = x.shape
    if channels % groups:
        raise ValueError(f"channel shuffle needs channels ({channels}) divisible by groups ({groups})")
    x = x.view(batch, groups, channels // groups, height, width).transpose(1, 2)
    return x.reshape(batch, channels, height, width)


class ShuffleV1Unit(nn.Module):
    def __init__(self, in_chs: int, out_chs: int, stride: int, groups: int, group_first_conv: bool = True):
        super().__init__()
        self.stride = stride
        self.groups = groups
        mid_chs = out_chs // 4
        # A stride-2 unit concatenates its pooled input, so its branch only makes the missing channels.
        branch_out = out_chs - in_chs if stride == 2 else out_chs
        self.reduce = ConvNormAct(in_chs, mid_chs, 1, groups=groups if group_first_conv else 1)
        self.depthwise = ConvNormAct(mid_chs, mid_chs, 3, stride, groups=mid_chs, act_layer=None)
        self.expand = ConvNormAct(mid_chs, branch_out, 1, groups=groups, act_layer=None)
        self.shortcut = nn.AvgPool2d(3, stride=2, padding=1) if stride == 2 else nn.Identity()
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.reduce(x)
        if self.groups > 1:
            out = channel_shuffle(out, self.groups)
        out = self.expand(self.depthwise(out))
        if self.stride == 2:
            return self.act(torch.cat([self.shortcut(x), out], dim=1))
        return self.act(x + out)


class ShuffleNetV1(ImageClassifier):
    def __init__(self, groups: int = 3, scale: float = 1.0, num_classes: int = 1000, in_chans: int = 3,
                 drop_rate: float = 0.0):
        super().__init__()
        if groups not in V1_STAGE_WIDTHS:
            raise ValueError(f"ShuffleNet v1 groups must be one of {sorted(V1_STAGE_WIDTHS)}, got {groups}")
        stem_chs = make_divisible(24 * scale, groups)
        self.stage_widths = tuple(make_divisible(w * scale, 4 * groups) for w in V1_STAGE_WIDTHS[groups])
        self.stem = nn.Sequential(ConvNormAct(in_chans, stem_chs, 3, 2), nn.MaxPool2d(3, stride=2, padding=1))
        stages, in_chs = [], stem_chs
        for stage_index, (out_chs, repeats) in enumerate(zip(self.stage_widths, STAGE_REPEATS)):
            units = []
            for i in range(repeats):
                units.append(ShuffleV1Unit(in_chs, out_chs, 2 if i == 0 else 1, groups,
                                           group_first_conv=not (stage_index == 0 and i == 0)))
                in_chs = out_chs
            stages.append(nn.Sequential(*units))
        self.stages = nn.Sequential(*stages)
        self.head = ClassifierHead(in_chs, num_classes, pool="avg", drop=drop_rate)
        he_init_conv_bn(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(x))


class ShuffleV2Unit(nn.Module):
    def __init__(self, in_chs: int, out_chs: int, stride: int):
        super().__init__()
        self.stride = stride
        branch_chs = out_chs // 2
        if stride == 1 and in_chs != out_chs:
            raise ValueError("a stride-1 ShuffleNet v2 unit keeps its width")
        if stride == 2:
            self.side = nn.Sequential(ConvNormAct(in_chs, in_chs, 3, 2, groups=in_chs, act_layer=None),
                                      ConvNormAct(in_chs, branch_chs, 1))
        main_in = in_chs if stride == 2 else branch_chs
        self.main = nn.Sequential(ConvNormAct(main_in, branch_chs, 1),
                                  ConvNormAct(branch_chs, branch_chs, 3, stride, groups=branch_chs, act_layer=None),
                                  ConvNormAct(branch_chs, branch_chs, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            kept, x = x.chunk(2, dim=1)
            out = torch.cat([kept, self.main(x)], dim=1)
        else:
            out = torch.cat([self.side(x), self.main(x)], dim=1)
        return channel_shuffle(out, 2)


class ShuffleNetV2(ImageClassifier):
    def __init__(self, scale: float = 1.0, num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.0):
        super().__init__()
        if scale not in V2_WIDTHS:
            raise ValueError(f"ShuffleNet v2 scale must be one of {sorted(V2_WIDTHS)}, got {scale}")
        stage_widths, conv5_chs = V2_WIDTHS[scale]
        self.stem = nn.Sequential(ConvNormAct(in_chans, 24, 3, 2), nn.MaxPool2d(3, stride=2, padding=1))
        stages, in_chs = [], 24
        for out_chs, repeats in zip(stage_widths, STAGE_REPEATS):
            units = []
            for i in range(repeats):
                units.append(ShuffleV2Unit(in_chs, out_chs, 2 if i == 0 else 1))
                in_chs = out_chs
            stages.append(nn.Sequential(*units))
        self.stages = nn.Sequential(*stages)
        self.conv5 = ConvNormAct(in_chs, conv5_chs, 1)
        self.head = ClassifierHead(conv5_chs, num_classes, pool="avg", drop=drop_rate)
        he_init_conv_bn(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv5(self.stages(self.stem(x)))


def _build(cls, *, num_classes, in_chans, img_size, **kwargs):
    del img_size  # fully convolutional with global pooling: any size from the minimum up
    return cls(num_classes=num_classes, in_chans=in_chans, **kwargs)


_V1 = dict(family="shufflenet", paper=V1_PAPER, year=2018, native_size=224, min_size=32)
_V2 = dict(family="shufflenet", paper=V2_PAPER, year=2018, native_size=224, min_size=32)


def _register_v1(groups: int, scale: float, **meta) -> None:
    def builder(**kwargs):
        return _build(ShuffleNetV1, groups=groups, scale=scale, **kwargs)

    name = f"shufflenetv1_g{groups}_{round(scale * 100):03d}"
    builder.__name__ = builder.__qualname__ = name
    register_model(**_V1, name=name, **meta)(builder)


for _groups in V1_STAGE_WIDTHS:
    for _scale in (0.5, 1.0, 2.0):
        if (_groups, _scale) == (3, 1.0):  # the paper's headline model (32.6 % top-1 error)
            _register_v1(_groups, _scale, aliases=("shufflenet",), paper_params=1_865_728, paper_top1=67.4)
        else:
            _register_v1(_groups, _scale)


@register_model(**_V2)
def shufflenetv2_050(**kwargs):
    return _build(ShuffleNetV2, scale=0.5, **kwargs)


@register_model(**_V2, paper_params=2_278_604, paper_top1=69.4)
def shufflenetv2_100(**kwargs):
    return _build(ShuffleNetV2, scale=1.0, **kwargs)


@register_model(**_V2)
def shufflenetv2_150(**kwargs):
    return _build(ShuffleNetV2, scale=1.5, **kwargs)


@register_model(**_V2)
def shufflenetv2_200(**kwargs):
    return _build(ShuffleNetV2, scale=2.0, **kwargs)
