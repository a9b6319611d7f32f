"""Pretrained weights from torchvision and timm, converted onto the zoo's modules.

    zoo.create_model("resnet50", num_classes=10, in_chans=1, pretrained="torchvision")
    zoo.create_model("vit_base_patch16_224", pretrained="path/to/vit_base_patch16_224.safetensors")

A zoo model has a *twin* when torchvision or timm ships a network that computes the same function
(``TWINS``, one ``Twin`` per pair). The converter renames each tensor of the twin's state dict to the
zoo module that plays its part, found from the names and the zoo model's own structure (which block of a
stage, whether a block expands, where a separable conv sits), never by position in the list of tensors;
every zoo tensor must be filled exactly once with a tensor of its shape, or the conversion fails naming
the tensors that do not fit. Where the twin was trained with another convention than the paper's (a
LayerNorm or BatchNorm eps, TF "SAME" padding, an activation), ``Twin.options`` builds the zoo model with
that convention, so the converted model computes the source's function. ``REFUSED`` names the zoo models
whose namesake in torchvision or timm is a different function, and why.

SOURCE is a state-dict file (.pth, .pt, .safetensors; the twin is recognised from its names) or the word
``torchvision`` / ``timm``: the twin's default weights through that library's own API and cache
(torchvision: ``$TORCH_HOME/hub/checkpoints``; timm: the Hugging Face cache). The classifier is then
re-initialised for ``num_classes`` and the first conv adapted to ``in_chans`` (timm's rule: the sum over RGB
for one channel, the RGB filters repeated and rescaled by 3/in_chans otherwise).

torchvision's Inception-v3 weights come with its ``transform_input`` on; the download folds it into the first
conv and BN (``fold_transform_input``, exact: that conv is unpadded). A state-dict *file* is taken as is.

``python -m zoo.pretrained --table`` builds every pair with random weights (no download), perturbs the
BatchNorm statistics, converts and writes the largest logit difference to
results/pretrained_equivalence.csv.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import torch
import torch.nn as nn

from zoo.registry import ModelConfigError, create_model, get_model_info, register_weights_loader, resolve_name

Rename = Callable[[str], str]
LIBRARIES = ("torchvision", "timm")


class PretrainedError(ModelConfigError):
    """Weights that cannot be loaded into the model asked for: missing, unreadable or another network's."""


# ---------------------------------------------------------------------------------------------- renaming
def substitutions(*rules: tuple[str, str | Callable[[re.Match], str]]) -> Rename:
    """A renamer applying the regex substitutions in order; a replacement may be a function of the match."""
    compiled = [(re.compile(pattern), repl) for pattern, repl in rules]

    def rename(key: str) -> str:
        for pattern, repl in compiled:
            key = pattern.sub(repl, key)
        return key

    return rename


def lookup(table: dict[str, str], template: str = "{}") -> Callable[[re.Match], str]:
    """A replacement that looks the first group up in ``table`` (one pass, so renames cannot chain)."""
    return lambda m: template.format(table[m.group(1)], *m.groups()[1:])


def by_prefix(table: dict[str, str]) -> Rename:
    """Rename the module part of a key through ``table`` (reference module → zoo module)."""

    def rename(key: str) -> str:
        module, _, tensor = key.rpartition(".")
        return f"{table[module]}.{tensor}" if module in table else key

    return rename


def stage_block_index(keys: Iterable[str], pattern: str) -> dict[tuple[int, int], int]:
    """(stage, block) → the block's position in the zoo's flat block list, from the reference's own keys."""
    pairs = {(int(m.group(1)), int(m.group(2))) for key in keys if (m := re.match(pattern, key))}
    return {pair: i for i, pair in enumerate(sorted(pairs))}


# A rename factory sees the zoo model (built with the twin's options) and the reference's keys.
RenameFactory = Callable[[nn.Module, list[str]], Rename]


def _resnet(model, keys) -> Rename:
    return substitutions(
        (r"^(?:layer0\.)?conv1\.", "stem.0.0."),
        (r"^(?:layer0\.)?bn1\.", "stem.0.1."),
        (r"^layer([1-4])\.", lambda m: f"stages.{int(m.group(1)) - 1}."),
        (r"\.conv(\d)\.", r".conv\1.0."),
        (r"\.bn(\d)\.", r".conv\1.1."),
        (r"\.downsample\.", ".shortcut."),
        (r"\.se_module\.fc1\.", ".se.reduce."),
        (r"\.se_module\.fc2\.", ".se.expand."),
        (r"^(?:fc|last_linear)\.", "head.fc."),
    )


def _sequential_convs(model, keys) -> Rename:
    """torchvision's VGG and AlexNet: ``features.i`` counts every layer (conv, BN, ReLU, pool); the zoo groups
    conv → BN → ReLU into one ConvNormAct, and puts FC6/FC7 in ``fc``."""
    table, position = {}, 0
    for index, layer in enumerate(model.features):
        if isinstance(layer, nn.Sequential):  # conv [→ BN] → ReLU
            for part, child in enumerate(layer):
                if not isinstance(child, (nn.ReLU, nn.Identity)):
                    table[f"features.{position + part}"] = f"features.{index}.{part}"
            position += len(layer)
        elif isinstance(layer, (nn.MaxPool2d, nn.LocalResponseNorm)):
            position += 1
    linears = [f"fc.{i}" for i, layer in enumerate(model.fc) if isinstance(layer, nn.Linear)] + ["head.fc"]
    reference_linears = sorted({int(m.group(1)) for k in keys if (m := re.match(r"classifier\.(\d+)\.", k))})
    table.update({f"classifier.{i}": name for i, name in zip(reference_linears, linears)})
    return by_prefix(table)


def _densenet(model, keys) -> Rename:
    return substitutions(
        (r"(denselayer\d+\.(?:norm|relu|conv))\.([12])\.", r"\1\2."),  # torchvision's pre-0.4 names
        (r"^features\.conv0\.", "stem.0."),
        (r"^features\.norm0\.", "stem.1."),
        (
            r"^features\.denseblock(\d+)\.denselayer(\d+)\.(norm1|conv1|norm2|conv2)\.",
            lambda m: (
                f"blocks.{2 * (int(m.group(1)) - 1)}.{int(m.group(2)) - 1}."
                f"{dict(norm1='reduce.0', conv1='reduce.2', norm2='conv.0', conv2='conv.2')[m.group(3)]}."
            ),
        ),
        (
            r"^features\.transition(\d+)\.(norm|conv)\.",
            lambda m: f"blocks.{2 * int(m.group(1)) - 1}.0.{0 if m.group(2) == 'norm' else 2}.",
        ),
        (r"^features\.norm5\.", "final_act.0."),
        (r"^classifier\.", "head.fc."),
    )


def _squeezenet(model, keys) -> Rename:
    # torchvision's conv1 and its ReLU are two layers, the zoo's one ConvNormAct: later indices shift by one.
    return substitutions(
        (r"^features\.0\.", "features.0.0."),
        (
            r"^features\.(\d+)\.(squeeze|expand1x1|expand3x3)\.",
            lambda m: f"features.{int(m.group(1)) - 1}.{m.group(2)}.0.",
        ),
        (r"^classifier\.1\.", "head.fc.0."),
    )


_INCEPTION_STEM = {
    "Conv2d_1a_3x3": "stem.0",
    "Conv2d_2a_3x3": "stem.1",
    "Conv2d_2b_3x3": "stem.2",
    "Conv2d_3b_1x1": "stem.4",
    "Conv2d_4a_3x3": "stem.5",
}
_INCEPTION_MODULES = {
    "Mixed_5b": "grid_35.0",
    "Mixed_5c": "grid_35.1",
    "Mixed_5d": "grid_35.2",
    "Mixed_6a": "grid_35.3",
    "Mixed_6b": "grid_17.0",
    "Mixed_6c": "grid_17.1",
    "Mixed_6d": "grid_17.2",
    "Mixed_6e": "grid_17.3",
    "Mixed_7a": "grid_8.0",
    "Mixed_7b": "grid_8.1",
    "Mixed_7c": "grid_8.2",
}
# Branch names of the TF-Slim / torchvision modules → the zoo's branch paths, per module kind (zoo/inception.py).
_INCEPTION_BRANCHES = {
    "A": {
        "branch1x1": "0",
        "branch5x5_1": "1.0",
        "branch5x5_2": "1.1",
        "branch3x3dbl_1": "2.0",
        "branch3x3dbl_2": "2.1",
        "branch3x3dbl_3": "2.2",
        "branch_pool": "3.1",
    },
    "RA": {"branch3x3": "0", "branch3x3dbl_1": "1.0", "branch3x3dbl_2": "1.1", "branch3x3dbl_3": "1.2"},
    "B": {
        "branch1x1": "0",
        "branch7x7_1": "1.0",
        "branch7x7_2": "1.1",
        "branch7x7_3": "1.2",
        **{f"branch7x7dbl_{i}": f"2.{i - 1}" for i in range(1, 6)},
        "branch_pool": "3.1",
    },
    "RB": {"branch3x3_1": "0.0", "branch3x3_2": "0.1", **{f"branch7x7x3_{i}": f"1.{i - 1}" for i in range(1, 5)}},
    "C": {
        "branch1x1": "0",
        "branch3x3_1": "1.0",
        "branch3x3_2a": "1.1.branches.0",
        "branch3x3_2b": "1.1.branches.1",
        "branch3x3dbl_1": "2.0",
        "branch3x3dbl_2": "2.1",
        "branch3x3dbl_3a": "2.2.branches.0",
        "branch3x3dbl_3b": "2.2.branches.1",
        "branch_pool": "3.1",
    },
}
_INCEPTION_KIND = {
    "Mixed_5b": "A",
    "Mixed_5c": "A",
    "Mixed_5d": "A",
    "Mixed_6a": "RA",
    "Mixed_6b": "B",
    "Mixed_6c": "B",
    "Mixed_6d": "B",
    "Mixed_6e": "B",
    "Mixed_7a": "RB",
    "Mixed_7b": "C",
    "Mixed_7c": "C",
}


def _inception(model, keys) -> Rename:
    def module(m: re.Match) -> str:
        name, branch = m.group(1), m.group(2)
        return f"{_INCEPTION_MODULES[name]}.branches.{_INCEPTION_BRANCHES[_INCEPTION_KIND[name]][branch]}."

    return substitutions(
        (r"^(Conv2d_\w+?)\.", lookup(_INCEPTION_STEM, "{}.")),
        (r"^(Mixed_\w\w)\.(\w+?)\.", module),
        (r"^AuxLogits\.conv([01])\.", r"aux_head.convs.\1."),
        (r"^AuxLogits\.fc\.", "aux_head.fc."),
        (r"\.conv\.(weight|bias)$", r".0.\1"),
        (r"\.bn\.", ".1."),
        (r"^fc\.", "head.fc."),
    )


def _mbconv_parts(block: nn.Module) -> list[str]:
    """The zoo paths of a block's convs in the reference's order: [expand,] depthwise or fused, [SE,] project."""
    from zoo.layers import MBConv

    if not isinstance(block, MBConv):
        raise PretrainedError(f"expected an MBConv block, found {type(block).__name__}")
    parts = [f"conv.{i}" for i in range(len(block.conv))] if isinstance(block.conv[0], nn.Sequential) else ["conv"]
    if not isinstance(block.se, nn.Identity):
        parts.append("se")
    if not isinstance(block.project, nn.Identity):
        parts.append("project")
    return parts


def _torchvision_mbconv(model, keys) -> Rename:
    """torchvision's MobileNetV2 / EfficientNet: ``features.stage.block.block.k`` (EfficientNet) or
    ``features.i.conv.k`` (MobileNetV2), with stem and head conv as the first and last ``features``."""
    last = max(int(m.group(1)) for k in keys if (m := re.match(r"features\.(\d+)\.", k)))
    flat = stage_block_index(keys, r"features\.(\d+)\.(\d+)\.block\.")

    def block(m: re.Match) -> str:
        if m.group(2):  # EfficientNet: the projection is one ConvNormAct
            index = flat[(int(m.group(1)), int(m.group(2)))]
            parts = _mbconv_parts(model.blocks[index])
        else:  # MobileNetV2: the projection's conv and BN are two entries
            index = int(m.group(1)) - 1
            parts = [p for p in _mbconv_parts(model.blocks[index]) if p != "project"] + ["project.0", "project.1"]
        return f"blocks.{index}.{parts[int(m.group(3))]}."

    return substitutions(
        (r"^features\.0\.", "stem."),
        (rf"^features\.{last}\.", "conv_head."),
        (r"^features\.(\d+)\.(?:(\d+)\.block|conv)\.(\d+)\.", block),
        (r"\.se\.fc1\.", ".se.reduce."),
        (r"\.se\.fc2\.", ".se.expand."),
        (r"^classifier\.1\.", "head.fc."),
    )


# timm's efficientnet builder names the convs of a block by their role.
_TIMM_BLOCK_ROLES = {  # role → (index of the conv among the zoo block's parts, conv or BN)
    "depthwise_separable": {"conv_dw": "0.0", "bn1": "0.1", "conv_pw": "-1.0", "bn2": "-1.1"},
    "inverted_residual": {
        "conv_pw": "0.0",
        "bn1": "0.1",
        "conv_dw": "1.0",
        "bn2": "1.1",
        "conv_pwl": "-1.0",
        "bn3": "-1.1",
    },
}


def _timm_mbconv(model, keys) -> Rename:
    """timm's MobileNetV1/V2 and EfficientNet: ``blocks.stage.block.{conv_dw,conv_pw,conv_pwl,bnN,se}``."""
    flat = stage_block_index(keys, r"blocks\.(\d+)\.(\d+)\.")

    def block(m: re.Match) -> str:
        index = flat[(int(m.group(1)), int(m.group(2)))]
        zoo_block, role = model.blocks[index], m.group(3)
        if isinstance(zoo_block, nn.Sequential):  # MobileNetV1: depthwise ConvNormAct, pointwise ConvNormAct
            return f"blocks.{index}.{ {'conv_dw': '0.0', 'bn1': '0.1', 'conv_pw': '1.0', 'bn2': '1.1'}[role] }."
        if role.startswith("se."):
            return f"blocks.{index}.se.{ {'conv_reduce': 'reduce', 'conv_expand': 'expand'}[role[3:]] }."
        parts = [p for p in _mbconv_parts(zoo_block) if p != "se"]
        kind = "inverted_residual" if len(parts) == 3 else "depthwise_separable"
        position, layer = _TIMM_BLOCK_ROLES[kind][role].split(".")
        return f"blocks.{index}.{parts[int(position)]}.{layer}."

    return substitutions(
        (r"^conv_stem\.", "stem.0."),
        (r"^bn1\.", "stem.1."),
        (r"^conv_head\.", "conv_head.0."),
        (r"^bn2\.", "conv_head.1."),
        (r"^blocks\.(\d+)\.(\d+)\.(conv_dw|conv_pwl|conv_pw|bn\d|se\.conv_reduce|se\.conv_expand)\.", block),
        (r"^classifier\.", "head.fc."),
    )


def _shufflenetv2(model, keys) -> Rename:
    side = {"0": "0.0", "1": "0.1", "2": "1.0", "3": "1.1"}
    main = {"0": "0.0", "1": "0.1", "3": "1.0", "4": "1.1", "5": "2.0", "6": "2.1"}
    return substitutions(
        (r"^conv1\.", "stem.0."),
        (
            r"^stage(\d)\.(\d+)\.branch([12])\.(\d)\.",
            lambda m: (
                f"stages.{int(m.group(1)) - 2}.{m.group(2)}."
                f"{'side.' + side[m.group(4)] if m.group(3) == '1' else 'main.' + main[m.group(4)]}."
            ),
        ),
        (r"^fc\.", "head.fc."),
    )


def _xception(model, keys) -> Rename:
    """timm's legacy (Keras-port) Xception: ``blockN.rep`` lists [ReLU,] separable conv, BN, ReLU, ...; the zoo
    keeps BN inside its SeparableConv, so each (conv, BN) pair maps to one zoo SeparableConv."""
    from zoo.xception import SeparableConv

    modules = list(model.entry_flow) + list(model.middle_flow) + [model.exit_flow[0]]
    paths = [f"entry_flow.{i}" for i in range(3)] + [f"middle_flow.{i}" for i in range(8)] + ["exit_flow.0"]
    table = {
        "conv1": "stem.0.0",
        "bn1": "stem.0.1",
        "conv2": "stem.1.0",
        "bn2": "stem.1.1",
        "conv3.conv1": "exit_flow.1.0",
        "conv3.pointwise": "exit_flow.1.1",
        "bn3": "exit_flow.1.2",
        "conv4.conv1": "exit_flow.3.0",
        "conv4.pointwise": "exit_flow.3.1",
        "bn4": "exit_flow.3.2",
        "fc": "head.fc",
    }
    for number, (module, path) in enumerate(zip(modules, paths), start=1):
        table[f"block{number}.skip"], table[f"block{number}.skipbn"] = f"{path}.shortcut.0", f"{path}.shortcut.1"
        offset = 1 if isinstance(module.body[0], nn.ReLU) else 0
        separables = [i for i, layer in enumerate(module.body) if isinstance(layer, SeparableConv)]
        for n, position in enumerate(separables):
            rep = offset + 3 * n
            table[f"block{number}.rep.{rep}.conv1"] = f"{path}.body.{position}.0"
            table[f"block{number}.rep.{rep}.pointwise"] = f"{path}.body.{position}.1"
            table[f"block{number}.rep.{rep + 1}"] = f"{path}.body.{position}.2"
    return by_prefix(table)


def _darknet(model, keys) -> Rename:
    return substitutions(
        (r"^stem\.conv1\.conv\.", "stem.0."),
        (r"^stem\.conv1\.bn\.", "stem.1."),
        (
            r"^stages\.(\d)\.conv_down\.(conv|bn)\.",
            lambda m: f"stages.{m.group(1)}.0.{0 if m.group(2) == 'conv' else 1}.",
        ),
        (
            r"^stages\.(\d)\.blocks\.(\d+)\.conv([12])\.(conv|bn)\.",
            lambda m: (
                f"stages.{m.group(1)}.{int(m.group(2)) + 1}.body.{int(m.group(3)) - 1}."
                f"{0 if m.group(4) == 'conv' else 1}."
            ),
        ),
    )


def _timm_vit(model, keys) -> Rename:
    return substitutions((r"^patch_embed\.proj\.", "stem.proj."), (r"^head\.", "head.fc."))


def _torchvision_vit(model, keys) -> Rename:
    return substitutions(
        (r"^conv_proj\.", "stem.proj."),
        (r"^class_token$", "cls_token"),
        (r"^encoder\.pos_embedding$", "pos_embed"),
        (r"^encoder\.layers\.encoder_layer_(\d+)\.", r"blocks.\1."),
        (r"\.ln_1\.", ".norm1."),
        (r"\.ln_2\.", ".norm2."),
        (r"\.self_attention\.in_proj_(weight|bias)$", r".attn.qkv.\1"),
        (r"\.self_attention\.out_proj\.", ".attn.proj."),
        (r"\.mlp\.0\.", ".mlp.fc1."),
        (r"\.mlp\.3\.", ".mlp.fc2."),
        (r"^encoder\.ln\.", "norm."),
        (r"^heads\.head\.", "head.fc."),
    )


def _timm_mlp(table: dict[str, str]) -> RenameFactory:
    """timm's MLP-Mixer / ResMLP / gMLP: stem.proj and a bare ``head``, block parts renamed through ``table``."""
    pattern = "|".join(re.escape(name) for name in sorted(table, key=len, reverse=True))

    def factory(model, keys) -> Rename:
        return substitutions(
            (r"^stem\.proj\.", "patch_embed.proj."),
            (r"^head\.", "head.fc."),
            (rf"^blocks\.(\d+)\.({pattern})", lambda m: f"blocks.{m.group(1)}.{table[m.group(2)]}"),
        )

    return factory


_mixer = _timm_mlp({"mlp_tokens.": "token_mlp.", "mlp_channels.": "channel_mlp."})
_resmlp = _timm_mlp({"linear_tokens.": "token_mix.", "mlp_channels.": "mlp.", "ls1": "ls1.gamma", "ls2": "ls2.gamma"})
_gmlp = _timm_mlp(
    {
        "mlp_channels.fc1.": "proj_in.",
        "mlp_channels.gate.norm.": "sgu.norm.",
        "mlp_channels.gate.proj.": "sgu.spatial_proj.",
        "mlp_channels.fc2.": "proj_out.",
    }
)


def _nfnet(model, keys) -> Rename:
    convs = {"conv1": "conv0", "conv2": "conv1", "conv2b": "conv1b", "conv3": "conv2"}
    return substitutions(
        (r"^stem\.conv(\d)\.", lambda m: f"stem.{2 * (int(m.group(1)) - 1)}."),
        (r"\.(conv1|conv2b|conv2|conv3)\.", lookup(convs, ".{}.")),
        (r"\.downsample\.conv\.", ".shortcut.1."),
        (r"\.attn_last\.fc1\.", ".se.reduce."),
        (r"\.attn_last\.fc2\.", ".se.expand."),
        (r"\.skipinit_gain$", ".skip_gain"),
    )


# ------------------------------------------------------------------------------------------------ pairs
@dataclass(frozen=True)
class Twin:
    """A zoo model and the torchvision / timm model that computes the same function once ``options`` are set."""

    model: str
    library: str
    source: str
    rename: RenameFactory = field(repr=False)
    options: dict = field(default_factory=dict)  # zoo options matching the source's conventions
    source_kwargs: dict = field(default_factory=dict)  # how the reference is built (its width, aux heads)
    convention: str = ""  # what ``options`` handles, for the docs and the table

    @property
    def label(self) -> str:
        return f"{self.library}:{self.source}"


def _pairs() -> list[Twin]:
    tv, timm = "torchvision", "timm"
    twins = []
    for depth in (18, 34, 50, 101, 152):
        for library in (tv, timm):
            twins.append(Twin(f"resnet{depth}", library, f"resnet{depth}", _resnet))
    v15 = dict(options=dict(stride_in_1x1=False), convention="ResNet-50 v1.5: stride on the 3×3 (stride_in_1x1=False)")
    twins += [
        Twin("resnet50_v1", tv, "resnet50", _resnet, **v15),
        Twin("resnet50_v1", timm, "resnet50", _resnet, **v15),
    ]
    twins += [Twin("resnext50_32x4d", lib, "resnext50_32x4d", _resnet) for lib in (tv, timm)]
    twins += [
        Twin(
            "se_resnet18",
            timm,
            "legacy_seresnet18",
            _resnet,
            dict(stem_pool="ceil", act_before_se=True),
            convention="Caffe stem pool (stem_pool='ceil'), ReLU before the SE gate (act_before_se)",
        ),
        Twin(
            "se_resnet50",
            timm,
            "legacy_seresnet50",
            _resnet,
            dict(stem_pool="ceil"),
            convention="Caffe stem pool (stem_pool='ceil')",
        ),
    ]
    for depth in (11, 13, 16, 19):
        twins += [Twin(f"vgg{depth}{bn}", tv, f"vgg{depth}{bn}", _sequential_convs) for bn in ("", "_bn")]
    twins.append(Twin("alexnet_tv", tv, "alexnet", _sequential_convs))
    twins += [Twin("densenet121", lib, "densenet121", _densenet) for lib in (tv, timm)]
    twins += [Twin(f"squeezenet1_{v}", tv, f"squeezenet1_{v}", _squeezenet) for v in (0, 1)]
    twins += [
        Twin("inception_v3", tv, "inception_v3", _inception, source_kwargs=dict(aux_logits=True, init_weights=False)),
        Twin(
            "inception_v3",
            timm,
            "inception_v3",
            _inception,
            dict(aux_logits=False),
            convention="no auxiliary head (timm ships none)",
        ),
    ]
    for width in ("050", "075", "100", "140"):
        twins.append(
            Twin(
                f"mobilenetv2_{width}",
                tv,
                "mobilenet_v2",
                _torchvision_mbconv,
                source_kwargs=dict(width_mult=int(width) / 100),
            )
        )
        twins.append(Twin(f"mobilenetv2_{width}", timm, f"mobilenetv2_{width}", _timm_mbconv))
    twins.append(
        Twin(
            "mobilenetv1_100",
            timm,
            "mobilenetv1_100",
            _timm_mbconv,
            dict(act_layer="relu6"),
            convention="ReLU6 (act_layer='relu6')",
        )
    )
    for scale, tv_name in (("050", "x0_5"), ("100", "x1_0"), ("150", "x1_5"), ("200", "x2_0")):
        twins.append(Twin(f"shufflenetv2_{scale}", tv, f"shufflenet_v2_{tv_name}", _shufflenetv2))
    for b in range(8):
        eps = dict(options=dict(bn_eps=1e-5), convention="BatchNorm eps 1e-5 (bn_eps)")
        twins.append(
            Twin(f"efficientnet_b{b}", tv, f"efficientnet_b{b}", _torchvision_mbconv, **(eps if b < 5 else {}))
        )
        twins.append(Twin(f"efficientnet_b{b}", timm, f"efficientnet_b{b}", _timm_mbconv, **eps))
    twins += [Twin(f"efficientnetv2_{s}", tv, f"efficientnet_v2_{s}", _torchvision_mbconv) for s in "sml"]
    for size, patch in (
        ("tiny", 16),
        ("small", 16),
        ("base", 16),
        ("large", 16),
        ("small", 32),
        ("base", 32),
        ("large", 32),
    ):
        twins.append(Twin(f"vit_{size}_patch{patch}_224", timm, f"vit_{size}_patch{patch}_224", _timm_vit))
        if size in ("base", "large"):
            twins.append(Twin(f"vit_{size}_patch{patch}_224", tv, f"vit_{size[0]}_{patch}", _torchvision_vit))
    twins.append(
        Twin(
            "vit_p_18gf",
            timm,
            "vit_base_patch16_224",
            _timm_vit,
            dict(norm_eps=1e-6),
            convention="LayerNorm eps 1e-6 (norm_eps)",
        )
    )
    twins += [Twin(f"mixer_{v}_224", timm, f"mixer_{v}_224", _mixer) for v in ("s16", "s32", "b16", "b32")]
    twins += [Twin(f"resmlp_{d}", timm, f"resmlp_{d}_224", _resmlp) for d in (12, 24)]
    twins += [Twin(f"gmlp_{v}16_224", timm, f"gmlp_{v}16_224", _gmlp) for v in ("ti", "s")]
    nf = dict(padding="same", ws_eps=1e-5, ws_eps_mode="add", gelu_approximate="none")
    twins += [
        Twin(
            f"nfnet_f{k}",
            timm,
            f"dm_nfnet_f{k}",
            _nfnet,
            nf,
            convention="TF SAME padding, WS eps added to Var (1e-5), exact GELU",
        )
        for k in range(4)
    ]
    twins.append(Twin("xception", timm, "legacy_xception", _xception))
    twins.append(
        Twin(
            "darknet53",
            timm,
            "darknet53",
            _darknet,
            dict(leaky_slope=0.01),
            convention="LeakyReLU slope 0.01 (leaky_slope)",
        )
    )
    return twins


TWINS: list[Twin] = _pairs()

# Zoo models whose namesake in torchvision or timm computes a different function that no option reconciles.
REFUSED = {
    "googlenet": "torchvision's googlenet is not the paper's network: it adds BatchNorm to every conv, drops the "
    "LRNs and uses a 3×3 conv where the paper has 5×5, so its weights do not fit the zoo's GoogLeNet",
    "alexnet": "torchvision's alexnet is the single-tower network of 'One weird trick' (64-192-384-256-256, no LRN, "
    "no groups): load it into alexnet_tv",
    "vit_tiny_patch32_224": "neither torchvision nor timm ships a ViT-Ti/32",
    "mobilenetv1_025": "timm's MobileNetV1 comes only at widths 1.0 and 1.25: use mobilenetv1_100",
    "mobilenetv1_050": "timm's MobileNetV1 comes only at widths 1.0 and 1.25: use mobilenetv1_100",
    "mobilenetv1_075": "timm's MobileNetV1 comes only at widths 1.0 and 1.25: use mobilenetv1_100",
}


def twins_of(name: str) -> list[Twin]:
    canonical = resolve_name(name)
    found = [twin for twin in TWINS if twin.model == canonical]
    if not found:
        reason = REFUSED.get(canonical, "it has no torchvision or timm twin")
        raise PretrainedError(
            f"{canonical} cannot load torchvision/timm weights: {reason} "
            f"(models that can: python -m zoo.pretrained --list)"
        )
    return found


# ----------------------------------------------------------------------------------------- references
def build_reference(twin: Twin, img_size: int | None = None, pretrained: bool = False) -> nn.Module:
    """The torchvision / timm model of a pair, with random weights unless ``pretrained`` (a download)."""
    kwargs = dict(twin.source_kwargs)
    if twin.library == "torchvision":
        import torchvision.models

        if img_size is not None and twin.source.startswith("vit_"):
            kwargs["image_size"] = img_size
        weights = torchvision.models.get_model_weights(twin.source).DEFAULT if pretrained else None
        if pretrained and twin.source == "inception_v3":
            kwargs["init_weights"] = None
        return torchvision.models.get_model(twin.source, weights=weights, **kwargs)
    import timm

    if img_size is not None and re.match(r"(vit|mixer|resmlp|gmlp)_", twin.source):
        kwargs["img_size"] = img_size
    if not pretrained:
        kwargs.setdefault("num_classes", 1000)  # some default configs are headless (ImageNet-21k ViT-L/32)
    return timm.create_model(twin.source, pretrained=pretrained, **kwargs)


def download_state_dict(twin: Twin) -> dict[str, torch.Tensor]:
    """The twin's default weights through its library's API; offline, an error saying where to put the file."""
    try:
        reference = build_reference(twin, pretrained=True)
    except (OSError, RuntimeError, ValueError) as err:  # URLError, HF hub offline errors, hub cache misses
        if twin.library == "torchvision":
            import torchvision.models

            url = torchvision.models.get_model_weights(twin.source).DEFAULT.url
            where = f"{url}: put it at {Path(torch.hub.get_dir()) / 'checkpoints' / url.rsplit('/', 1)[-1]}"
        else:
            import timm.models

            cfg = timm.models.get_pretrained_cfg(twin.source)
            hub = getattr(cfg, "hf_hub_id", None) or f"timm/{twin.source}"
            hub = f"timm/{twin.source}.{cfg.tag}" if hub == "timm/" else hub
            where = (
                f"https://huggingface.co/{hub}/resolve/main/model.safetensors (download it and pass its path, "
                f"or set HF_HOME to a Hugging Face cache that holds it)"
            )
        reason = f"{type(err).__name__}: {str(err).splitlines()[0][:100]}" if str(err) else type(err).__name__
        raise PretrainedError(
            f"could not fetch {twin.label} weights ({reason}); offline, the file is "
            f"{where}; or pass --pretrained=PATH to a state dict"
        ) from None
    if getattr(reference, "transform_input", False):  # torchvision's Inception-v3 weights come with it on
        return fold_transform_input(reference.state_dict())
    return reference.state_dict()


# torchvision's Inception-v3 ``transform_input``: x'_c = x_c · std_c / 0.5 + (mean_c − 0.5) / 0.5, which turns
# ImageNet-normalised input into the [-1, 1] input the ported TF-Slim weights were trained on.
_TV_INCEPTION_SCALE = torch.tensor([0.229, 0.224, 0.225], dtype=torch.float64) / 0.5
_TV_INCEPTION_SHIFT = (torch.tensor([0.485, 0.456, 0.406], dtype=torch.float64) - 0.5) / 0.5


def fold_transform_input(state: dict[str, torch.Tensor], conv: str = "Conv2d_1a_3x3") -> dict[str, torch.Tensor]:
    """A torchvision Inception-v3 state dict with its ``transform_input`` folded into the first conv and BN:
    the conv is unpadded, so scaling its weight per input channel and moving the shift's response into the BN
    running mean computes exactly what the transform followed by the original conv did."""
    state = dict(state)
    weight = state[f"{conv}.conv.weight"]
    shift_response = (weight * _TV_INCEPTION_SHIFT.to(weight).view(1, 3, 1, 1)).sum((1, 2, 3))
    state[f"{conv}.conv.weight"] = weight * _TV_INCEPTION_SCALE.to(weight).view(1, 3, 1, 1)
    state[f"{conv}.bn.running_mean"] = state[f"{conv}.bn.running_mean"] - shift_response
    return state


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise PretrainedError(
            f"pretrained weights {str(path)!r} not found: pass a .pth/.pt/.safetensors file, "
            f"or 'torchvision' / 'timm' to fetch the library's weights"
        )
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unreadable file is the same user error
        raise PretrainedError(
            f"cannot read pretrained weights {str(path)!r} ({type(err).__name__}): "
            f"expected a torchvision or timm state dict (.pth/.pt/.safetensors)"
        ) from None
    for wrapper in ("state_dict_ema", "state_dict", "model"):  # timm / torchvision training checkpoints
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
            break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise PretrainedError(f"{str(path)!r} holds no state dict of tensors")
    return {re.sub(r"^module\.", "", k): v for k, v in state.items()}


# ------------------------------------------------------------------------------------------ conversion
def convert_state_dict(
    twin: Twin,
    source: dict[str, torch.Tensor],
    model: nn.Module,
    first_conv: str | None = None,
    headless: bool = False,
) -> dict[str, torch.Tensor]:
    """The source's tensors under the zoo model's names; every zoo tensor filled once, with its own shape and
    dtype. ``first_conv`` names the zoo's input conv when it takes other than 3 channels (``adapt_first_conv``);
    ``headless`` leaves the classifier (``head.fc``) to be initialised afresh."""
    target = model.state_dict()
    rename = _renamer(twin, model, source)
    converted, problems = {}, []
    for key, tensor in source.items():
        try:
            name = rename(key)
        except (KeyError, IndexError, PretrainedError) as err:
            problems.append(f"{key} (no zoo counterpart: {err})")
            continue
        if name not in target:
            if not key.endswith("num_batches_tracked"):
                problems.append(f"{key} → {name} (no such zoo tensor)")
            continue
        if name in converted:
            problems.append(f"{key} → {name} (filled twice)")
            continue
        if name == first_conv:
            tensor = adapt_first_conv(tensor, target[name].shape[1])
        converted[name] = _fit(name, tensor, target[name], problems)
    for name, like in target.items():
        if name not in converted:
            if name.endswith("num_batches_tracked"):  # a counter some exports leave out
                converted[name] = torch.zeros((), dtype=torch.long)
            elif not (headless and name.startswith("head.fc.")):
                problems.append(f"{name} (not in the source)")
    if problems:
        raise PretrainedError(
            f"these weights are not {twin.label} weights for {twin.model}: {len(problems)} tensors "
            f"do not fit, e.g. {'; '.join(problems[:3])}"
        )
    return converted


def _renamer(twin: Twin, model: nn.Module, source: dict[str, torch.Tensor]) -> Rename:
    try:
        return twin.rename(model, list(source))
    except (ValueError, KeyError, IndexError) as err:  # the structure the renamer reads is not there
        raise PretrainedError(
            f"these weights are not {twin.label} weights for {twin.model}: their names do not "
            f"follow {twin.label}'s ({type(err).__name__}: {err})"
        ) from None


def _fit(name: str, tensor: torch.Tensor, like: torch.Tensor, problems: list[str]) -> torch.Tensor:
    tensor = tensor.to(like.dtype) if tensor.is_floating_point() else tensor
    if tensor.shape == like.shape:
        return tensor
    if [s for s in tensor.shape if s != 1] == [s for s in like.shape if s != 1]:  # timm's (1, 1, C) affine
        return tensor.reshape(like.shape)
    if name.endswith("pos_embed") and tensor.ndim == like.ndim == 3:  # a position table for another input size
        from zoo.layers import resample_pos_embed

        prefix = tensor.shape[1] - math.isqrt(tensor.shape[1]) ** 2
        side = math.isqrt(like.shape[1] - prefix)
        if side * side + prefix == like.shape[1]:
            return resample_pos_embed(tensor, (side, side), prefix)
    problems.append(f"{name} (shape {tuple(tensor.shape)} for {tuple(like.shape)})")
    return tensor


def adapt_first_conv(weight: torch.Tensor, in_chans: int) -> torch.Tensor:
    """An RGB first-conv kernel for ``in_chans`` inputs: the channel sum for 1, else RGB repeated × 3/in_chans
    (timm's rule). A grey image then gets the response its RGB copy had (exactly for 1 and multiples of 3)."""
    if in_chans == weight.shape[1]:
        return weight
    if in_chans == 1:
        return weight.sum(dim=1, keepdim=True)
    repeats = math.ceil(in_chans / weight.shape[1])
    return weight.repeat(1, repeats, 1, 1)[:, :in_chans] * (weight.shape[1] / in_chans)


def input_conv(model: nn.Module) -> str:
    """The state-dict name of the conv that reads the image: the first ungrouped conv, in forward order."""
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d) and module.groups == 1:
            return f"{name}.weight"
    raise PretrainedError(f"{type(model).__name__} has no input convolution to adapt to other channel counts")


def create_pretrained(
    name: str, source: str, num_classes: int = 1000, in_chans: int = 3, img_size: int | None = None, **overrides
) -> nn.Module:
    """``create_model(name, pretrained=source)``: the zoo model built with the source's conventions and weights,
    its classifier re-initialised for ``num_classes`` (kept when the source has as many classes) and its input
    conv adapted to ``in_chans``."""
    twins = twins_of(name)
    if source in LIBRARIES:
        chosen = [t for t in twins if t.library == source]
        if not chosen:
            raise PretrainedError(
                f"{resolve_name(name)} has no {source} twin; its twins: {', '.join(t.label for t in twins)}"
            )
        twins = chosen[:1]
        weights = download_state_dict(twins[0])
    else:
        weights = read_state_dict(source)
    failures = []
    for twin in twins:  # a file is recognised by its names: the first twin whose every tensor fits

        def build(classes: int) -> nn.Module:
            with torch.device("meta"):  # no initialiser runs: every tensor comes from the source
                return create_model(
                    name, num_classes=classes, in_chans=in_chans, img_size=img_size, **{**twin.options, **overrides}
                )

        model = build(1000)
        source_classes = _classifier_width(twin, weights, model)
        if source_classes not in (0, 1000):
            model = build(source_classes)
        try:
            first_conv = input_conv(model) if in_chans != 3 else None
            converted = convert_state_dict(twin, weights, model, first_conv, headless=source_classes == 0)
            model.load_state_dict(converted, assign=True, strict=source_classes > 0)
            break
        except PretrainedError as err:
            failures.append(err)
    else:
        if len(failures) == 1:
            raise failures[0]
        raise PretrainedError(f"the state dict matches none of {', '.join(t.label for t in twins)}: {failures[0]}")
    if num_classes != source_classes:  # always for headless weights
        model.reset_classifier(num_classes)
    model.pretrained_options = dict(twin.options)  # rebuilding the model (zoo.load_model) needs them
    return model


def _classifier_width(twin: Twin, weights: dict[str, torch.Tensor], model: nn.Module) -> int:
    """Classes of the source's classifier (1000 for ImageNet weights, fewer for a fine-tuned state dict; 0 for
    a state dict without one)."""
    classifier = next(f"head.fc.{n}" for n, p in model.head.fc.named_parameters() if p.ndim > 1)
    try:
        rename = _renamer(twin, model, weights)
    except PretrainedError:
        return 1000  # not this twin's names: its conversion will say so
    for key, tensor in weights.items():
        try:
            if rename(key) == classifier:
                return int(tensor.shape[0])
        except (KeyError, IndexError, PretrainedError):
            continue
    # Names that map, but no classifier among them: headless weights (timm's ImageNet-21k ViTs ship without).
    return 0


# ----------------------------------------------------------------------------------------- equivalence
def randomize_(module: nn.Module, generator: torch.Generator) -> None:
    """Random values in every tensor, so that a misplaced or mis-transformed tensor changes the logits: weights
    with He's variance; per-channel scales (norm weights, WS gains, Affine α, LayerScale γ, the SkipInit scalar)
    1 ± 0.1 and shifts ±0.1 (standard deviations), so the signal keeps its scale through any depth; BatchNorm
    running means ±0.1 and variances in [0.5, 1.5] (the perturbed statistics that catch an eps or a swapped
    buffer). Zero-initialised parts (SkipInit gains, LayerScale, heads) get values too, so none hides a mismatch.
    Every draw is uniform, filled in place: in float64 that is 4x cheaper than normal draws (VGG has 133M weights)."""
    def fill_(tensor: torch.Tensor, mean: float, std: float) -> None:
        half_width = math.sqrt(3.0) * std  # U(mean ± √3·std) has standard deviation std
        tensor.uniform_(mean - half_width, mean + half_width, generator=generator)

    with torch.no_grad():
        for name, tensor in module.state_dict(keep_vars=True).items():
            if not tensor.is_floating_point():
                continue
            leaf = name.rpartition(".")[2]
            per_channel = tensor.numel() == max(tensor.shape, default=1)  # a vector or a scalar, whatever its shape
            if leaf == "running_var":
                tensor.uniform_(0.5, 1.5, generator=generator)
            elif leaf in ("running_mean", "beta") or leaf.endswith("bias") or "token" in leaf or "pos_emb" in leaf:
                fill_(tensor, 0.0, 0.1)
            elif not per_channel:
                fill_(tensor, 0.0, math.sqrt(2.0 / (tensor.numel() // tensor.shape[0])))
            else:
                fill_(tensor, 1.0, 0.1)


class Arena:
    """One float64 buffer that a walk's references are carved from in turn, each reusing the memory of the one
    before. Fresh memory is expensive on a loaded CPU: faulting in ViT-L's 2.4 GB of float64 weights took 11 s
    on a 2-core AMD EPYC, three times the random fill itself. A reference made from the arena is valid until
    the next one is made from it."""

    def __init__(self) -> None:
        self.buffer = torch.empty(0, dtype=torch.float64)

    def materialize(self, module: nn.Module) -> nn.Module:
        """``module`` (float64, on the meta device) with every floating-point parameter and buffer a view of the
        arena."""
        slots = {"_parameters": [], "_buffers": []}
        tensors: dict[int, torch.Tensor] = {}  # tied tensors get one view
        for owner in module.modules():
            for kind, named in slots.items():
                for name, tensor in getattr(owner, kind).items():
                    if tensor is not None:
                        named.append((owner, name, tensor))
                        tensors.setdefault(id(tensor), tensor)
        total = sum(t.numel() for t in tensors.values() if t.is_floating_point())
        if self.buffer.numel() < total:  # twice the need: the next, slightly larger twin fits (untouched pages cost nothing)
            self.buffer = torch.empty(0, dtype=torch.float64)  # free the old one before the larger exists
            self.buffer = torch.empty(2 * total, dtype=torch.float64)
        views, offset = {}, 0
        for key, tensor in tensors.items():
            if not tensor.is_floating_point():  # BatchNorm's step counts: few, and of their own dtype
                views[key] = torch.zeros(tensor.shape, dtype=tensor.dtype)
                continue
            views[key] = self.buffer[offset:offset + tensor.numel()].view(tensor.shape)
            offset += tensor.numel()
        for owner, name, tensor in slots["_parameters"]:
            owner._parameters[name] = nn.Parameter(views[id(tensor)], requires_grad=tensor.requires_grad)
        for owner, name, tensor in slots["_buffers"]:
            owner._buffers[name] = views[id(tensor)]
        return module


def random_reference(twin: Twin, img_size: int, seed: int = 0, arena: Arena | None = None) -> nn.Module:
    """The twin in float64 with random weights (``randomize_``), built without running its own initialiser;
    its memory from ``arena`` if one is given."""
    with torch.device("meta"):
        reference = build_reference(twin, img_size=img_size)
    persistent = set(reference.state_dict())
    if any(name not in persistent for name, _ in reference.named_buffers()):  # computed buffers need a real build
        reference = build_reference(twin, img_size=img_size).double()
    elif arena is not None:
        reference = arena.materialize(reference.double())
    else:  # float64 before memory exists: no float32 copy to allocate and convert (5 s for VGG's 133M weights)
        reference = reference.double().to_empty(device="cpu")
    reference = reference.eval()
    randomize_(reference, torch.Generator().manual_seed(seed))
    return reference


def test_size(twin: Twin) -> int:
    """The smallest input both sides of a pair accept (the patch grid needs at least the patch size)."""
    return max(get_model_info(twin.model).min_size, 32)


def equivalence(twin: Twin, reference: nn.Module | None = None, batch: int = 2, seed: int = 0) -> float:
    """Largest |logit difference| between the twin (random weights, ``random_reference``) and the zoo model
    converted from it, both in eval mode and float64 on one random batch at the pair's ``test_size``."""
    size = test_size(twin)
    reference = reference if reference is not None else random_reference(twin, size, seed)
    with torch.device("meta"):
        model = create_model(twin.model, num_classes=1000, img_size=size, **twin.options).double()
    model.load_state_dict(convert_state_dict(twin, reference.state_dict(), model), assign=True)
    model.eval()
    images = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(seed + 1), dtype=torch.float64)
    with torch.no_grad(), one_thread():
        return float((reference(images) - model(images)).abs().max())


@contextlib.contextmanager
def one_thread():
    """Run on one thread: the checks are tiny float64 batches (depthwise convs run group by group), whose
    OpenMP barriers cost 10-1000× the work on a loaded CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def equivalence_walk(pattern: str = "*") -> Iterable[tuple[Twin, float]]:
    """(twin, max |logit difference|) for every pair whose zoo model matches ``pattern``; each reference is
    built once and shared by the zoo models it is the twin of (ResNet-50 and ResNet-50 v1)."""
    import fnmatch

    def same_reference(twin: Twin) -> tuple:
        return twin.label, tuple(sorted(twin.source_kwargs.items())), test_size(twin)

    twins = [t for t in TWINS if fnmatch.fnmatch(t.model, pattern)]
    arena = Arena()
    for key in dict.fromkeys(map(same_reference, twins)):
        pairs = [t for t in twins if same_reference(t) == key]
        reference = random_reference(pairs[0], test_size(pairs[0]), arena=arena)
        for twin in pairs:
            yield twin, equivalence(twin, reference)


def write_table(path: Path, pattern: str = "*") -> None:
    import pandas as pd

    rows = []
    for twin, diff in equivalence_walk(pattern):
        rows.append(
            dict(
                model=twin.model,
                twin=twin.label,
                options=" ".join(f"{k}={v}" for k, v in twin.options.items()),
                input_px=test_size(twin),
                max_abs_logit_diff=f"{diff:.1e}",
            )
        )
        print(f"{twin.model:24s} {twin.label:34s} {diff:.1e}", flush=True)
    if pattern == "*":  # a partial walk only prints: the CSV always covers every pair
        path.parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(rows).to_csv(path, index=False)


def _difference(value: float) -> str:
    return "0 (bit-exact)" if value == 0 else f"{value:.0e}"


def markdown_table(path: Path) -> str:
    """The CSV as a README table: one row per family and convention, the largest difference of its pairs."""
    import pandas as pd

    table = pd.read_csv(path, keep_default_na=False)
    table["family"] = [get_model_info(m).family for m in table.model]
    table["library"] = [label.partition(":")[0] for label in table.twin]
    lines = ["| zoo models | twins | options set by the converter | max \\|Δ logit\\| |", "|---|---|---|---|"]
    for (_, library, options), group in table.groupby(["family", "library", "options"], sort=False):
        models = ", ".join(dict.fromkeys(group.model))
        twins = ", ".join(dict.fromkeys(t.partition(":")[2] for t in group.twin))
        largest = _difference(group.max_abs_logit_diff.astype(float).max())
        lines.append(f"| {models} | {library}: {twins} | {options or '—'} | {largest} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--table", action="store_true", help="check every pair, write results/pretrained_equivalence.csv"
    )
    parser.add_argument("--list", action="store_true", help="list the pairs")
    parser.add_argument("--markdown", action="store_true", help="print the CSV as the README's table")
    parser.add_argument("--models", default="*", help="only pairs whose zoo model matches this wildcard")
    args = parser.parse_args(argv)
    if args.list or not (args.table or args.markdown):
        for twin in TWINS:
            print(f"{twin.model:24s} {twin.label:34s} {twin.convention}")
        for name, reason in REFUSED.items():
            print(f"{name:24s} refused: {reason}")
    if args.table:
        write_table(Path("results/pretrained_equivalence.csv"), args.models)
    if args.markdown:
        print(markdown_table(Path("results/pretrained_equivalence.csv")))


register_weights_loader(create_pretrained)  # create_model(pretrained=...) reaches the converter through this

if __name__ == "__main__":
    main()
