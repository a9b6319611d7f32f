"""Learngene — Lin, Zhang, Chen, Yang, Wang, Geng, "Linearly Decomposing and Recomposing Vision Transformers
for Diverse-Scale Models", NeurIPS 2024; its K = 2 predecessor TLEG — Xia et al., "Transformer as Linear
Expansion of Learngene", AAAI 2024.

The parameters of encoder layer l of an L-layer ViT are a linear combination of K shared components (the
learngenes) with coefficients that are fixed functions of the layer's normalised position x_l ∈ [−1, 1]:

    θ_l = Σ_{k<K} c_k(x_l) · Θ_k

What is decomposed (TLEG's choice): everything in an encoder block — attention qkv and projection, both MLP
layers (weights and biases) and both LayerNorms' affine parameters. Shared, not decomposed: patch embedding,
position embedding, class token, final norm and head. Training materialises every layer from the components on
each forward; ``recompose(model, depth)`` evaluates the same coefficient functions at ``depth`` positions and
writes the resulting weights into an ordinary ``zoo.vit.VisionTransformer``, which then fine-tunes freely.

Bases (``basis``): ``"chebyshev"`` c_k = T_k(x) (the paper's best), ``"power"`` c_k = x^k (its Taylor basis),
``"linear"`` TLEG's exact K = 2 case θ_l = θ_A + (l/L) · θ_B with l = 0 … L−1 (not the [−1, 1] position).

Training stages are expressed as model options, so the harness trains them like any model:

* incremental (the paper's): stage k builds ``num_components=k+1, trainable_components=[k],
  init_from=<stage k−1's model.safetensors>``; components 0 … k−1 are loaded and frozen, component k starts
  at zero, so the stage begins exactly where the last one ended;
* simultaneous: ``num_components=K`` with every component trainable (the default).

Variants: ``learngene_vit_tiny_patch4_32`` (the decomposed "ancestry" model: ViT-Tiny width 192, 3 heads,
patch 4, 32 px, 6 layers, K = 3 Chebyshev by default) and ``learngene_descendant_vit_tiny_patch4_32`` (a plain
ViT of any ``depth`` recomposed from ``learngene=<decomposed weights>``; without a file it is the same
architecture freshly initialised, the from-scratch baseline; at depth 12 it is ``vit_tiny_patch4_32``).

Choices that are ours, not pinned down by the paper (its full text was not available to us):

* positions x_l = −1 + 2l/(L−1) (x = 0 for a single layer);
* component 0 starts as a ViT layer initialised by the ViT itself (``weight_init``) and every further
  component at zero, so adding one preserves the function;
* the shared parts keep training in every incremental stage (only earlier components are frozen);
* the decomposed model takes no stochastic depth (one template block carries every layer's dropout).
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn
from torch.func import functional_call

from zoo.registry import ModelConfigError, register_model
from zoo.vit import VisionTransformer

PAPER = "Linearly Decomposing and Recomposing Vision Transformers for Diverse-Scale Models"
BASES = ("chebyshev", "power", "linear")


def layer_positions(depth: int) -> torch.Tensor:
    """Normalised positions x_l ∈ [−1, 1] of ``depth`` layers, float64."""
    if depth == 1:
        return torch.zeros(1, dtype=torch.float64)
    return torch.linspace(-1.0, 1.0, depth, dtype=torch.float64)


def coefficients(basis: str, num_components: int, depth: int) -> torch.Tensor:
    """(depth, K) float64: c_k evaluated at each layer of a ``depth``-layer model."""
    if basis == "linear":
        ramp = torch.arange(depth, dtype=torch.float64) / depth
        return torch.stack([torch.ones_like(ramp), ramp], dim=1)
    x = layer_positions(depth)
    columns = [torch.ones_like(x)]
    for k in range(1, num_components):
        if basis == "power":
            columns.append(x ** k)
        elif k == 1:
            columns.append(x)
        else:  # T_k = 2x·T_{k−1} − T_{k−2}
            columns.append(2 * x * columns[-1] - columns[-2])
    return torch.stack(columns, dim=1)


class LearngeneLayers(nn.Module):
    """The encoder of a decomposed ViT: K component blocks, from which ``depth`` layers are materialised.

    Each component is an encoder block built by the ViT itself (so its parameters carry the block's names and
    kinds: norms, biases); layer l runs component 0's module with the parameters Σ_k c_k(x_l) · Θ_k.
    """

    def __init__(self, components: list[nn.Module], depth: int, basis: str, trainable_components: list[int] | None):
        super().__init__()
        num_components = len(components)
        if basis not in BASES:
            raise ModelConfigError(f"learngene basis must be one of {BASES}, got {basis!r}")
        if basis == "linear" and num_components != 2:
            raise ModelConfigError(f"the linear (TLEG) basis has exactly 2 components, got num_components={num_components}")
        trainable = list(range(num_components)) if trainable_components is None else list(trainable_components)
        if not trainable or any(not 0 <= k < num_components for k in trainable):
            raise ModelConfigError(f"trainable_components must name some of components 0..{num_components - 1}, "
                                   f"got {trainable_components}")
        self.depth, self.basis = depth, basis
        self.components = nn.ModuleList(components)
        with torch.no_grad():  # further components start at zero: adding one keeps the function
            for component in self.components[1:]:
                for param in component.parameters():
                    param.zero_()
        for k, component in enumerate(self.components):
            component.requires_grad_(k in trainable)

    @property
    def num_components(self) -> int:
        return len(self.components)

    def layer_parameters(self, depth: int) -> list[dict[str, torch.Tensor]]:
        """The parameters of every layer of a ``depth``-layer model, as differentiable tensors."""
        named = [dict(c.named_parameters()) for c in self.components]
        reference = next(iter(named[0].values()))
        coeffs = coefficients(self.basis, self.num_components, depth).to(reference.device, reference.dtype)
        return [{name: sum(coeffs[layer, k] * named[k][name] for k in range(self.num_components))
                 for name in named[0]}
                for layer in range(depth)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        template = self.components[0]
        for params in self.layer_parameters(self.depth):
            x = functional_call(template, params, (x,))
        return x

    def extra_repr(self) -> str:
        return f"depth={self.depth}, num_components={self.num_components}, basis={self.basis!r}"


class DecomposedViT(VisionTransformer):
    """A ``VisionTransformer`` whose encoder is a ``LearngeneLayers``: the stem, position embedding, class token,
    final norm and head are the ViT's own, and so are the K component blocks (the ViT builds and initialises
    them as its first K layers); the ``depth`` layers are materialised from them on every forward.

    ``init_from``: a weights file (safetensors, e.g. the harness's ``model.safetensors`` of the previous stage)
    holding this model's shared parts and some of its first components; components it lacks stay at zero.
    """

    def __init__(self, depth: int = 6, num_components: int = 3, basis: str = "chebyshev",
                 trainable_components: list[int] | None = None, init_from: str = "",
                 drop_path_rate: float = 0.0, **vit_kwargs):
        if drop_path_rate:
            raise ModelConfigError("the decomposed ViT takes no stochastic depth: set drop_path_rate on the "
                                   "recomposed descendant instead")
        if num_components < 1 or depth < 1:
            raise ModelConfigError(f"learngene needs num_components >= 1 and depth >= 1, got {num_components}, {depth}")
        super().__init__(depth=num_components, **vit_kwargs)
        self.vit_kwargs = dict(vit_kwargs)
        self.blocks = LearngeneLayers(list(self.blocks), depth, basis, trainable_components)
        if init_from:
            self.load_partial(init_from)

    def load_partial(self, path: str) -> None:
        """Load the shared parts and the components a file holds; it must hold every shared part. A model on the
        meta device (a shapes-only build, e.g. the config's option check at another channel count) loads nothing."""
        weights = _read_weights(path)
        if self.norm.weight.is_meta:
            return
        own = self.state_dict()
        unknown = sorted(set(weights) - set(own))
        if unknown:
            raise ModelConfigError(f"{path} holds weights this decomposed ViT does not have ({unknown[:3]}...): "
                                   "was it trained with another width or more components?")
        missing = [k for k in own if k not in weights and not k.startswith("blocks.components.")]
        if missing:
            raise ModelConfigError(f"{path} lacks the shared weights {missing[:3]}: it is not a decomposed ViT's file")
        if "blocks.components.0." not in " ".join(weights):
            raise ModelConfigError(f"{path} holds no learngene component")
        for name, tensor in weights.items():
            if tensor.shape != own[name].shape:
                raise ModelConfigError(f"{path}: {name} has shape {tuple(tensor.shape)}, this model "
                                       f"{tuple(own[name].shape)}: build the model with the file's width")
        self.load_state_dict(weights, strict=False)


def _read_weights(path: str) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not Path(path).is_file():
        raise ModelConfigError(f"learngene weights file {path} does not exist: give the model.safetensors a "
                               "decomposed-ViT run exported (model_save: true)")
    try:
        return load_file(path)
    except (SafetensorError, OSError) as err:
        raise ModelConfigError(f"{path} is not a readable safetensors file ({err})") from None


@torch.no_grad()
def recompose(model: DecomposedViT, depth: int, **vit_overrides) -> VisionTransformer:
    """An ordinary ViT of ``depth`` layers whose layer l holds Σ_k c_k(x_l) · Θ_k and whose shared parts are
    the decomposed model's; same device and dtype. ``vit_overrides`` (e.g. ``drop_path_rate``) change options
    that carry no weights."""
    if depth < 1:
        raise ModelConfigError(f"recompose needs depth >= 1, got {depth}")
    reference = model.pos_embed if model.pos_embed is not None else model.norm.weight
    vit = VisionTransformer(**{**model.vit_kwargs, **vit_overrides}, depth=depth).to(reference.device, reference.dtype)
    shared = {k: v for k, v in model.state_dict().items() if not k.startswith("blocks.")}
    layers = {f"blocks.{layer}.{name}": value.detach().clone()
              for layer, params in enumerate(model.blocks.layer_parameters(depth)) for name, value in params.items()}
    vit.load_state_dict({**shared, **layers}, strict=True)
    return vit


# ---------------------------------------------------------------- variants

_TINY_P4_32 = dict(patch_size=4, dim=192, num_heads=3)
_META = dict(family="learngene", paper=PAPER, year=2024, native_size=32, min_size=4)


def _components_in(weights: dict[str, torch.Tensor]) -> int:
    indices = {int(k.split(".")[2]) for k in weights if k.startswith("blocks.components.")}
    return max(indices) + 1 if indices else 0


@register_model(**_META)
def learngene_vit_tiny_patch4_32(*, num_classes, in_chans, img_size, **kwargs):
    return DecomposedViT(img_size=img_size, in_chans=in_chans, num_classes=num_classes, **{**_TINY_P4_32, **kwargs})


@register_model(**_META)
def learngene_descendant_vit_tiny_patch4_32(*, num_classes, in_chans, img_size, depth: int = 12, learngene: str = "",
                                            basis: str = "chebyshev", **kwargs):
    """A plain ViT-Tiny/4 of ``depth`` layers; with ``learngene`` (a decomposed run's model.safetensors, built with
    this ``basis``) its weights are recomposed from it, otherwise it is freshly initialised."""
    if not learngene:
        return VisionTransformer(img_size=img_size, in_chans=in_chans, num_classes=num_classes, depth=depth,
                                 **{**_TINY_P4_32, **kwargs})
    carried = {k: v for k, v in kwargs.items() if k in ("drop_rate", "attn_drop_rate", "drop_path_rate")}
    ancestry = DecomposedViT(img_size=img_size, in_chans=in_chans, num_classes=num_classes,
                             num_components=_components_in(_read_weights(learngene)), basis=basis, init_from=learngene,
                             **{**_TINY_P4_32, **{k: v for k, v in kwargs.items() if k not in carried}})
    return recompose(ancestry, depth, **carried)
