"""Models from torchvision and timm under a prefix: ``tv:resnet50``, ``timm:convnext_tiny``.

They go through the same registry calls as the zoo's own models (``resolve_name``, ``get_model_info``,
``create_model``), so the training harness and the benchmarks take them unchanged, built without
pretrained weights. Their metadata is synthesised: native size 224 (299 for Inception-v3), smallest
size 32 (75 for Inception-v3), no paper figures. torchvision and timm are imported only when such a
name is asked for; timm is optional.
"""
from __future__ import annotations

import difflib
import functools

import torch.nn as nn

from zoo.model_info import ModelConfigError, ModelInfo
from zoo.registry import register_namespace

PREFIXES = {"tv": "torchvision", "timm": "timm"}
# torchvision models whose training-mode output is a named tuple of auxiliary logits unless turned off.
_TV_AUX = {"googlenet", "inception_v3"}
_SIZES = {"inception_v3": (299, 75)}


def lookup(name: str) -> ModelInfo | None:
    """The ModelInfo of a ``tv:`` or ``timm:`` name; None for a name without one of these prefixes."""
    prefix, colon, _ = name.partition(":")
    return info(name) if colon and prefix in PREFIXES else None


def _known_names(library: str) -> list[str]:
    if library == "torchvision":
        import torchvision.models

        return torchvision.models.list_models(module=torchvision.models)
    try:
        import timm
    except ImportError:
        raise ModelConfigError("timm: models need the timm package, which is not installed: "
                               "pip install timm (or use a tv: or zoo model)") from None
    return timm.list_models()


def resolve(name: str) -> str:
    """Check that the library has this model; return the name unchanged."""
    prefix, _, model = name.partition(":")
    library = PREFIXES[prefix]
    known = _known_names(library)
    if model not in known:
        close = difflib.get_close_matches(model, known, n=5, cutoff=0.5)
        hint = f"did you mean {', '.join(f'{prefix}:{c}' for c in close)}?" if close else \
            f"see {library}'s model list"
        raise ModelConfigError(f"{library} has no classification model {model!r}: {hint}")
    return name


@functools.lru_cache(maxsize=None)
def info(name: str) -> ModelInfo:
    resolve(name)
    prefix, _, model = name.partition(":")
    library = PREFIXES[prefix]
    native, smallest = _SIZES.get(model, (224, 32))
    builder = functools.partial(_build_torchvision if library == "torchvision" else _build_timm, model)
    return ModelInfo(name=name, builder=builder, family=library, paper=f"{library} {model}", year=None,
                     native_size=native, min_size=smallest)


def _build_torchvision(model: str, *, num_classes: int, in_chans: int, img_size: int, **overrides) -> nn.Module:
    import torchvision.models

    if model in _TV_AUX:
        overrides.setdefault("aux_logits", False)
        overrides.setdefault("init_weights", True)
    if model.startswith("vit_"):
        overrides.setdefault("image_size", img_size)  # torchvision's ViT is built for one input size
    net = torchvision.models.get_model(model, weights=None, num_classes=num_classes, **overrides)
    if in_chans != 3:
        _adapt_first_conv(net, in_chans, f"tv:{model}")
    return net


def _build_timm(model: str, *, num_classes: int, in_chans: int, img_size: int, **overrides) -> nn.Module:
    import timm

    try:
        return timm.create_model(model, pretrained=False, num_classes=num_classes, in_chans=in_chans,
                                 img_size=img_size, **overrides)
    except TypeError as err:
        if "img_size" not in str(err):
            raise
        # Convolutional timm models take any size and have no img_size argument.
        return timm.create_model(model, pretrained=False, num_classes=num_classes, in_chans=in_chans, **overrides)


def _adapt_first_conv(net: nn.Module, in_chans: int, name: str) -> None:
    """Replace the first 3-channel convolution by a fresh one taking ``in_chans`` channels."""
    for parent in net.modules():
        for child_name, child in parent.named_children():
            if isinstance(child, nn.Conv2d) and child.in_channels == 3 and child.groups == 1:
                setattr(parent, child_name, nn.Conv2d(
                    in_chans, child.out_channels, child.kernel_size, stride=child.stride, padding=child.padding,
                    dilation=child.dilation, bias=child.bias is not None, padding_mode=child.padding_mode))
                return
    raise ModelConfigError(f"{name} has no 3-channel input convolution to adapt to {in_chans} channels: "
                           f"use 3-channel input")


register_namespace(lookup)
