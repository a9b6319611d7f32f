"""Saved models that rebuild themselves: ``zoo.load_model(PATH)`` → model (eval mode), preprocessing, spec.

    import zoo
    model, preprocess, spec = zoo.load_model("results/runs/<run-id>")   # or model.safetensors, best.pt
    probabilities = model(preprocess(pil_image).unsqueeze(0)).softmax(1)
    print(spec.class_names[probabilities.argmax()])

A ``ModelSpec`` holds everything needed to rebuild and feed a trained model (registry name, constructor
options, classes, input channels and size, normalisation, class names) and where it came from (run id,
dataset and split seed, the test top-1 of these weights, and the precision, memory layout, device and batch
size that number was measured with). It travels as JSON under ``zoo_spec`` in the safetensors metadata
(which maps strings to strings), and as a plain dict under ``model_spec`` in the training harness's
checkpoints (``last.pt``, ``best.pt``), which are read with ``torch.load(weights_only=True)``.

Everything read is checked before it is used: a file that is not what it claims raises one
``SavedModelError`` that says what is wrong, never a traceback from deep inside torch.
"""
from __future__ import annotations

import json
import math
import functools
import pickle
import types
import typing
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, NamedTuple

import torch
import torch.nn as nn

from zoo.model_info import ModelConfigError
from zoo.registry import create_model

SPEC_KEY = "zoo_spec"            # safetensors metadata key
CHECKPOINT_SPEC_KEY = "model_spec"
SAFETENSORS_NAME = "model.safetensors"
CHECKPOINT_NAMES = ("best.pt", "last.pt")   # in a checkpoint folder, the best weights are preferred
AMP_CHOICES = ("off", "bf16", "fp16")


class SavedModelError(ModelConfigError):
    """A saved model that cannot be loaded: missing, damaged, forged, or not for this zoo."""


@dataclass(frozen=True)
class ModelSpec:
    model: str
    num_classes: int
    in_chans: int
    img_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    model_kwargs: dict = field(default_factory=dict)
    class_names: tuple[str, ...] = ()
    crop_fraction: float = 1.0        # < 1: centre crop of this fraction of the shorter side (ImageNet's 0.875)
    # provenance: where the weights come from and how their test accuracy was measured
    run_id: str = ""
    dataset: str = ""
    seed: int = 0                     # the run's seed: it chose the train/validation split
    val_fraction: float = 0.1
    weights: str = ""                 # e.g. "best (epoch 7)" or "last (epoch 10)"
    test_top1: float | None = None
    amp: str = "off"
    channels_last: bool = False
    device: str = "cpu"
    batch_size: int = 128

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_dict(cls, data: Any, source: str) -> "ModelSpec":
        if not isinstance(data, dict):
            raise SavedModelError(f"{source}: the model spec is a {type(data).__name__}, not a mapping")
        hints = typing.get_type_hints(cls)
        required = [f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING]
        missing = [name for name in required if name not in data]
        if missing:
            raise SavedModelError(f"{source}: the model spec lacks {', '.join(missing)}")
        values = {f.name: _checked(data[f.name], hints[f.name], f"{source}: spec field '{f.name}'")
                  for f in fields(cls) if f.name in data}
        spec = cls(**values)
        spec.check(source)
        return spec

    def check(self, source: str) -> None:
        problems = []
        if min(self.num_classes, self.in_chans, self.img_size, self.batch_size) < 1:
            problems.append("num_classes, in_chans, img_size and batch_size must be positive")
        if len(self.mean) != self.in_chans or len(self.std) != self.in_chans:
            problems.append(f"mean and std need {self.in_chans} values (one per input channel)")
        if any(s <= 0 for s in self.std):
            problems.append("std values must be positive")
        if self.class_names and len(self.class_names) != self.num_classes:
            problems.append(f"{len(self.class_names)} class names for {self.num_classes} classes")
        if not 0.0 < self.crop_fraction <= 1.0:
            problems.append("crop_fraction must lie in (0, 1]")
        if self.amp not in AMP_CHOICES:
            problems.append(f"amp must be one of {', '.join(AMP_CHOICES)}")
        if problems:
            raise SavedModelError(f"{source}: the model spec is invalid ({'; '.join(problems)})")

    def class_name(self, index: int) -> str:
        return self.class_names[index] if self.class_names else str(index)


def _checked(value: Any, hint: Any, where: str) -> Any:
    """``value`` as the annotated type (JSON lists become tuples), or a SavedModelError."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise SavedModelError(f"{where} must be a list, got {type(value).__name__}")
        return tuple(_checked(item, args[0], where) for item in value)
    if origin in (typing.Union, types.UnionType):  # float | None
        return None if value is None else _checked(value, args[0], where)
    if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    if hint is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if hint in (str, bool, dict) and isinstance(value, hint):
        return value
    raise SavedModelError(f"{where} must be {getattr(hint, '__name__', hint)}, got {value!r:.40}")


class LoadedModel(NamedTuple):
    model: nn.Module
    preprocess: Any        # a torchvision.transforms.v2 pipeline: PIL image or uint8 tensor → normalised tensor
    spec: ModelSpec


# ---------------------------------------------------------------- writing


def safetensors_bytes(state_dict: dict[str, torch.Tensor], spec: ModelSpec) -> bytes:
    """The weights (cloned to CPU: safetensors refuses shared memory) with the spec in the metadata."""
    from safetensors.torch import save
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in state_dict.items()}
    return save(tensors, metadata={SPEC_KEY: spec.to_json()})


# ---------------------------------------------------------------- reading


def resolve_path(path: str | Path) -> Path:
    """The weights file behind PATH: itself, or a folder's model.safetensors, best.pt or last.pt."""
    path = Path(path)
    if path.is_dir():
        for name in (SAFETENSORS_NAME, *CHECKPOINT_NAMES):
            if (path / name).is_file():
                return path / name
        raise SavedModelError(f"{path} holds no {SAFETENSORS_NAME}, best.pt or last.pt: train with "
                              f"--model-save=True (or --checkpoint=True), or pass the file itself")
    if not path.is_file():
        raise SavedModelError(f"{path} does not exist: pass a run folder, a .safetensors file or a checkpoint")
    return path


def read_saved(path: str | Path) -> tuple[ModelSpec, dict[str, torch.Tensor]]:
    """The spec and the weights of a saved model, both checked."""
    path = resolve_path(path)
    spec, weights = _read_safetensors(path) if path.suffix == ".safetensors" else _read_checkpoint(path)
    bad = [k for k, v in weights.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad or not weights:
        raise SavedModelError(f"{path}: the weights are not a mapping of names to tensors")
    return spec, weights


def _read_safetensors(path: Path) -> tuple[ModelSpec, dict[str, torch.Tensor]]:
    from safetensors import SafetensorError, safe_open
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            weights = {name: handle.get_tensor(name) for name in handle.keys()}
    except (SafetensorError, OSError, ValueError) as err:
        raise SavedModelError(f"{path} is not a readable safetensors file ({_first_line(err)})") from None
    if SPEC_KEY not in metadata:
        raise SavedModelError(f"{path} has no '{SPEC_KEY}' metadata, so the model cannot be rebuilt: it was not "
                              f"written by this project's --model-save (retrain with --model-save=True)")
    try:
        data = json.loads(metadata[SPEC_KEY])
    except json.JSONDecodeError as err:
        raise SavedModelError(f"{path}: the '{SPEC_KEY}' metadata is not valid JSON ({err.msg})") from None
    return ModelSpec.from_dict(data, str(path)), weights


def _read_checkpoint(path: Path) -> tuple[ModelSpec, dict[str, torch.Tensor]]:
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if "GLOBAL" in str(err) or "Unsupported" in str(err):  # torch's weights-only refusal
            raise SavedModelError(f"{path} holds arbitrary Python objects and was refused (only tensors and "
                                  f"plain data load): use a checkpoint or model written by this project") from None
        raise SavedModelError(f"{path} is corrupted or truncated (not a readable checkpoint)") from None
    except Exception as err:  # noqa: BLE001 — a damaged file breaks torch.load in many ways; all mean the same
        raise SavedModelError(f"{path} is corrupted or not a checkpoint ({_first_line(err)})") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("model"), dict):
        raise SavedModelError(f"{path} is not a checkpoint of this project (no 'model' weights)")
    if CHECKPOINT_SPEC_KEY not in payload:
        raise SavedModelError(f"{path} has no model spec (a checkpoint from before specs were saved): "
                              f"load the run's model.safetensors instead, or retrain")
    return ModelSpec.from_dict(payload[CHECKPOINT_SPEC_KEY], str(path)), payload["model"]


def _first_line(err: BaseException) -> str:
    return (str(err).splitlines() or [type(err).__name__])[0][:100]


def build_model(spec: ModelSpec, weights: dict[str, torch.Tensor], source: str) -> nn.Module:
    try:
        model = create_model(spec.model, num_classes=spec.num_classes, in_chans=spec.in_chans,
                             img_size=spec.img_size, **spec.model_kwargs)
    except (ModelConfigError, TypeError, ValueError) as err:  # the options come from the file
        raise SavedModelError(f"{source}: its model cannot be built here ({_first_line(err)})") from None
    expected = model.state_dict()
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    misshapen = sorted(k for k in set(expected) & set(weights) if expected[k].shape != weights[k].shape)
    if missing or unexpected or misshapen:
        detail = "; ".join(f"{what} {len(keys)} (e.g. {keys[0]})" for what, keys in
                           (("missing", missing), ("unexpected", unexpected), ("wrong shape", misshapen)) if keys)
        raise SavedModelError(f"{source}: the weights do not fit {spec.model} as the spec describes it ({detail})")
    model.load_state_dict(weights)
    return model.eval()


def preprocessing(spec: ModelSpec):
    """The training harness's evaluation input as a torchvision.transforms.v2 pipeline (PIL image or uint8
    tensor in, normalised float tensor out).

    Pixels stay in 0..255 and are normalised by mean·255 and std·255 computed in float32, in the harness's
    order (harness/data.py, harness/pixels.py), so a tensor-dataset image gives the evaluation's input bit for
    bit: the whole image resized to img_size (bilinear, antialiased), normalised. ImageNet-style
    (crop_fraction < 1): the centre square of that fraction of the shorter side, resized, as
    harness/imagenet.py evaluates (equal up to the rounding of resized pixels).
    """
    from torchvision.transforms import v2
    channels = {1: [v2.Grayscale(num_output_channels=1)], 3: [v2.RGB()]}.get(spec.in_chans, [])
    size = (spec.img_size, spec.img_size)
    to_float = v2.ToDtype(torch.float32, scale=False)
    if spec.crop_fraction < 1.0:
        geometry = [centre_crop_fraction_class()(spec.crop_fraction), v2.Resize(size, antialias=True), to_float]
    else:
        geometry = [to_float, v2.Resize(size, antialias=True)]
    mean, std = ((torch.tensor(values, dtype=torch.float32) * 255).tolist() for values in (spec.mean, spec.std))
    return v2.Compose([v2.ToImage(), *channels, *geometry, v2.Normalize(mean, std)])


@functools.lru_cache(maxsize=None)
def centre_crop_fraction_class():
    """torchvision is imported when the crop is first needed, not with the zoo."""
    from torchvision.transforms import v2

    class CentreCropFraction(v2.Transform):
        """The central square whose side is ``fraction`` of the image's shorter side."""

        def __init__(self, fraction: float):
            super().__init__()
            self.fraction = fraction

        def transform(self, inpt, params):
            height, width = inpt.shape[-2:]
            side = round(min(height, width) * self.fraction)
            return v2.functional.center_crop(inpt, [side, side])

    return CentreCropFraction


def load_model(path: str | Path, device: str | torch.device = "cpu") -> LoadedModel:
    """A saved model (run folder, .safetensors, or last.pt/best.pt) rebuilt in eval mode, with its preprocessing."""
    spec, weights = read_saved(path)
    model = build_model(spec, weights, str(resolve_path(path))).to(device)
    return LoadedModel(model, preprocessing(spec), spec)
