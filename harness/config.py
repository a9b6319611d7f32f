"""One typed config object, built from YAML layers and the command line, valid by construction.

Every key is declared once, below, in ``Config``: its type, its default, its domain (range, choices,
list length, pattern) and a one-line help. Validation, ``--help`` and the error messages all come from
that declaration, and ``Config.__post_init__`` checks every field, so a ``Config`` that exists holds only
values the rest of the harness can use: the builders (recipes, augment, data) do not re-check.

Layers, later ones winning:
  1. the defaults declared here    the seed project's setup
  2. configs/datasets/<name>.yaml  the dataset's input size and augmentation
  3. configs/models/<family>.yaml  the model's paper recipe (only with recipe=paper), then its variant's overrides
  4. --config FILE                 a user's file
  5. --key=value                   the command line

Ambiguity is refused, not resolved: a key given twice on the command line, a YAML mapping with a key
twice, an empty path. Every float is finite.
"""
from __future__ import annotations

import copy
import dataclasses
import difflib
import inspect
import math
import os
import re
import stat
import types
import typing
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

import zoo
from harness.errors import UsageError
from zoo.saved import resolve_path

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
DATASETS = tuple(sorted(p.stem for p in (CONFIG_DIR / "datasets").glob("*.yaml")))
OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop_tf", "lamb")
SCHEDULERS = ("constant", "step", "multistep", "exponential", "cosine", "linear", "poly", "cosine_restarts",
              "cyclic", "onecycle")
NO_DECAY_KINDS = ("norm", "bias", "gain", "pos_embed", "token")
AUTO_AUGMENTS = ("off", "randaugment", "autoaugment", "trivialaugment")
RANDAUGMENT_BINS = 31      # torchvision's RandAugment magnitudes are 0 .. num_magnitude_bins - 1
NAME = r"[A-Za-z0-9][A-Za-z0-9_.:+-]{0,127}"   # model names, run ids: safe as one path component
MAX_CONFIG_FILE_BYTES = 1 << 20
# Folders where the kernel, not a file system, answers: never an output folder.
PSEUDO_FILE_SYSTEMS = (Path("/proc"), Path("/sys"), Path("/dev"))
# Model options that the harness sets itself, and the flag that sets each.
HARNESS_MODEL_OPTIONS = {"num_classes": "--dataset (its class count)", "in_chans": "--dataset (its channels)",
                         "img_size": "--img-size"}


@dataclass(frozen=True)
class Domain:
    """What a key may hold beyond its type; ``ge``/``gt``/``le``/``lt`` and ``choices`` apply to list items too."""
    help: str
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    choices: tuple[str, ...] = ()
    length: int | None = None      # lists: exactly this many items
    pattern: str | None = None     # strings: a full match of this regular expression
    path: bool = False             # a file or folder the user names: not empty, no control characters

    def describe(self) -> str:
        """The domain in words, for --help and for errors ("positive", "in [0, 1)", "one of a, b")."""
        if self.choices:
            return f"one of {', '.join(self.choices)}"
        if self.gt == 0 and self.ge is self.le is self.lt is None:
            return "positive"
        if self.ge == 1 and self.gt is self.le is self.lt is None:
            return "positive"
        if self.ge == 0 and self.gt is self.le is self.lt is None:
            return "zero or positive"
        low = f"[{_num(self.ge)}" if self.ge is not None else f"({_num(self.gt)}" if self.gt is not None else "(-inf"
        high = f"{_num(self.le)}]" if self.le is not None else f"{_num(self.lt)})" if self.lt is not None else "inf)"
        return "" if low == "(-inf" and high == "inf)" else f"in {low}, {high}"


def key(default: Any, help: str, **domain) -> Any:  # noqa: A002 — "help" is the word of --help
    """Declare a config key: its default, one-line help and domain (see ``Domain``)."""
    metadata = {"domain": Domain(help, **domain)}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: copy.deepcopy(default), metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass
class Config:
    # what to train
    model: str = key("resnet18", "a registered model name (python main.py --list-models)", pattern=NAME)
    dataset: str = key("digits", "the dataset (configs/datasets/)", choices=DATASETS)
    recipe: str = key("paper", "paper: the model's recipe from configs/models/; seed: the defaults here",
                      choices=("paper", "seed"))
    model_kwargs: dict = key({}, "options of the model's builder, e.g. {drop_path_rate: 0.1}")
    pretrained: str = key("", "start from weights: a path to a torchvision/timm state dict, or torchvision / "
                          "timm (\"\" = none)")
    # data
    data_dir: str | None = key(None, "where datasets live (null: ./data, then known system locations)", path=True)
    download: bool = key(True, "fetch missing torchvision datasets")
    img_size: int | None = key(None, "input size (null: the dataset's input_size raised to the model's minimum)",
                               ge=1)
    input_size: int = key(32, "the dataset's image size", ge=1)
    val_fraction: float = key(0.1, "share of the training set held out (seeded) to choose the best epoch",
                              gt=0, lt=1)
    synthetic_images: int = key(1024, "training images of the synthetic dataset (random tensors)", ge=1)
    crop_padding: int = key(0, "random crop with this much zero padding (training only)", ge=0)
    hflip: bool = key(False, "random horizontal flip (training only)")
    workers: int = key(4, "DataLoader worker processes for folder datasets (ImageNet)", ge=0, le=256)
    skip_corrupt: bool = key(False, "ImageNet folders: skip (and count) unreadable images instead of stopping")
    # optimisation
    epochs: int = key(10, "training epochs", ge=1, le=1_000_000)
    batch_size: int = key(128, "images per step and process", ge=1)
    optimizer: str = key("adam", "the optimizer", choices=OPTIMIZERS)
    lr: float = key(0.001, "peak learning rate (for lr_reference_batch images when that is set)", gt=0)
    lr_reference_batch: int = key(0, ">0: lr is given for this batch and scaled linearly to batch_size", ge=0)
    momentum: float = key(0.9, "momentum of sgd and rmsprop_tf", ge=0, lt=1)
    nesterov: bool = key(False, "sgd: Nesterov momentum")
    betas: list[float] = key([0.9, 0.999], "adam, adamw, lamb: the two decay rates", ge=0, lt=1, length=2)
    opt_eps: float = key(1e-8, "adam/adamw/lamb epsilon; rmsprop_tf: inside the square root", gt=0)
    rmsprop_alpha: float = key(0.9, "rmsprop_tf: decay of the mean square", ge=0, lt=1)
    weight_decay: float = key(0.0, "weight decay", ge=0)
    no_weight_decay: list[str] = key(list(NO_DECAY_KINDS), "parameter kinds that get no weight decay",
                                     choices=NO_DECAY_KINDS)
    scheduler: str = key("constant", "the learning-rate schedule, stepped per iteration", choices=SCHEDULERS)
    paper_epochs: int = key(0, ">0: epoch quantities are the paper's and scale by epochs/paper_epochs", ge=0)
    warmup_epochs: float = key(0.0, "linear warm-up (onecycle: cosine ramp)", ge=0)
    warmup_lr: float = key(0.0, "lr at the start of the warm-up", ge=0)
    min_lr: float = key(0.0, "floor of the decaying schedules", ge=0)
    milestones: list[float] = key([0.5, 0.75], "multistep: fractions of the run", ge=0, le=1)
    gamma: float = key(0.1, "step, multistep, exponential: factor per decay", gt=0, le=1)
    decay_epochs: float = key(30.0, "step / exponential: one factor gamma every decay_epochs", gt=0)
    poly_power: float = key(1.0, "poly: (1 - progress) ** poly_power", gt=0)
    restart_epochs: float = key(10.0, "cosine_restarts: length of the first cycle", gt=0)
    restart_mult: float = key(1.0, "cosine_restarts: each cycle this much longer than the one before", ge=1)
    cycle_epochs: float = key(2.0, "cyclic: one triangle from min_lr to lr and back", gt=0)
    grad_clip: float = key(0.0, "global gradient-norm clip, 0 = off", ge=0)
    agc_clip: float = key(0.0, "adaptive gradient clipping lambda (NFNet: 0.01), 0 = off", ge=0)
    agc_eps: float = key(0.001, "adaptive gradient clipping: floor of the weight norm", gt=0)
    sam: bool = key(False, "sharpness-aware minimisation around the optimizer")
    sam_rho: float = key(0.05, "SAM: radius of the perturbation", gt=0)
    sam_adaptive: bool = key(False, "ASAM: perturbation scaled by |w|")
    # regularisation and augmentation
    label_smoothing: float = key(0.0, "label smoothing of the cross-entropy", ge=0, lt=1)
    mixup_alpha: float = key(0.0, ">0: mixup with Beta(alpha, alpha)", ge=0)
    cutmix_alpha: float = key(0.0, ">0: cutmix with Beta(alpha, alpha)", ge=0)
    mixup_prob: float = key(1.0, "chance that a batch is mixed at all", ge=0, le=1)
    mixup_switch_prob: float = key(0.5, "with both on: chance of cutmix rather than mixup", ge=0, le=1)
    auto_augment: str = key("off", "batch augmentation policy", choices=AUTO_AUGMENTS)
    randaug_layers: int = key(2, "RandAugment: operations per image", ge=0, le=16)
    randaug_magnitude: int = key(9, "RandAugment: magnitude bin", ge=0, le=RANDAUGMENT_BINS - 1)
    random_erasing: float = key(0.0, "chance of erasing a random box (filled with 0)", ge=0, le=1)
    aug_group_size: int = key(8, "images that share one drawn operation (1 = per image)", ge=1)
    ema_decay: float = key(0.0, ">0: exponential moving average of the weights, evaluated beside the model",
                           ge=0, lt=1)
    ema_warmup: bool = key(True, "EMA decay min(ema_decay, (1+t)/(10+t)) at update t")
    ema_select: bool = key(False, "choose the best epoch (and test weights) by the EMA's validation top-1")
    teacher: str = key("", "soft distillation from a saved run: its folder, model.safetensors, best.pt or last.pt "
                       "(\"\" = none)")
    distill_alpha: float = key(0.5, "with a teacher: weight of the distillation term, 1 - alpha on the labels",
                               ge=0, le=1)
    distill_temperature: float = key(1.0, "with a teacher: softmax temperature of the distillation term", gt=0)
    # run
    seed: int = key(0, "seed of every random generator", ge=0, le=2**32 - 1)
    deterministic: bool = key(False, "deterministic algorithms (slower)")
    device: str = key("auto", "auto | cpu | cuda | cuda:N", pattern=r"auto|cpu|cuda(:[0-9]{1,3})?")
    amp: str = key("auto", "autocast: auto (GPU: bf16; CPU: the faster of fp32 and native bf16, timed)",
                   choices=("auto", "off", "bf16", "fp16"))
    max_steps_per_epoch: int = key(0, "0 = whole epoch; a positive number caps steps (smoke tests)", ge=0)
    channels_last: str = key("auto", "NHWC layout of model and batches: auto (GPU: off; CPU: timed) | true | "
                             "false", choices=("auto", "true", "false"))
    compile: bool = key(False, "torch.compile the training model (evaluation stays eager)")
    compile_backend: str = key("inductor", "a torch.compile backend name", pattern=r"[a-z_]{1,32}")
    sync_bn: bool = key(False, "under torchrun: BatchNorm statistics synchronised across processes")
    checkpoint: bool = key(False, "write <checkpoint_dir>/<model>_<dataset>_s<seed>/{last,best}.pt every epoch")
    checkpoint_minutes: float = key(10.0, "with --checkpoint, last.pt is also written mid-epoch once this many "
                                    "minutes passed since its last write (0: at epoch ends only; one process only)",
                                    ge=0, le=1e6)
    checkpoint_dir: str = key("checkpoints", "folder of the checkpoint folders", path=True)
    resume: str = key("", "\"\" | auto | path to a last.pt")
    model_save: bool = key(False, "export final weights as safetensors beside the run's config")
    results_dir: str = key("results", "folder of the run folders (runs/<run id>/)", path=True)
    plots_dir: str = key("plots", "folder of the training-curve plots", path=True)
    protocol: str = key("", "a configs/protocols/ name (set by benchmarks.sweep for the runs it makes)",
                        pattern=r"[a-z0-9_]{0,64}")

    def __post_init__(self) -> None:
        for name in FIELDS:
            setattr(self, name, check_value(name, getattr(self, name), "in the config"))
        check_together(self)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


FIELDS = {f.name: f for f in dataclasses.fields(Config)}
HINTS = typing.get_type_hints(Config)
SECTIONS = {"model": "what to train", "data_dir": "data", "epochs": "optimisation",
            "label_smoothing": "regularisation and augmentation", "seed": "run"}


def domain(name: str) -> Domain:
    return FIELDS[name].metadata["domain"]


def defaults() -> dict[str, Any]:
    """Every key's declared default."""
    return {name: f.default_factory() if f.default is dataclasses.MISSING else f.default for name, f in FIELDS.items()}


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


# ---------------------------------------------------------------- one value, checked against its declaration


_TRUE, _FALSE = ("true", "yes", "1", "on"), ("false", "no", "0", "off")
_INVALID = object()
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _kinds(hint) -> tuple[Any, ...]:
    return typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)


def _type_name(kind) -> str:
    origin = typing.get_origin(kind)
    if origin is list:
        return f"a list of {_type_name(typing.get_args(kind)[0]).split(' ', 1)[1]}s like [1, 2]"
    return {bool: "a boolean (true/false)", int: "an integer", float: "a number", str: "a string",
            dict: "a mapping like {a: 1}", list: "a list like [1, 2]"}[kind]


def _convert(value: Any, kind) -> Any:
    """``value`` (a string from the command line, or a YAML value) in type ``kind``, or _INVALID."""
    origin = typing.get_origin(kind)
    if origin is list or kind in (list, dict):
        container = list if origin is list else kind
        if not isinstance(value, container):
            return _INVALID
        if origin is list:
            items = [_convert(item, typing.get_args(kind)[0]) for item in value]
            return _INVALID if any(item is _INVALID for item in items) else items
        return value
    if kind is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower() if isinstance(value, (str, int)) else ""
        return True if text in _TRUE else False if text in _FALSE else _INVALID
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return _INVALID
    if kind is int:
        if isinstance(value, float):
            return int(value) if value.is_integer() else _INVALID
        try:
            return int(value)
        except ValueError:
            return _INVALID
    if kind is float:
        try:
            return float(value)
        except (ValueError, OverflowError):
            return _INVALID
    if kind is str:
        return value if isinstance(value, str) else str(value)
    return _INVALID


def _coerce(name: str, value: Any, source: str) -> Any:
    """``value`` in the declared type of ``name``; a UsageError naming key and source otherwise."""
    allowed = _kinds(HINTS[name])
    if isinstance(value, str) and any(typing.get_origin(k) is list or k in (list, dict) for k in allowed):
        value = parse_yaml(value, f"the value of {flag(name)} ({source})")
    if value is None or (isinstance(value, str) and value.strip().lower() in ("none", "null")):
        if type(None) in allowed:
            return None
        raise UsageError(f"config key '{name}' ({source}) cannot be empty: give {_type_name(allowed[0])}")
    if domain(name).choices and "true" in domain(name).choices and isinstance(value, (bool, str)):
        as_bool = _convert(value, bool)  # a choice that takes the usual boolean spellings (channels_last)
        if as_bool is not _INVALID:
            return "true" if as_bool else "false"
    for kind in allowed:
        if kind is not type(None):
            converted = _convert(value, kind)
            if converted is not _INVALID:
                return converted
    raise UsageError(f"config key '{name}' ({source}) must be {_type_name(allowed[0])}, got {_short(value)}")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _numbers(value: Any):
    """Every int or float inside ``value`` (lists and mappings walked)."""
    if isinstance(value, bool):
        return
    if isinstance(value, (int, float)):
        yield value
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _numbers(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _numbers(item)


def _strings(value: Any):
    if isinstance(value, str):
        yield value
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, dict):
        for k, item in value.items():
            yield str(k)
            yield from _strings(item)


def check_value(name: str, value: Any, source: str) -> Any:
    """``value`` converted to ``name``'s type and checked against its domain."""
    value = _coerce(name, value, source)
    rule = domain(name)
    fix = f"(set {flag(name)}=VALUE or the config file that sets it)"
    if any(isinstance(n, float) and not math.isfinite(n) for n in _numbers(value)):
        raise UsageError(f"{name} must be finite, got {_short(value)} {fix}")
    if any(_CONTROL.search(s) for s in _strings(value)):
        raise UsageError(f"{name} must not hold control characters (newlines, tabs, NUL), got {_short(value)}")
    if value is None:
        return value
    if isinstance(value, list) and rule.length is not None and len(value) != rule.length:
        raise UsageError(f"{name} takes exactly {rule.length} values, got {len(value)}: {_short(value)} {fix}")
    items = value if isinstance(value, list) else [value]
    for item in items:
        if rule.choices and item not in rule.choices:
            close = difflib.get_close_matches(str(item), rule.choices, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            what = f"{name} entry" if isinstance(value, list) else name
            raise UsageError(f"unknown {what} {_short(item)}: choose one of {', '.join(rule.choices)}{hint}")
        broken = _broken_bound(item, rule) if isinstance(item, (int, float)) and not isinstance(item, bool) else None
        if broken:
            entries = "entries " if isinstance(value, list) else ""
            raise UsageError(f"{name} {entries}must be {broken}, got {_short(value)} {fix}")
    if rule.pattern is not None and not re.fullmatch(rule.pattern, value):
        raise UsageError(f"{name} must be {rule.help}, got {_short(value)} {fix}")
    if rule.path and value != FIELDS[name].default:
        check_path(name, value)
    return value


def _num(bound: float) -> str:
    return str(int(bound)) if float(bound).is_integer() else f"{bound:g}"


def _broken_bound(number: float, rule: Domain) -> str | None:
    """The bound ``number`` breaks, in words ("positive", "at most 30"), or None."""
    if rule.gt is not None and number <= rule.gt:
        return "positive" if rule.gt == 0 else f"above {_num(rule.gt)}"
    if rule.ge is not None and number < rule.ge:
        return {0: "zero or positive", 1: "positive"}.get(rule.ge, f"at least {_num(rule.ge)}")
    if rule.lt is not None and number >= rule.lt:
        whole_range = f" (the range is {rule.describe().removeprefix('in ')})" if rule.ge == 0 else ""
        return f"below {_num(rule.lt)}{whole_range}"
    if rule.le is not None and number > rule.le:
        return f"at most {_num(rule.le)}"
    return None


def check_path(name: str, value: str) -> None:
    """A path the user named: not empty, each part a legal file name, never under /proc, /sys or /dev."""
    if not value.strip():
        raise UsageError(f"{flag(name)} is empty: name a folder ({flag(name)}=path), or leave it out for the default")
    if len(os.fsencode(value)) > 4000 or any(len(os.fsencode(part)) > 255 for part in Path(value).parts):
        raise UsageError(f"{flag(name)}={_short(value)} is too long a path (parts over 255 bytes): "
                         f"choose a shorter one")
    try:
        resolved = Path(value).expanduser().resolve()
    except (OSError, RuntimeError) as err:  # a symlink loop, an unreadable part
        raise UsageError(f"{flag(name)}={value} cannot be resolved ({err}): choose another folder") from None
    for pseudo in PSEUDO_FILE_SYSTEMS:
        if resolved == pseudo or pseudo in resolved.parents:
            raise UsageError(f"{flag(name)}={value} is under {pseudo}, which holds kernel interfaces, not files: "
                             f"choose a folder on a real file system")


def check_together(cfg: Config) -> None:
    """Rules between keys, and the model's options against its builder."""
    if cfg.sam and cfg.amp == "fp16":
        raise UsageError("SAM takes two gradients per step and cannot share fp16 loss scaling: use --amp=bf16 or off")
    if cfg.min_lr > cfg.lr:
        raise UsageError(f"min_lr {cfg.min_lr:g} is above lr {cfg.lr:g}: a schedule's floor cannot be over its peak")
    info = zoo.get_model_info(cfg.model)
    if info.name != cfg.model:
        cfg.model = info.name
    check_model_kwargs(info, cfg.model_kwargs)
    if cfg.teacher:
        resolve_path(cfg.teacher)  # the file exists before anything is built (its contents are read by the run)


# ---------------------------------------------------------------- model options


@lru_cache(maxsize=256)
def _meta_build_problem(name: str, options_yaml: str) -> str | None:
    """Why the model cannot be built with these options (built on the meta device: no memory), or None."""
    import torch
    try:
        with torch.device("meta"):
            zoo.create_model(name, num_classes=10, in_chans=3, **yaml.safe_load(options_yaml))
    except Exception as err:  # noqa: BLE001 — whatever the builder raises, the options are what broke it
        return (str(err).splitlines() or [type(err).__name__])[0][:200]
    return None


@lru_cache(maxsize=None)
def _accepted_options(name: str) -> tuple[dict[str, inspect.Parameter], bool]:
    """The options a model takes: its builder's named parameters and, when the builder passes ``**kwargs`` on,
    those of the module class it returns (found by building it once on the meta device). The bool says
    whether the set is open (a ``**kwargs`` that could not be followed)."""
    info = zoo.get_model_info(name)
    params = dict(inspect.signature(info.builder).parameters)
    open_ended = any(p.kind is p.VAR_KEYWORD for p in params.values())
    if open_ended:
        try:
            import torch
            with torch.device("meta"):
                module = zoo.create_model(name, num_classes=10, in_chans=3)
        except Exception:  # noqa: BLE001 — a model that cannot build on meta keeps the builder's open signature
            module = None
        if module is not None:
            init = dict(inspect.signature(type(module).__init__).parameters)
            init.pop("self", None)
            open_ended = any(p.kind is p.VAR_KEYWORD for p in init.values())
            params.update(init)
    named = {k: p for k, p in params.items() if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
    return named, open_ended


def _annotation_accepts(annotation: Any, value: Any) -> bool:
    """Whether ``value`` fits a builder's annotation (strings and unknown annotations accept anything)."""
    if annotation is inspect.Parameter.empty or isinstance(annotation, str):
        annotation = _resolve_annotation(annotation)
        if annotation is None:
            return True
    options = _kinds(annotation) if typing.get_origin(annotation) is not typing.Union else typing.get_args(annotation)
    for kind in options:
        kind = typing.get_origin(kind) or kind
        if kind is type(None) and value is None:
            return True
        if kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return True
        if kind is int and isinstance(value, int) and not isinstance(value, bool):
            return True
        if kind in (tuple, list) and isinstance(value, (list, tuple)):
            return True
        if isinstance(kind, type) and kind not in (float, int, tuple, list, type(None)) and isinstance(value, kind):
            return True
        if kind is typing.Any:
            return True
    return False


_ANNOTATION_NAMES = {"float": float, "int": int, "bool": bool, "str": str, "tuple": tuple, "list": list,
                     "dict": dict, "None": type(None)}


def _resolve_annotation(text: Any):
    """A string annotation (``from __future__ import annotations``) of simple types, or None when not simple."""
    if not isinstance(text, str):
        return None
    parts = [p.strip() for p in text.split("|")]
    kinds = []
    for part in parts:
        base = part.split("[", 1)[0]
        if base not in _ANNOTATION_NAMES:
            return None
        kinds.append(_ANNOTATION_NAMES[base])
    return typing.Union[tuple(kinds)] if len(kinds) > 1 else kinds[0]


def check_model_kwargs(info: zoo.ModelInfo, options: dict[str, Any]) -> None:
    """The options' names against the builder's signature, and their types where it annotates them."""
    for name in options:
        if name in HARNESS_MODEL_OPTIONS:
            raise UsageError(f"model_kwargs may not set {name}: the harness sets it from "
                             f"{HARNESS_MODEL_OPTIONS[name]}; remove it from model_kwargs")
    if not options:
        return  # nothing to check: spare the meta-device build that following a **kwargs builder takes
    accepted, open_ended = _accepted_options(info.name)
    for name, value in options.items():
        if not isinstance(name, str) or not name.isidentifier():
            raise UsageError(f"model_kwargs key {name!r} is not an option name")
        if name not in accepted:
            if open_ended:
                continue
            known = sorted(set(accepted) - set(HARNESS_MODEL_OPTIONS))
            close = difflib.get_close_matches(name, known, n=1)
            raise UsageError(f"{info.name} does not take that option: '{name}' "
                             f"({'did you mean ' + close[0] + '? ' if close else ''}it takes {', '.join(known)})")
        annotation = accepted[name].annotation
        default = accepted[name].default
        if annotation is inspect.Parameter.empty and type(default) in (bool, int, float, str, tuple, list):
            annotation = type(default)  # an unannotated option with a plain default: its default's type
        if not _annotation_accepts(annotation, value):
            shown = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))
            raise UsageError(f"model_kwargs {name} of {info.name} must be {shown}, got {_short(value)}")
    if options and _meta_build_problem(info.name, "{}") is None:  # a model that builds on meta at all
        problem = _meta_build_problem(info.name, yaml.safe_dump(options, sort_keys=True))
        if problem:
            raise UsageError(f"model_kwargs {_short(options)} cannot build {info.name}: {problem}")


# ---------------------------------------------------------------- YAML


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a mapping with a key twice and, for user files, aliases (``*name``): an alias
    can make a few bytes stand for an exponentially large document."""
    allow_aliases = True

    def compose_node(self, parent, index):
        if not self.allow_aliases and self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.constructor.ConstructorError(None, None, "aliases (*name) are not accepted in config files",
                                                    event.start_mark)
        return super().compose_node(parent, index)

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            name = self.construct_object(key_node, deep=True)
            if isinstance(name, typing.Hashable) and name in seen:
                raise yaml.constructor.ConstructorError(None, None, f"the key '{name}' appears twice",
                                                        key_node.start_mark)
            seen.add(name)
        return super().construct_mapping(node, deep=deep)


class _UserLoader(_StrictLoader):
    allow_aliases = False


def parse_yaml(text: str, source: str, trusted: bool = False) -> Any:
    """Parse YAML safely (no Python object tags, no duplicate keys, no aliases unless ``trusted``)."""
    try:
        return yaml.load(text, Loader=_StrictLoader if trusted else _UserLoader)  # noqa: S506 — a SafeLoader
    except yaml.YAMLError as err:
        first_line = " ".join(str(err).split())[:160]
        raise UsageError(f"{source} is not valid YAML ({first_line}): fix it") from None
    except RecursionError:
        raise UsageError(f"{source} nests too deeply to be a config: flatten it") from None


def load_yaml(path: Path) -> dict[str, Any]:
    """A YAML mapping from a regular UTF-8 file; every way the file can be wrong is one UsageError naming it.
    The project's own files (configs/) may use aliases; no other file may."""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise UsageError(f"config file {path} does not exist: check the path") from None
    except OSError as err:
        raise UsageError(f"cannot read config file {path}: {err.strerror}") from None
    if not stat.S_ISREG(info.st_mode):
        raise UsageError(f"config file {path} is not a regular file (a folder, device or pipe): name a YAML file")
    if info.st_size > MAX_CONFIG_FILE_BYTES:
        raise UsageError(f"config file {path} is {info.st_size} bytes, more than a config holds "
                         f"({MAX_CONFIG_FILE_BYTES} at most): name a YAML config file")
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise UsageError(f"cannot read config file {path}: {err.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise UsageError(f"config file {path} is not UTF-8 text (byte {err.start} is 0x{raw[err.start]:02x}): "
                         f"save it as UTF-8") from None
    trusted = path.resolve().is_relative_to(CONFIG_DIR)
    data = parse_yaml(text, f"config file {path}", trusted)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UsageError(f"config file {path} must hold a mapping of config keys, not a {type(data).__name__}")
    return data


# ---------------------------------------------------------------- layers


def _suggest(name: str) -> str:
    close = difflib.get_close_matches(name, FIELDS, n=3, cutoff=0.6)
    return f"did you mean {', '.join(close)}? " if close else ""


def _apply(values: dict[str, Any], layer: dict[str, Any], source: str) -> None:
    for raw_key, value in layer.items():
        name = str(raw_key).replace("-", "_")
        if name not in FIELDS:
            raise UsageError(f"unknown config key '{raw_key}' ({source}): {_suggest(name)}"
                             f"valid keys are {', '.join(FIELDS)} (python main.py --help says what each does)")
        value = _coerce(name, value, source)
        if name == "model_kwargs" and values.get(name):
            value = {**values[name], **value}  # a later layer adds to (or overrides) the recipe's options
        values[name] = value


def model_recipe_layers(model: str) -> list[tuple[dict[str, Any], str]]:
    """The paper recipe of a model's family and its variant's overrides, from configs/models/<family>.yaml."""
    info = zoo.get_model_info(model)
    path = CONFIG_DIR / "models" / f"{info.family}.yaml"
    if not path.exists():
        return []
    data = load_yaml(path)
    unknown = set(data) - {"recipe", "variants"}
    if unknown:
        raise UsageError(f"{path} may only hold 'recipe' and 'variants', found {sorted(unknown)}")
    layers = [(data.get("recipe") or {}, f"{path.name} recipe")]
    variant = (data.get("variants") or {}).get(info.name)
    if variant:
        layers.append((variant, f"{path.name} variant {info.name}"))
    return layers


def build_config(cli: dict[str, Any], config_file: str | None = None) -> Config:
    """Merge the layers for the model, dataset and recipe that the user layers select."""
    user_layers = []
    if config_file is not None:
        if not config_file.strip():
            raise UsageError("--config is empty: name a YAML file (--config=path/to/file.yaml)")
        user_layers.append((load_yaml(Path(config_file)), f"from {config_file}"))
    user_layers.append((cli, "from the command line"))

    selected = defaults()
    for layer, source in user_layers:
        _apply(selected, layer, source)
    dataset = check_value("dataset", selected["dataset"], "")
    recipe = check_value("recipe", selected["recipe"], "")
    model = zoo.resolve_name(check_value("model", selected["model"], ""))

    values = defaults()
    layers = [(load_yaml(CONFIG_DIR / "datasets" / f"{dataset}.yaml"),
               f"configs/datasets/{dataset}.yaml")]
    if recipe == "paper":
        layers += model_recipe_layers(model)
    for layer, source in layers + user_layers:
        _apply(values, layer, source)
    values["model"] = model
    return Config(**values)


# ---------------------------------------------------------------- the command line


COMMAND_FLAGS = {"config", "debug", "help", "list_models"}


def _is_boolean(name: str) -> bool:
    """Keys that may stand bare (``--sam``): booleans and the choices that take boolean spellings."""
    if name in COMMAND_FLAGS - {"config", "list_models"}:
        return True
    return name in FIELDS and (HINTS[name] is bool or "true" in domain(name).choices)


def parse_command_line(argv: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split ``--key=value``, ``--key value`` and bare ``--flag`` (true) into config keys and command flags.

    Values stay strings here; the config layer converts them by the declared type, so ``--sam False``
    really is false. Dashes and underscores in keys are the same. A key or flag given twice is refused.
    """
    keys: dict[str, Any] = {}
    flags: dict[str, Any] = {"config": None, "debug": False, "help": False, "list_models": None}
    given: set[str] = set()
    i = 0
    while i < len(argv):
        token = argv[i]
        if token in ("-h", "--help"):
            flags["help"] = True
            i += 1
            continue
        if not token.startswith("--") or token == "--":
            raise UsageError(f"unexpected argument {_short(token)}: options look like --key=value (see --help)")
        name, has_value, value = token[2:].partition("=")
        name_key = name.replace("-", "_")
        following = argv[i + 1] if i + 1 < len(argv) else "--"
        takes_following = not following.startswith("--") and (
            not _is_boolean(name_key) or following.strip().lower() in _TRUE + _FALSE + ("auto",))
        if not has_value and takes_following:
            value, has_value = following, True
            i += 1
        i += 1
        if name_key in given:
            raise UsageError(f"--{name} is given twice: give each option once")
        given.add(name_key)
        if name_key in COMMAND_FLAGS:
            if name_key == "config":
                if not has_value or not value.strip():
                    raise UsageError("--config needs a file: --config=path/to/file.yaml")
                flags["config"] = value
            elif name_key == "list_models":  # bare: every model; --list-models=PATTERN filters
                flags["list_models"] = value.strip() if has_value and value.strip().lower() not in _TRUE else "*"
            else:
                flags[name_key] = _coerce_flag(name_key, value if has_value else "true")
            continue
        if not has_value:
            if name_key in FIELDS and not _is_boolean(name_key):
                raise UsageError(f"--{name} needs a value: --{name}=VALUE")
            value = "true"
        keys[name_key] = value
    return keys, flags


def _coerce_flag(name: str, value: str) -> bool:
    converted = _convert(value, bool)
    if converted is _INVALID:
        raise UsageError(f"--{name} takes true or false, got {_short(value)}")
    return converted


def help_text() -> str:
    """Every key with its default, its domain and what it does (python main.py --help)."""
    lines = []
    for name, f in FIELDS.items():
        if name in SECTIONS:
            lines.append(f"\n{SECTIONS[name]}:")
        rule = domain(name)
        shown = _shown(defaults()[name])
        described = rule.describe()
        lines.append(f"  {flag(name) + '=' + shown:34} {rule.help}" + (f" [{described}]" if described else ""))
    return "\n".join(lines)


def _shown(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return value or '""'
    if isinstance(value, (list, dict)):
        return yaml.safe_dump(value, default_flow_style=True, width=200).strip()
    return f"{value:g}" if isinstance(value, float) else str(value)
