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

The sweep knows its cost before it starts (benchmarks.cost): each run's training and evaluated images
times the model's GMACs at the run's input, at a training speed measured on this machine where one is
(a finished run, a benchmarks.speed CSV) or else the prior stated in benchmarks/cost.py, rescaled to the
speeds measured here (or --assume-tflops). It prints the plan first — cheapest first with --order=cost
(the default), or in the order given — and --budget-hours stops it cleanly: a run that would not fit the
time left is not started (a later one that fits still is), and the run in progress when the budget runs
out is interrupted; its last checkpoint is kept and the next sweep resumes it, planned for the epochs that
checkpoint lacks. Without --budget-hours a run longer than one sitting trains until it is stopped and resumes
the same way. Ctrl-C or SIGTERM (``kill``: a ``nohup ... &`` job ignores Ctrl-C) ends the sweep the same way,
exit code 130 or 143. --plan-only prints the plan and exits.
"""
from __future__ import annotations

import contextlib
import dataclasses
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import yaml

import zoo
from benchmarks import cost, profile
from benchmarks.common import OneLineParser, dataset_geometry, read_csv, run_command, select_models
from harness import checkpoint
from harness.config import CONFIG_DIR, Config, build_config, load_yaml, parse_command_line
from harness.config import defaults as config_defaults
from harness.errors import UsageError
from harness.results import completed_runs

PROTOCOL_DIR = CONFIG_DIR / "protocols"
PROTOCOL_KEYS = {"description", "dataset", "img_size", "config"}
# Keys that do not change what a run measures (where and how fast it runs, what it writes).
NOT_IDENTITY = {"resume", "device", "workers", "checkpoint", "checkpoint_minutes", "checkpoint_dir", "model_save",
                "results_dir", "plots_dir", "data_dir", "download", "amp", "channels_last", "compile", "compile_backend"}


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


def same_run(saved: dict[str, Any], wanted: dict[str, Any], defaults: dict[str, Any]) -> bool:
    """A saved config describes the wanted run if they agree on every key that matters; a key added to the
    harness after the run was saved matters only if the wanted run sets it away from its default."""
    saved, wanted = identity(saved), identity(wanted)
    return all(saved[k] == v if k in saved else v == defaults.get(k) for k, v in wanted.items())


def finished_run(cfg: Config) -> dict | None:
    """The completed run in cfg.results_dir with this run's config, if any."""
    wanted = cfg.to_dict()
    defaults = config_defaults()
    for summary in completed_runs(cfg.results_dir):
        if any(summary.get(key) != wanted[key] for key in ("model", "dataset", "seed")):
            continue  # plainly another run: its config.yaml is not worth parsing (a plan checks 100+ runs)
        config_path = Path(cfg.results_dir) / "runs" / summary["run_id"] / "config.yaml"
        try:
            saved = yaml.safe_load(config_path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError):
            continue
        if same_run(saved, wanted, defaults):
            return summary
    return None


def record_complexity(summary: dict, complexity_csv: str) -> None:
    in_chans, num_classes = dataset_geometry(summary["dataset"])
    profile.ensure_rows([(summary["model"], "run", int(summary["img_size"]), in_chans, num_classes)],
                        complexity_csv, verbose=False)


@dataclasses.dataclass
class PlannedRun:
    model: str
    seed: int
    cfg: Config
    img_size: int
    gmacs: float | None
    images_per_s: float | None
    rate_source: str            # measured | prior | unknown
    done: bool
    seconds: float              # estimated, for the epochs still to train; 0 when done already
    epochs_done: int = 0        # held by an interrupted run's last checkpoint

    @property
    def label(self) -> str:
        return f"{self.model} seed {self.seed}"


def run_img_size(cfg: Config) -> int:
    """The input a run trains at (harness.train's rule: --img-size, else the dataset's raised to the minimum)."""
    return cfg.img_size if cfg.img_size is not None else max(cfg.input_size, zoo.get_model_info(cfg.model).min_size)


def prior_fitted_here(prior: cost.Throughput, results_dir: str, complexity_csv: str,
                      num_classes: int) -> tuple[cost.Throughput, int]:
    """``prior`` rescaled to this machine by the training speeds measured on it (benchmarks.cost.rescaled), and
    how many measurements it rests on: a prior fitted on one CPU can be 5× off on another."""
    measured = cost.measured_rates(results_dir)
    known = [(model, img_size, in_chans) for model, img_size, in_chans in measured if model in zoo.list_models()]
    profile.ensure_rows([(model, "run", img_size, in_chans, num_classes) for model, img_size, in_chans in known],
                        complexity_csv, verbose=False)
    rows = read_csv(complexity_csv)
    pairs = []
    for model, img_size, in_chans in known:
        counted = profile.lookup(rows, model, img_size, in_chans, num_classes)
        if counted:
            pairs.append((float(counted["gmacs"]), measured[(model, img_size, in_chans)]))
    return cost.rescaled(prior, pairs), len(pairs)


def epochs_checkpointed(cfg: Config) -> int:
    """The epochs an interrupted run's last.pt holds (0 without one), so that its plan counts only the rest.
    A damaged checkpoint counts as none here; the run itself then says what is wrong with it."""
    last = checkpoint.checkpoint_folder(cfg) / checkpoint.LAST
    if not last.is_file():
        return 0
    try:
        return min(int(checkpoint.load_last(last).state.get("epoch", 0)), cfg.epochs)
    except (UsageError, TypeError, ValueError):
        return 0


def plan_runs(configs: list[tuple[str, int, Config]], complexity_csv: str, prior: cost.Throughput,
              order: str, use_measured: bool = True) -> list[PlannedRun]:
    """Every run with its estimated cost, counting GMACs that complexity.csv lacks (and keeping them there);
    ``use_measured=False`` estimates every run from the prior (a plan for another machine)."""
    measured = cost.measured_rates(configs[0][2].results_dir) if configs and use_measured else {}
    wanted = []
    for model, _, cfg in configs:
        in_chans, num_classes = dataset_geometry(cfg.dataset)
        wanted.append((model, "run", run_img_size(cfg), in_chans, num_classes))
    profile.ensure_rows(wanted, complexity_csv, verbose=False)
    rows = read_csv(complexity_csv)
    planned = []
    for (model, seed, cfg), (_, _, img_size, in_chans, num_classes) in zip(configs, wanted):
        counted = profile.lookup(rows, model, img_size, in_chans, num_classes)
        gmacs = float(counted["gmacs"]) if counted else None
        rate, source = measured.get((model, img_size, in_chans)), "measured"
        if rate is None:
            rate, source = (prior.train_images_per_s(gmacs), "prior") if gmacs is not None else (None, "unknown")
        done = finished_run(cfg) is not None
        epochs_done = 0 if done else epochs_checkpointed(cfg)
        workload = cost.Workload.of_run(cfg.dataset, cfg.epochs - epochs_done, cfg.val_fraction,
                                        cfg.ema_decay > 0, cfg.sam, cfg.synthetic_images)
        seconds = 0.0 if done else cost.estimate_seconds(workload, rate) if rate else float("inf")
        planned.append(PlannedRun(model, seed, cfg, img_size, gmacs, rate, source, done, seconds, epochs_done))
    if order == "cost":
        planned.sort(key=lambda p: (p.seconds, p.model, p.seed))
    return planned


def format_plan(planned: list[PlannedRun], budget_s: float | None) -> str:
    lines = [f"{'#':>3} {'run':36} {'px':>4} {'GMACs':>8} {'img/s':>8} {'from':8} {'est. min':>8} {'total h':>7}"]
    total = 0.0
    for i, p in enumerate(planned, 1):
        total += p.seconds
        over = budget_s is not None and total > budget_s and not p.done
        state = "done" if p.done else "over budget" if over else ""
        if p.epochs_done:
            state = f"resumes after epoch {p.epochs_done}/{p.cfg.epochs}" + (f", {state}" if state else "")
        gmacs = f"{p.gmacs:.4f}" if p.gmacs is not None else "?"
        rate = f"{p.images_per_s:.0f}" if p.images_per_s else "?"
        lines.append(f"{i:>3} {p.label:36} {p.img_size:>4} {gmacs:>8} {rate:>8} {p.rate_source:8} "
                     f"{p.seconds / 60:>8.1f} {total / 3600:>7.2f}  {state}".rstrip())
    return "\n".join(lines)


class BudgetExhausted(KeyboardInterrupt):
    """The sweep's time is up. An interruption like Ctrl-C: the run keeps its last checkpoint."""


@contextlib.contextmanager
def deadline(seconds: float | None):
    """Raise BudgetExhausted in the main thread once ``seconds`` have passed (None: no deadline)."""
    if seconds is None:
        yield
        return

    def expire(signum, frame):
        raise BudgetExhausted(f"the sweep's budget of {seconds / 3600:.2f} h is spent")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 1e-3))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def sweep(protocol: Protocol, models: list[str], seeds: list[int], dataset: str, overrides: dict[str, Any],
          checkpoint_root: str = "checkpoints", complexity_csv: str = profile.DEFAULT_OUT,
          debug: bool = False, order: str = "cost", budget_s: float | None = None,
          prior: cost.Throughput | None = None, plan_only: bool = False) -> dict[str, list]:
    """``prior=None``: benchmarks.cost's CPU prior, rescaled to the speeds measured on this machine."""
    from harness.train import run  # heavy imports only once the input is known to be good

    outcome: dict[str, list] = {"trained": [], "skipped": [], "failed": [], "not_started": []}
    configs = [(m, s, run_config(protocol, m, s, dataset, overrides, checkpoint_root)) for m in models for s in seeds]
    basis = "stated"
    if prior is None and configs:
        prior, fitted_on = prior_fitted_here(cost.CPU_PRIOR, configs[0][2].results_dir, complexity_csv,
                                             dataset_geometry(dataset)[1])
        basis = f"the CPU prior rescaled to {fitted_on} measured here" if fitted_on else "the CPU prior"
    planned = plan_runs(configs, complexity_csv, prior or cost.CPU_PRIOR, order)
    print(f"[sweep] plan for {protocol.name} ({dataset}); estimates from measured img/s where known, else "
          f"{prior.sustained_tflops:.3g} TFLOP/s sustained + {prior.overhead_s * 1e3:.2g} ms/image ({basis})"
          + (f"; budget {budget_s / 3600:.2f} h" if budget_s is not None else "")
          + "\n" + format_plan(planned, budget_s), flush=True)
    if plan_only:
        return outcome
    started = time.monotonic()
    with deadline(budget_s):
        for i, item in enumerate(planned):
            if item.done:
                print(f"[sweep] {item.label}: done already, skipped", flush=True)
                outcome["skipped"].append(item.label)
                continue
            left = None if budget_s is None else budget_s - (time.monotonic() - started)
            if left is not None and item.seconds > left:  # a later, cheaper run (--order=given) may still fit
                outcome["not_started"].append(item.label)
                print(f"[sweep] budget: {item.label} needs ~{item.seconds / 60:.0f} min and {left / 60:.0f} min "
                      "remain; not started", flush=True)
                continue
            try:
                train_planned(item, run, complexity_csv, outcome, protocol, debug)
            except BudgetExhausted as err:
                outcome["not_started"] += [p.label for p in planned[i + 1:] if not p.done]
                print(f"[sweep] {err}: {item.label} stopped; it resumes from its last checkpoint next time",
                      flush=True)
                break
            except KeyboardInterrupt:  # Ctrl-C or SIGTERM: the run's summary says "interrupted"
                print(f"[sweep] interrupted: {item.label} resumes from its last checkpoint when the sweep runs "
                      "again", file=sys.stderr, flush=True)
                raise
    return outcome


def train_planned(item: PlannedRun, run, complexity_csv: str, outcome: dict[str, list], protocol: Protocol,
                  debug: bool) -> None:
    cfg = item.cfg
    last = checkpoint.checkpoint_folder(cfg) / "last.pt"
    if last.is_file():
        cfg = dataclasses.replace(cfg, resume="auto")
    print(f"[sweep] {item.label}: {'resuming' if cfg.resume else 'training'} ({protocol.name}, {cfg.dataset}; "
          f"estimated {item.seconds / 60:.0f} min)", flush=True)
    try:
        summary = run(cfg)
        record_complexity(summary, complexity_csv)
    except Exception as err:  # noqa: BLE001 — one failing model is reported and the sweep goes on
        detail = str(err).splitlines()[0] if str(err) else ""
        print(f"[sweep] {item.label}: FAILED: {type(err).__name__}: {detail}", file=sys.stderr, flush=True)
        if debug:
            traceback.print_exc()
        outcome["failed"].append(f"{item.label} ({type(err).__name__}: {detail})")
        return
    outcome["trained"].append(item.label)


def parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise UsageError(f"--seeds takes integers like 0,1,2, got {text!r}") from None
    if not seeds:
        raise UsageError("--seeds names no seed")
    return list(dict.fromkeys(seeds))


def main(argv: list[str]) -> int:
    parser = OneLineParser(prog="python -m benchmarks.sweep", description=__doc__.split("\n")[0],
                            epilog="other --key=value options are config overrides, as in main.py")
    parser.add_argument("--protocol", required=True, help="fmnist, seed, paper, or a path to a protocol .yaml")
    parser.add_argument("--models", required=True, help="names, aliases, globs, tv:NAME, timm:NAME or all")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--dataset", default=None, help="replaces the protocol's dataset")
    parser.add_argument("--checkpoint-root", default="checkpoints")
    parser.add_argument("--complexity", default=profile.DEFAULT_OUT)
    parser.add_argument("--order", default="cost", choices=("cost", "given"),
                        help="cost: cheapest estimated run first; given: the order of --models")
    parser.add_argument("--budget-hours", type=float, default=None,
                        help="stop cleanly after this many hours (the run in progress resumes next time)")
    parser.add_argument("--assume-tflops", type=float, default=None,
                        help="estimate unmeasured runs at this sustained TFLOP/s (default: the CPU prior)")
    parser.add_argument("--plan-only", action="store_true", help="print the plan and exit")
    args, rest = parser.parse_known_args(argv)
    if args.budget_hours is not None and not (0 < args.budget_hours < 1e4):
        raise UsageError(f"--budget-hours must be a positive number of hours, got {args.budget_hours}")
    if args.assume_tflops is not None and not (0 < args.assume_tflops < 1e5):
        raise UsageError(f"--assume-tflops must be positive, got {args.assume_tflops}")
    overrides, flags = parse_command_line(rest)
    if flags["config"] or flags["list_models"]:
        raise UsageError("--config and --list-models belong to main.py; the sweep takes --key=value overrides")
    for key in ("model", "seed", "protocol", "dataset"):
        if key in overrides:
            raise UsageError(f"--{key} is set by the sweep: use --models, --seeds, --protocol or --dataset")
    protocol = load_protocol(args.protocol)
    prior = None if args.assume_tflops is None else cost.Throughput(args.assume_tflops)
    budget_s = None if args.budget_hours is None else args.budget_hours * 3600
    outcome = sweep(protocol, select_models(args.models), parse_seeds(args.seeds), args.dataset or protocol.dataset,
                    overrides, args.checkpoint_root, args.complexity, args.debug, args.order, budget_s, prior,
                    args.plan_only)
    print(f"[sweep] {protocol.name}: {len(outcome['trained'])} trained, {len(outcome['skipped'])} skipped, "
          f"{len(outcome['failed'])} failed, {len(outcome['not_started'])} not started")
    for failure in outcome["failed"]:
        print(f"[sweep] failed: {failure}")
    return 1 if outcome["failed"] else 0


if __name__ == "__main__":
    sys.exit(run_command(main))
