"""Convolution blocks shared by the CNN families."""
from __future__ import annotations

from typing import Callable

import torch.nn as nn

Factory = Callable[..., nn.Module] | None


class ConvNormAct(nn.Sequential):
    """conv → norm → activation, the unit most CNN papers draw as one box.

    ``padding`` defaults to 'same'-style k//2 (times the dilation); a norm layer makes the conv's
    bias redundant, so the bias is on only when there is no norm unless asked for.
    """

    def __init__(self, in_chs: int, out_chs: int, kernel_size: int | tuple[int, int] = 3, stride: int = 1,
                 padding: int | tuple[int, int] | None = None, groups: int = 1, dilation: int = 1,
                 bias: bool | None = None, norm_layer: Factory = nn.BatchNorm2d, act_layer: Factory = nn.ReLU):
        if padding is None:
            ks = kernel_size if isinstance(kernel_size, tuple) else (kernel_size, kernel_size)
            padding = tuple(dilation * (k // 2) for k in ks)
        conv = nn.Conv2d(in_chs, out_chs, kernel_size, stride, padding, dilation=dilation, groups=groups,
                         bias=norm_layer is None if bias is None else bias)
        layers = [conv]
        if norm_layer is not None:
            layers.append(norm_layer(out_chs))
        if act_layer is not None:
            layers.append(_make_act(act_layer))
        super().__init__(*layers)
        self.out_channels = out_chs


def conv_relu(in_chs: int, out_chs: int, kernel_size: int, stride: int = 1,
              padding: int | None = None) -> ConvNormAct:
    """conv (with bias) → ReLU and no norm: the unit of the nets from before BatchNorm."""
    return ConvNormAct(in_chs, out_chs, kernel_size, stride, padding=padding, norm_layer=None)


def _make_act(act_layer: Callable[..., nn.Module]) -> nn.Module:
    # In-place activations save memory in the CNNs; layers that do not take the flag are built plainly.
    try:
        return act_layer(inplace=True)
    except TypeError:
        return act_layer()


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round channels to a multiple of ``divisor`` without dropping more than 10 % (MobileNet rule)."""
    min_value = min_value or divisor
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def he_init_conv_bn(model: nn.Module) -> None:
    """He (fan-out) normal conv weights and zero conv biases; BatchNorm as the identity (weight 1, bias 0)."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
