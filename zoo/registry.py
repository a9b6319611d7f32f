"""The model registry: names → builders, with each model's paper metadata.

Every builder is called as ``builder(num_classes=..., in_chans=..., img_size=..., **overrides)``
and returns a plain ``nn.Module``. Metadata is what the harness and the benchmarks may know
about a model without building it: input sizes, auxiliary-loss weights, the paper's figures.
"""
from __future__ import annotations

import difflib
import fnmatch
from typing import Callable

import torch.nn as nn

from zoo.model_info import ModelConfigError, ModelInfo

_MODELS: dict[str, ModelInfo] = {}
_ALIASES: dict[str, str] = {}
# Other sources of models (zoo.external: torchvision and timm names). Each takes a name and returns its
# ModelInfo, None when the name is not its own, or raises ModelConfigError for a name it owns but lacks.
_NAMESPACES: list[Callable[[str], ModelInfo | None]] = []
_WEIGHT_LOADERS: list[Callable[..., nn.Module]] = []   # zoo.pretrained registers its converter here


def register_namespace(lookup: Callable[[str], ModelInfo | None]) -> None:
    """Let ``lookup`` answer for the names the zoo's own models do not have."""
    if lookup not in _NAMESPACES:
        _NAMESPACES.append(lookup)


def register_weights_loader(loader: Callable[..., nn.Module]) -> None:
    """Let ``loader(name, source, **build_arguments)`` build a model with converted weights (zoo.pretrained),
    without the registry importing it."""
    if loader not in _WEIGHT_LOADERS:
        _WEIGHT_LOADERS.append(loader)


def register_model(*, family: str, paper: str, year: int, native_size: int, min_size: int,
                   aliases: tuple[str, ...] = (), paper_params: int | None = None,
                   paper_top1: float | None = None, aux_loss_weights: tuple[float, ...] = (),
                   name: str | None = None):
    """Register the decorated builder under its function name (or ``name``)."""

    def decorate(builder: Callable[..., nn.Module]):
        model_name = name or builder.__name__
        if model_name in _MODELS or model_name in _ALIASES:
            raise ValueError(f"model name {model_name!r} is registered twice")
        _MODELS[model_name] = ModelInfo(
            name=model_name, builder=builder, family=family, paper=paper, year=year,
            native_size=native_size, min_size=min_size, aliases=tuple(aliases),
            paper_params=paper_params, paper_top1=paper_top1,
            aux_loss_weights=tuple(aux_loss_weights))
        for alias in aliases:
            if alias in _ALIASES or alias in _MODELS:
                raise ValueError(f"alias {alias!r} is registered twice")
            _ALIASES[alias] = model_name
        return builder

    return decorate


def resolve_name(name: str) -> str:
    """The canonical name for a model name or a seed alias; an error with suggestions otherwise."""
    return get_model_info(name).name


def get_model_info(name: str) -> ModelInfo:
    canonical = _ALIASES.get(name, name)
    if canonical in _MODELS:
        return _MODELS[canonical]
    for lookup in _NAMESPACES:
        info = lookup(name)
        if info is not None:
            return info
    candidates = sorted(set(_MODELS) | set(_ALIASES))
    close = difflib.get_close_matches(name, candidates, n=5, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}?" if close else "run `python main.py --list-models` to see them all"
    raise ModelConfigError(f"unknown model {name!r}: {hint}")


def list_models(pattern: str = "*") -> list[str]:
    """Canonical model names matching a shell-style wildcard (aliases match too)."""
    hits = {n for n in _MODELS if fnmatch.fnmatch(n, pattern)}
    hits |= {target for alias, target in _ALIASES.items() if fnmatch.fnmatch(alias, pattern)}
    return sorted(hits)


def create_model(name: str, num_classes: int = 1000, in_chans: int = 3, img_size: int | None = None,
                 pretrained: str = "", **overrides) -> nn.Module:
    """Build a registered model. ``img_size`` defaults to the model's native size. ``pretrained`` is a
    torchvision/timm state-dict file or the word 'torchvision' / 'timm' (zoo.pretrained converts the weights)."""
    if pretrained:
        if not _WEIGHT_LOADERS:
            raise ModelConfigError("pretrained weights need zoo.pretrained: `import zoo` loads it")
        return _WEIGHT_LOADERS[-1](name, pretrained, num_classes=num_classes, in_chans=in_chans,
                                   img_size=img_size, **overrides)
    info = get_model_info(name)
    img_size = info.native_size if img_size is None else int(img_size)
    if img_size < info.min_size:
        raise ModelConfigError(
            f"{info.name} cannot take {img_size}px input: its smallest accepted size is {info.min_size}px "
            f"(pass --img-size={info.min_size} or larger)")
    if num_classes < 1 or in_chans < 1:
        raise ModelConfigError(f"num_classes and in_chans must be positive, got {num_classes} and {in_chans}")
    try:
        return info.builder(num_classes=num_classes, in_chans=in_chans, img_size=img_size, **overrides)
    except TypeError as err:
        if "unexpected keyword argument" in str(err):
            raise ModelConfigError(f"{info.name} does not take that option: {err}") from None
        raise
