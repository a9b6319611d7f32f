"""Train many models under one protocol: python -m benchmarks.sweep --protocol=fmnist --models=resnet*,vit_lite_7_4

A protocol (configs/protocols/<name>.yaml, or a path to such a file) fixes the dataset, the input size
and the config keys every model trains with:

  fmnist  Fashion-MNIST, 10 epochs, 32 px raised to each model's minimum, each model's paper recipe
  seed    CIFAR-10, 10 epochs, 224 px, the seed project's uniform recipe
  paper   each model's paper recipe at its native size (ImageNet unless --dataset says otherwise)

--models takes names, aliases, globs ('resnet*'), tv:NAME / timm:NAME, or all; --seeds=0,1,2 repeats
each run per seed; --dataset replaces the protocol's dataset; any other --key=value is a config
override as in main.py (the run's config records it, and the table gives it a column of its own).

Each run is main.py's run (harness.config + harness.train.run) with --checkpoint=True, and the sweep is
resumable: a run whose completed result is already in results/ with the same config is skipped, and an
interrupted one resumes from its last checkpoint (checkpoints/sweep_<protocol>/). A failing model is
reported and the sweep goes on; the exit status is 1 if any run failed. After each run the model's
GMACs at the run's input go to results/complexity.csv for the table.
"""
from __future__ import annotations

import dataclasses
import sys
import traceback
from pathlib import Path
from typing import Any

import yaml

import zoo
from benchmarks import profile
from benchmarks.common import ArgumentParser, dataset_geometry, run_command, select_models
from harness import checkpoint
from harness.config import CONFIG_DIR, Config, build_config, load_yaml, parse_command_line
from harness.errors import UsageError
from harness.results import completed_runs

PROTOCOL_DIR = CONFIG_DIR / "protocols"
PROTOCOL_KEYS = {"description", "dataset", "img_size", "config"}
# Keys that do not change what a run measures (where it runs and what it writes).
NOT_IDENTITY = {"resume", "device", "workers", "checkpoint", "checkpoint_dir", "model_save", "results_dir",
                "plots_dir", "data_dir", "download"}


@dataclasses.dataclass
class Protocol:
    name: str
    description: str
    dataset: str
    img_size: str          # "dataset" or "native"
    config: dict[str, Any]


def load_protocol(name: str) -> Protocol:
    """A protocol by name (configs/protocols/<name>.yaml) or by path to a YAML file."""
    path = Path(name) if name.endswith((".yaml", ".yml")) else PROTOCOL_DIR / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in PROTOCOL_DIR.glob("*.yaml"))
        raise UsageError(f"unknown protocol {name!r}: choose one of {', '.join(known)} or give a .yaml file")
    data = load_yaml(path)
    unknown = set(data) - PROTOCOL_KEYS
    if unknown:
        raise UsageError(f"protocol {path} has unknown keys {sorted(unknown)}: it may hold {sorted(PROTOCOL_KEYS)}")
    if data.get("img_size", "dataset") not in ("dataset", "native"):
        raise UsageError(f"protocol {path}: img_size must be 'dataset' or 'native', got {data['img_size']!r}")
    if "dataset" not in data:
        raise UsageError(f"protocol {path} names no dataset")
    config = data.get("config") or {}
    if not isinstance(config, dict):
        raise UsageError(f"protocol {path}: config must be a mapping of config keys")
    return Protocol(name=path.stem, description=str(data.get("description", "")), dataset=str(data["dataset"]),
                    img_size=data.get("img_size", "dataset"), config=config)


def run_config(protocol: Protocol, model: str, seed: int, dataset: str, overrides: dict[str, Any],
               checkpoint_root: str) -> Config:
    cli = {**protocol.config, "model": model, "dataset": dataset, "seed": seed, "protocol": protocol.name,
           "checkpoint": True, "checkpoint_dir": str(Path(checkpoint_root) / f"sweep_{protocol.name}")}
    if protocol.img_size == "native":
        cli["img_size"] = zoo.get_model_info(model).native_size
    cli.update(overrides)
    return build_config(cli)


def identity(config: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in config.items() if k not in NOT_IDENTITY}


def finished_run(cfg: Config) -> dict | None:
    """The completed run in cfg.results_dir with this run's config, if any."""
    wanted = identity(cfg.to_dict())
    for summary in completed_runs(cfg.results_dir):
        config_path = Path(cfg.results_dir) / "runs" / summary["run_id"] / "config.yaml"
        try:
            saved = yaml.safe_load(config_path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError):
            continue
        if identity(saved) == wanted:
            return summary
    return None


def record_complexity(summary: dict, complexity_csv: str) -> None:
    in_chans, num_classes = dataset_geometry(summary["dataset"])
    profile.ensure_rows([(summary["model"], "run", int(summary["img_size"]), in_chans, num_classes)],
                        complexity_csv, verbose=False)


def sweep(protocol: Protocol, models: list[str], seeds: list[int], dataset: str, overrides: dict[str, Any],
          checkpoint_root: str = "checkpoints", complexity_csv: str = profile.DEFAULT_OUT,
          debug: bool = False) -> dict[str, list]:
    from harness.train import run  # heavy imports only once the input is known to be good

    outcome: dict[str, list] = {"trained": [], "skipped": [], "failed": []}
    configs = [(m, s, run_config(protocol, m, s, dataset, overrides, checkpoint_root)) for m in models for s in seeds]
    for model, seed, cfg in configs:
        label = f"{model} seed {seed}"
        done = finished_run(cfg)
        if done:
            print(f"[sweep] {label}: done already ({done['run_id']}), skipped", flush=True)
            outcome["skipped"].append(label)
            continue
        last = checkpoint.checkpoint_folder(cfg) / "last.pt"
        if last.is_file():
            cfg = dataclasses.replace(cfg, resume="auto")
        print(f"[sweep] {label}: {'resuming' if cfg.resume else 'training'} ({protocol.name}, {cfg.dataset})",
              flush=True)
        try:
            summary = run(cfg)
            record_complexity(summary, complexity_csv)
        except Exception as err:  # noqa: BLE001 — one failing model is reported and the sweep goes on
            detail = str(err).splitlines()[0] if str(err) else ""
            print(f"[sweep] {label}: FAILED: {type(err).__name__}: {detail}", file=sys.stderr, flush=True)
            if debug:
                traceback.print_exc()
            outcome["failed"].append(f"{label} ({type(err).__name__}: {detail})")
            continue
        outcome["trained"].append(label)
    return outcome


def parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise UsageError(f"--seeds takes integers like 0,1,2, got {text!r}") from None
    if not seeds:
        raise UsageError("--seeds names no seed")
    return list(dict.fromkeys(seeds))


def main(argv: list[str]) -> int:
    parser = ArgumentParser(prog="python -m benchmarks.sweep", description=__doc__.split("\n")[0],
                            epilog="other --key=value options are config overrides, as in main.py")
    parser.add_argument("--protocol", required=True, help="fmnist, seed, paper, or a path to a protocol .yaml")
    parser.add_argument("--models", required=True, help="names, aliases, globs, tv:NAME, timm:NAME or all")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--dataset", default=None, help="replaces the protocol's dataset")
    parser.add_argument("--checkpoint-root", default="checkpoints")
    parser.add_argument("--complexity", default=profile.DEFAULT_OUT)
    parser.add_argument("--debug", action="store_true")
    args, rest = parser.parse_known_args(argv)
    overrides, flags = parse_command_line(rest)
    if flags["config"] or flags["list_models"]:
        raise UsageError("--config and --list-models belong to main.py; the sweep takes --key=value overrides")
    for key in ("model", "seed", "protocol", "dataset"):
        if key in overrides:
            raise UsageError(f"--{key} is set by the sweep: use --models, --seeds, --protocol or --dataset")
    protocol = load_protocol(args.protocol)
    outcome = sweep(protocol, select_models(args.models), parse_seeds(args.seeds), args.dataset or protocol.dataset,
                    overrides, args.checkpoint_root, args.complexity, args.debug)
    print(f"[sweep] {protocol.name}: {len(outcome['trained'])} trained, {len(outcome['skipped'])} skipped, "
          f"{len(outcome['failed'])} failed")
    for failure in outcome["failed"]:
        print(f"[sweep] failed: {failure}")
    return 1 if outcome["failed"] else 0


if __name__ == "__main__":
    sys.exit(run_command(main))
