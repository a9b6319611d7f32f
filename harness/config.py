"""One typed config object, built from YAML layers and the command line.

Layers, later ones winning:
  1. configs/base.yaml             every key with its default (the seed project's setup)
  2. configs/datasets/<name>.yaml  the dataset's input size and augmentation
  3. configs/models/<family>.yaml  the model's paper recipe (only with recipe=paper), then its variant's overrides
  4. --config FILE                 a user's file
  5. --key=value                   the command line

Every layer may only name keys of ``Config``; values are checked against the field's type.
"""
from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from pathlib import Path
from typing import Any

import yaml

import zoo
from harness.errors import UsageError

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
RECIPES = ("paper", "seed")


@dataclasses.dataclass
class Config:
    # what to train
    model: str
    dataset: str
    recipe: str
    model_kwargs: dict
    # data
    data_dir: str | None
    download: bool
    img_size: int | None
    input_size: int
    val_fraction: float
    synthetic_images: int
    crop_padding: int
    hflip: bool
    workers: int
    # optimisation
    epochs: int
    batch_size: int
    optimizer: str
    lr: float
    lr_reference_batch: int
    momentum: float
    nesterov: bool
    betas: list
    opt_eps: float
    rmsprop_alpha: float
    weight_decay: float
    no_weight_decay: list
    scheduler: str
    paper_epochs: int
    warmup_epochs: float
    warmup_lr: float
    min_lr: float
    milestones: list
    gamma: float
    decay_epochs: float
    poly_power: float
    restart_epochs: float
    restart_mult: float
    cycle_epochs: float
    grad_clip: float
    agc_clip: float
    agc_eps: float
    sam: bool
    sam_rho: float
    sam_adaptive: bool
    # regularisation
    label_smoothing: float
    mixup_alpha: float
    cutmix_alpha: float
    mixup_prob: float
    mixup_switch_prob: float
    auto_augment: str
    randaug_layers: int
    randaug_magnitude: int
    random_erasing: float
    aug_group_size: int
    ema_decay: float
    ema_warmup: bool
    ema_select: bool
    # run
    seed: int
    deterministic: bool
    device: str
    amp: str
    max_steps_per_epoch: int
    channels_last: bool
    compile: bool
    compile_backend: str
    sync_bn: bool
    checkpoint: bool
    checkpoint_dir: str
    resume: str
    model_save: bool
    results_dir: str
    plots_dir: str
    protocol: str

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


FIELDS = {f.name: f for f in dataclasses.fields(Config)}


def _suggest(key: str) -> str:
    close = difflib.get_close_matches(key, FIELDS, n=3, cutoff=0.6)
    return f"did you mean {', '.join(close)}? " if close else ""


def _coerce(key: str, value: Any, source: str) -> Any:
    """Check ``value`` against the type of ``Config.<key>`` and return it in that type."""
    hint = typing.get_type_hints(Config)[key]
    allowed = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
        if type(None) in allowed:
            return None
        raise UsageError(f"config key '{key}' ({source}) cannot be empty: give a {_type_name(allowed[0])}")
    for kind in allowed:
        if kind is type(None):
            continue
        converted = _convert(value, kind)
        if converted is not _INVALID:
            return converted
    raise UsageError(f"config key '{key}' ({source}) must be {_type_name(allowed[0])}, got {value!r}")


_INVALID = object()
_TRUE, _FALSE = ("true", "yes", "1", "on"), ("false", "no", "0", "off")


def _convert(value: Any, kind: type) -> Any:
    if kind is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        return True if text in _TRUE else False if text in _FALSE else _INVALID
    if kind is int:
        if isinstance(value, bool):
            return _INVALID
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        try:
            return int(str(value))
        except ValueError:
            return _INVALID
    if kind is float:
        if isinstance(value, bool):
            return _INVALID
        try:
            return float(value)
        except (TypeError, ValueError):
            return _INVALID
    if kind is str:
        return value if isinstance(value, str) else str(value) if isinstance(value, (int, float)) else _INVALID
    if kind in (list, dict):
        if isinstance(value, str):
            try:
                value = yaml.safe_load(value)
            except yaml.YAMLError:
                return _INVALID
        return value if isinstance(value, kind) else _INVALID
    return _INVALID


def _type_name(kind: type) -> str:
    return {bool: "a boolean (true/false)", int: "an integer", float: "a number", str: "a string",
            list: "a list like [1, 2]", dict: "a mapping like {a: 1}"}[kind]


def load_yaml(path: Path) -> dict[str, Any]:
    """Parse a YAML file safely (no Python object tags); an error names the file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"config file {path} does not exist: check the path") from None
    except OSError as err:
        raise UsageError(f"cannot read config file {path}: {err.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        first_line = str(err).splitlines()[0]
        raise UsageError(f"config file {path} is not valid YAML ({first_line}): fix or remove it") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UsageError(f"config file {path} must hold a mapping of config keys, not a {type(data).__name__}")
    return data


def _apply(values: dict[str, Any], layer: dict[str, Any], source: str) -> None:
    for raw_key, value in layer.items():
        key = str(raw_key).replace("-", "_")
        if key not in FIELDS:
            raise UsageError(f"unknown config key '{raw_key}' ({source}): {_suggest(key)}"
                             f"valid keys are {', '.join(sorted(FIELDS))}")
        value = _coerce(key, value, source)
        if key == "model_kwargs" and values.get(key):
            value = {**values[key], **value}  # a later layer adds to (or overrides) the recipe's options
        values[key] = value


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
    if config_file:
        user_layers.append((load_yaml(Path(config_file)), f"from {config_file}"))
    user_layers.append((cli, "from the command line"))

    values: dict[str, Any] = {}
    _apply(values, load_yaml(CONFIG_DIR / "base.yaml"), "configs/base.yaml")
    missing = set(FIELDS) - set(values)
    if missing:
        raise RuntimeError(f"configs/base.yaml lacks defaults for {sorted(missing)}")
    selected = dict(values)
    for layer, source in user_layers:
        _apply(selected, layer, source)

    dataset_file = CONFIG_DIR / "datasets" / f"{selected['dataset']}.yaml"
    if not dataset_file.exists():
        known = sorted(p.stem for p in (CONFIG_DIR / "datasets").glob("*.yaml"))
        raise UsageError(f"unknown dataset '{selected['dataset']}': choose one of {', '.join(known)}")
    if selected["recipe"] not in RECIPES:
        raise UsageError(f"unknown recipe '{selected['recipe']}': choose one of {', '.join(RECIPES)}")
    model = zoo.resolve_name(selected["model"])

    layers = [(load_yaml(dataset_file), f"configs/datasets/{dataset_file.name}")]
    if selected["recipe"] == "paper":
        layers += model_recipe_layers(model)
    for layer, source in layers + user_layers:
        _apply(values, layer, source)
    values["model"] = model
    cfg = Config(**values)
    validate(cfg)
    return cfg


def validate(cfg: Config) -> None:
    for key in ("epochs", "batch_size"):
        if getattr(cfg, key) <= 0:
            raise UsageError(f"{key} must be positive, got {getattr(cfg, key)}")
    if cfg.lr <= 0:
        raise UsageError(f"lr must be positive, got {cfg.lr}")
    if cfg.img_size is not None and cfg.img_size <= 0:
        raise UsageError(f"img_size must be positive, got {cfg.img_size}")
    if not 0.0 < cfg.val_fraction < 1.0:
        raise UsageError(f"val_fraction must be between 0 and 1, got {cfg.val_fraction}")
    if cfg.device not in ("auto", "cpu", "cuda") and not cfg.device.startswith("cuda:"):
        raise UsageError(f"device must be auto, cpu or cuda, got '{cfg.device}'")
    if cfg.amp not in ("auto", "off", "bf16", "fp16"):
        raise UsageError(f"amp must be auto, off, bf16 or fp16, got '{cfg.amp}'")
    if cfg.max_steps_per_epoch < 0:
        raise UsageError(f"max_steps_per_epoch must be 0 (no limit) or positive, got {cfg.max_steps_per_epoch}")
    from harness.augment import check_augment
    from harness.recipes import check_recipe
    check_recipe(cfg)
    check_augment(cfg)


COMMAND_FLAGS = {"config", "debug", "help", "list_models"}


def parse_command_line(argv: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split ``--key=value``, ``--key value`` and bare ``--flag`` (true) into config keys and command flags.

    Values stay strings here; the config layer converts them by the field's type, so ``--sam False``
    really is false. Dashes and underscores in keys are the same.
    """
    keys: dict[str, Any] = {}
    flags: dict[str, Any] = {"config": None, "debug": False, "help": False, "list_models": False}
    i = 0
    while i < len(argv):
        token = argv[i]
        if token in ("-h", "--help"):
            flags["help"] = True
            i += 1
            continue
        if not token.startswith("--") or token == "--":
            raise UsageError(f"unexpected argument '{token}': options look like --key=value (see --help)")
        name, has_value, value = token[2:].partition("=")
        key = name.replace("-", "_")
        following = argv[i + 1] if i + 1 < len(argv) else "--"
        is_bool = key in COMMAND_FLAGS - {"config"} or FIELDS_TYPE_NAMES.get(key) == "bool"
        takes_following = not following.startswith("--") and (
            not is_bool or following.strip().lower() in _TRUE + _FALSE)
        if not has_value and takes_following:
            value, has_value = following, True
            i += 1
        i += 1
        if key in COMMAND_FLAGS:
            if key == "config":
                if not has_value:
                    raise UsageError("--config needs a file: --config=path/to/file.yaml")
                flags["config"] = value
            else:
                flags[key] = _coerce_flag(key, value if has_value else "true")
            continue
        if not has_value:
            if key in FIELDS and not is_bool:
                raise UsageError(f"--{name} needs a value: --{name}=VALUE")
            value = "true"
        keys[key] = value
    return keys, flags


def _coerce_flag(key: str, value: str) -> bool:
    converted = _convert(value, bool)
    if converted is _INVALID:
        raise UsageError(f"--{key} takes true or false, got {value!r}")
    return converted


FIELDS_TYPE_NAMES = {name: getattr(hint, "__name__", str(hint))
                     for name, hint in typing.get_type_hints(Config).items()}
