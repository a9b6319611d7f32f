"""Every figure the README lists as not measured, in priority order, within one time budget:
python -m benchmarks.campaign --budget-s=540 [--dry-run] [--device=auto|cpu|cuda] [--parallel=N]

Built for the short GPU window this project gets now and then (about ten usable minutes of one
H100/H200), and sized and tested on a CPU. The priorities:

  1. anchors overhead    the harness's step against a bare loop (ResNet-50)
  2. anchors libraries   the five zoo / torchvision-timm pairs
  3. anchors mfu         ResNet-50 and ViT-B/16
  4. time to 95 %        ResNet-18 (CIFAR layout) on Fashion-MNIST, protocol fmnist_tta
  5. fmnist, seed models the seed project's models (SEED_MODELS), cheapest first
  6. fmnist, the rest    every other registered model, cheapest first

Each item is a subprocess of the command that measures it (benchmarks.anchors, benchmarks.sweep), so
each result is written by that command the moment it exists: anchors rewrite their CSV after every row,
the sweep writes each finished run folder, and an interrupted sweep run keeps its last checkpoint and
resumes next time. A campaign killed at any point keeps everything it finished; rerun it to go on
(finished sweep runs are skipped). The campaign's own log — one row per item: its command, estimated and
actual seconds, outcome — is results/campaign/<device>.csv, rewritten after every item.

The budget: an item starts only if its estimate fits the time left; the children still running are sent
Ctrl-C ``GRACE_S`` seconds before the budget ends (sweeps also get --budget-hours, so they stop cleanly
by themselves), so the whole campaign ends within --budget-s.

Filling a GPU: the harness keeps each dataset resident on the device as uint8 and augments it there;
the campaign adds bf16, channels_last for the convolutional models (a transformer or MLP whose only
convolution is its patch embedding gains nothing from it), a batch of at least --gpu-batch (default 512)
with the recipe's learning rate scaled linearly (lr_reference_batch = the recipe's batch where the
recipe gives none), and --parallel sweep processes at once (default 4 on a GPU: a 32-px model does not
fill an H100 alone). On a CPU the sweep keeps each recipe's own batch and one process, so its runs are
the CPU sweep's runs and are shared with it; the anchor items, there only to rehearse the plan, run smaller
than benchmarks.anchors' own CPU defaults (``CPU_REHEARSAL``), so that the first fit a minute or so.

--dry-run prints the plan: each item's estimated seconds from results/complexity.csv (forward GMACs at
the item's input) and an assumed sustained throughput — --assume-tflops (default 150 TFLOP/s on a GPU,
a fraction of an H100's 989 dense bf16 peak that small models reach at best) plus a fixed start-up per
process (interpreter, torch, CUDA context, data) — and marks what does not fit the budget. On a CPU it
uses the CPU prior of benchmarks/cost.py and this machine's measured speeds where they exist.
"""
from __future__ import annotations

import dataclasses
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

import zoo
from benchmarks import anchors, cost, profile, sweep
from benchmarks.common import (SEED_MODELS, OneLineParser, device_slug, read_csv, run_command, select_models,
                               write_csv)
from harness.errors import UsageError
from harness.results import device_name

GRACE_S = 10.0            # s: Ctrl-C this long before the budget ends, for children to write and exit
STARTUP_S = {"cuda": 20.0, "cpu": 8.0}   # s per process: interpreter, torch import, CUDA context, dataset
# The anchors' settings a CPU campaign changes (px, timed repeats): the CPU figures worth keeping come from
# `python -m benchmarks.anchors --device=cpu` at its own defaults.
CPU_REHEARSAL = {"img_size": 64, "repeats": 3}
COMPILE_S = 60.0          # s: torch.compile of the time-to-accuracy run (the fmnist_tta protocol compiles)
GPU_TFLOPS = 150.0        # TFLOP/s sustained, assumed on a GPU unless --assume-tflops says otherwise
GPU_OVERHEAD_S = 2e-5     # s per training image on a GPU: launch-bound small models top out near 50k img/s
LOG_COLUMNS = ["item", "group", "command", "estimate_s", "wall_s", "outcome", "returncode", "device_name"]


@dataclasses.dataclass
class Item:
    name: str
    group: str                # anchors | tta | seed | rest
    argv: list[str]           # after `python -m`
    estimate_s: float
    parallel: bool = False    # may share the device with other items of its kind

    @property
    def command(self) -> str:
        return "python -m " + " ".join(self.argv)


@dataclasses.dataclass
class Settings:
    device: str               # cpu | cuda
    budget_s: float
    prior: cost.Throughput
    parallel: int
    gpu_batch: int
    results_dir: str
    plots_dir: str
    checkpoint_root: str

    @property
    def complexity_csv(self) -> str:
        return str(Path(self.results_dir) / "complexity.csv")


# ----------------------------------------------------------------------------- the plan

def seconds_for(images: float, gmacs: float, settings: Settings) -> float:
    """Training ``images`` of a model of ``gmacs`` forward GMACs at the plan's throughput."""
    return images / settings.prior.train_images_per_s(gmacs)


def anchor_items(settings: Settings) -> list[Item]:
    """The three anchor measurements at the anchors' own defaults for this device."""
    changed = CPU_REHEARSAL if settings.device == "cpu" else {}
    d = {**anchors.DEFAULTS[settings.device], **changed}
    size, batch = d["img_size"], d["batch_size"]
    models = [ours for ours, _ in anchors.LIBRARY_PAIRS] + anchors.MFU_MODELS
    setting = {m: "native" if zoo.get_model_info(m).native_size == size else "anchors" for m in models}
    rows = profile.ensure_rows([(m, setting[m], size, 3, 1000) for m in models], settings.complexity_csv,
                               verbose=False)
    gmacs = {m: float(profile.lookup(rows, m, size, 3, 1000)["gmacs"]) for m in models}
    timed = (d["warmup"] + d["repeats"] * d["steps"]) * batch            # images one bare measurement trains
    paired = (d["warmup"] + d["repeats"] * (d["steps"] + 1)) * batch     # one side of a pair: + an untimed step a chunk
    harness = (d["warmup"] + d["steps"] + 1) * batch * (d["repeats"] + 1)  # the harness run's synthetic epochs
    startup = STARTUP_S[settings.device]
    common = [f"--device={settings.device}", f"--out-dir={Path(settings.results_dir) / 'anchors'}",
              *(f"--{k.replace('_', '-')}={v}" for k, v in changed.items())]
    return [
        Item("anchors: overhead (ResNet-50)", "anchors", ["benchmarks.anchors", "--only=overhead", *common],
             2 * startup + seconds_for(timed + harness, gmacs["resnet50"], settings)),
        Item("anchors: libraries (5 pairs)", "anchors", ["benchmarks.anchors", "--only=libraries", *common],
             startup + sum(seconds_for(2 * paired, gmacs[ours], settings) for ours, _ in anchors.LIBRARY_PAIRS)),
        Item("anchors: MFU (ResNet-50, ViT-B/16)", "anchors", ["benchmarks.anchors", "--only=mfu", *common],
             startup + sum(seconds_for(timed, gmacs[n], settings) for n in anchors.MFU_MODELS)),
    ]


def sweep_argv(protocol: str, model: str, overrides: dict[str, object], settings: Settings) -> list[str]:
    # On a GPU the sweep must judge what fits its --budget-hours at the campaign's assumption, not the CPU prior.
    assume = [f"--assume-tflops={settings.prior.sustained_tflops:g}"] if settings.device == "cuda" else []
    return ["benchmarks.sweep", f"--protocol={protocol}", f"--models={model}", "--order=given", *assume,
            f"--checkpoint-root={settings.checkpoint_root}", f"--complexity={settings.complexity_csv}",
            f"--results-dir={settings.results_dir}", f"--plots-dir={settings.plots_dir}",
            f"--device={settings.device}",
            *(f"--{k.replace('_', '-')}={v}" for k, v in overrides.items())]


def gpu_overrides(cfg, model: str, settings: Settings) -> dict[str, object]:
    """bf16, channels_last for convolutional models, and a batch of at least --gpu-batch with the
    recipe's lr scaled linearly. None on a CPU: the CPU sweep's runs stay the same runs."""
    if settings.device != "cuda":
        return {}
    overrides: dict[str, object] = {"amp": "bf16", "channels_last": str(is_convolutional(model)).lower()}
    if cfg.batch_size < settings.gpu_batch:
        overrides["batch_size"] = settings.gpu_batch
        if cfg.lr_reference_batch == 0:
            overrides["lr_reference_batch"] = cfg.batch_size
    return overrides


def is_convolutional(model: str) -> bool:
    """More than a patch embedding's worth of 2-D convolutions (ViT, Mixer, CCT's one-layer stem: no)."""
    with torch.device("meta"):  # the structure only: no memory, no initialisation
        net = zoo.create_model(model, num_classes=10, in_chans=1, img_size=zoo.get_model_info(model).min_size)
    return sum(isinstance(m, torch.nn.Conv2d) for m in net.modules()) > 2


def sweep_items(protocol_name: str, models: list[str], group: str, settings: Settings) -> list[Item]:
    protocol = sweep.load_protocol(protocol_name)
    configs = []
    for model in models:
        overrides = {"results_dir": settings.results_dir}
        cfg = sweep.run_config(protocol, model, 0, protocol.dataset, overrides, settings.checkpoint_root)
        if scaled := gpu_overrides(cfg, model, settings):  # each config costs a meta build: one on a CPU
            overrides.update(scaled)
            cfg = sweep.run_config(protocol, model, 0, protocol.dataset, overrides, settings.checkpoint_root)
        configs.append((model, 0, cfg, overrides))
    parallel = group in ("seed", "rest")  # the fmnist runs share the device; time to accuracy runs alone
    share = settings.parallel if parallel else 1
    prior = dataclasses.replace(settings.prior, sustained_tflops=settings.prior.sustained_tflops / share)
    # This machine's measured speeds describe its CPU: a GPU plan estimates from the stated prior alone.
    planned = sweep.plan_runs([c[:3] for c in configs], settings.complexity_csv, prior, "cost",
                              use_measured=settings.device == "cpu")
    overrides_of = {model: overrides for model, _, _, overrides in configs}
    extra = COMPILE_S if group == "tta" else 0.0
    items = []
    for run in planned:
        if run.done:
            continue
        overrides = {k: v for k, v in overrides_of[run.model].items() if k != "results_dir"}
        items.append(Item(f"{protocol_name}: {run.model}", group, sweep_argv(protocol_name, run.model, overrides,
                                                                              settings),
                          STARTUP_S[settings.device] + extra + run.seconds, parallel))
    return items


def plan(settings: Settings, models: list[str] | None = None) -> list[Item]:
    """Every item in priority order; ``models`` limits the sweep (default: the whole zoo)."""
    everything = models if models is not None else zoo.list_models()
    seed = [m for m in SEED_MODELS if m in everything]
    rest = [m for m in everything if m not in seed]
    return (anchor_items(settings) + sweep_items("fmnist_tta", ["resnet18_cifar"], "tta", settings)
            + sweep_items("fmnist", seed, "seed", settings) + sweep_items("fmnist", rest, "rest", settings))


def schedule(items: list[Item], settings: Settings) -> list[tuple[Item, float | None]]:
    """Each item's estimated start (None: does not fit). Exclusive items run alone, in order; parallel
    items fill --parallel slots, each starting at the earliest free slot if it ends within the budget."""
    end = settings.budget_s - GRACE_S
    clock, slots, out = 0.0, [], []
    for item in items:
        if item.parallel:
            if not slots:
                slots = [clock] * settings.parallel
            slot = min(range(len(slots)), key=slots.__getitem__)
            start = slots[slot]
            if start + item.estimate_s <= end:
                slots[slot] = start + item.estimate_s
                out.append((item, start))
            else:
                out.append((item, None))
        else:
            if slots:
                clock, slots = max(slots), []
            if clock + item.estimate_s <= end:
                out.append((item, clock))
                clock += item.estimate_s
            else:
                out.append((item, None))
    return out


def format_plan(scheduled: list[tuple[Item, float | None]], settings: Settings) -> str:
    prior = settings.prior
    lines = [f"[campaign] {settings.device}, budget {settings.budget_s:.0f} s; estimates at "
             f"{prior.sustained_tflops:g} TFLOP/s sustained + {prior.overhead_s * 1e3:g} ms/image, "
             f"{STARTUP_S[settings.device]:.0f} s start-up per process"
             + (f", {settings.parallel} sweep processes at once (each at 1/{settings.parallel} of it)"
                if settings.parallel > 1 else ""),
             f"{'#':>4} {'item':52} {'est. s':>8} {'start s':>8}"]
    fitted = 0
    for i, (item, start) in enumerate(scheduled, 1):
        fitted += start is not None
        when = f"{start:8.0f}" if start is not None else "   —    does not fit"
        lines.append(f"{i:>4} {item.name:52} {item.estimate_s:8.0f} {when}")
    lines.append(f"[campaign] {fitted} of {len(scheduled)} items fit the budget")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- running it

@dataclasses.dataclass
class Running:
    item: Item
    process: subprocess.Popen
    started: float


def start(item: Item, env: dict[str, str], left_s: float) -> Running:
    argv = list(item.argv)
    if argv[0] == "benchmarks.sweep":  # the sweep stops itself cleanly, its run resumable
        argv.append(f"--budget-hours={max(left_s - GRACE_S, 1.0) / 3600:.6f}")
    print(f"[campaign] start {item.name} (~{item.estimate_s:.0f} s)", flush=True)
    process = subprocess.Popen([sys.executable, "-m", *argv], env=env, start_new_session=True)
    return Running(item, process, time.monotonic())


def interrupt(running: Running, wait_s: float) -> int:
    """Ctrl-C to the child's process group, then kill what is left after ``wait_s``."""
    with_group = os.getpgid(running.process.pid)
    os.killpg(with_group, signal.SIGINT)
    try:
        return running.process.wait(timeout=wait_s)
    except subprocess.TimeoutExpired:
        os.killpg(with_group, signal.SIGKILL)
        return running.process.wait()


def run_campaign(scheduled: list[tuple[Item, float | None]], settings: Settings, device_label: str,
                 began: float) -> list[dict]:
    """Run the items that fit, in order (parallel items up to --parallel at once), logging each as it ends;
    the budget counts from ``began`` (time.monotonic() when the campaign started, planning included)."""
    log_path = Path(settings.results_dir) / "campaign" / f"{device_slug(device_label)}.csv"
    log: list[dict] = []

    def record(item: Item, outcome: str, **measured) -> None:
        estimate = round(item.estimate_s) if math.isfinite(item.estimate_s) else ""  # "": GMACs not countable
        log.append({"item": item.name, "group": item.group, "command": item.command, "estimate_s": estimate,
                    "outcome": outcome, "device_name": device_label, **measured})
        write_csv(log_path, log, LOG_COLUMNS)

    def finish(done: Running, returncode: int, outcome: str | None = None) -> None:
        record(done.item, outcome or ("done" if returncode == 0 else "failed"), returncode=returncode,
               wall_s=round(time.monotonic() - done.started, 1))

    for item, start_s in scheduled:
        if start_s is None:
            record(item, "does not fit the budget")
    queue = [item for item, start_s in scheduled if start_s is not None]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    running: list[Running] = []
    try:
        while queue or running:
            left = settings.budget_s - (time.monotonic() - began)
            if left <= GRACE_S:
                for r in running:
                    finish(r, interrupt(r, GRACE_S / 2), "interrupted at the budget")
                for item in queue:
                    record(item, "not started: budget spent")
                break
            for r in [r for r in running if r.process.poll() is not None]:
                running.remove(r)
                finish(r, r.process.returncode)
            if queue and can_start(queue[0], running, settings.parallel):
                item = queue.pop(0)
                if item.estimate_s > left - GRACE_S:
                    record(item, "skipped: does not fit the time left")
                else:
                    running.append(start(item, env, left))
                continue
            time.sleep(0.2)
    except KeyboardInterrupt:
        for r in running:
            finish(r, interrupt(r, GRACE_S / 2), "interrupted")
        raise
    print(f"[campaign] log: {log_path}", flush=True)
    return log


def can_start(item: Item, running: list[Running], parallel: int) -> bool:
    """Exclusive items (timings) run alone; parallel items share the device with their kind only."""
    if not item.parallel:
        return not running
    return len(running) < parallel and all(r.item.parallel for r in running)


def main(argv: list[str]) -> int:
    began = time.monotonic()
    parser = OneLineParser(prog="python -m benchmarks.campaign", description=__doc__.split("\n")[0])
    parser.add_argument("--budget-s", type=float, default=540.0, help="wall-clock seconds for the whole campaign")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--dry-run", action="store_true", help="print the plan with its estimates and exit")
    parser.add_argument("--parallel", type=int, default=None, help="sweep processes at once: 4 on a GPU, 1 on a CPU")
    parser.add_argument("--gpu-batch", type=int, default=512, help="on a GPU, the smallest batch a sweep run uses")
    parser.add_argument("--assume-tflops", type=float, default=None,
                        help=f"sustained TFLOP/s for the estimates (GPU default {GPU_TFLOPS:g}; CPU: the CPU prior)")
    parser.add_argument("--models", default="all", help="limit the sweep items: names, globs or all")
    parser.add_argument("--results-dir", default="results")
    parser.add_argument("--plots-dir", default="plots")
    parser.add_argument("--checkpoint-root", default="checkpoints")
    args = parser.parse_args(argv)
    if not (0 < args.budget_s <= 86400):
        raise UsageError(f"--budget-s must be a number of seconds in (0, 86400], got {args.budget_s:g}")
    if args.assume_tflops is not None and not (0 < args.assume_tflops < 1e5):
        raise UsageError(f"--assume-tflops must be positive, got {args.assume_tflops:g}")
    for option in ("parallel", "gpu_batch"):
        value = getattr(args, option)
        if value is not None and not (1 <= value <= 65536):
            raise UsageError(f"--{option.replace('_', '-')} must be a positive integer, got {value}")

    if args.device == "cuda" and not torch.cuda.is_available() and not args.dry_run:
        raise UsageError("--device=cuda but no CUDA GPU is visible: use --device=cpu, or --dry-run to see the plan")
    device = args.device if args.device != "auto" else "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        prior = cost.Throughput(args.assume_tflops or GPU_TFLOPS, GPU_OVERHEAD_S)
    else:
        prior = cost.CPU_PRIOR if args.assume_tflops is None else cost.Throughput(args.assume_tflops, 0.0)
    settings = Settings(device, args.budget_s, prior, args.parallel or (4 if device == "cuda" else 1),
                        args.gpu_batch, args.results_dir, args.plots_dir, args.checkpoint_root)
    seed_complexity(settings)
    models = None if args.models == "all" else select_models(args.models)
    scheduled = schedule(plan(settings, models), settings)
    print(format_plan(scheduled, settings), flush=True)
    if args.dry_run:
        return 0
    problem = fmnist_problem(settings)
    if problem:  # a bare GPU machine may lack the dataset: spend its minutes on what can run
        print(f"[campaign] the Fashion-MNIST items are left out: {problem}", flush=True)
        scheduled = [(item, start_s) for item, start_s in scheduled if item.group == "anchors"]
    name = device_name(torch.device(device))
    log = run_campaign(scheduled, settings, name, began)
    failed = [row for row in log if row["outcome"] == "failed"]
    print(f"[campaign] {sum(row['outcome'] == 'done' for row in log)} done, {len(failed)} failed, "
          f"{sum(row['outcome'].startswith(('not started', 'skipped', 'does not fit')) for row in log)} not run")
    return 1 if failed else 0


def fmnist_problem(settings: Settings) -> str | None:
    """Why the Fashion-MNIST items cannot run on this machine (the dataset is not on disk), or None."""
    from harness.data import load_mnist_family

    protocol = sweep.load_protocol("fmnist")
    cfg = sweep.run_config(protocol, "lenet5", 0, protocol.dataset, {"download": False}, settings.checkpoint_root)
    try:
        load_mnist_family(cfg, protocol.dataset)
    except UsageError as err:
        return str(err)
    return None


def seed_complexity(settings: Settings) -> None:
    """A results folder of its own starts from the repository's complexity counts (they take minutes)."""
    target = Path(settings.complexity_csv)
    source = Path(profile.DEFAULT_OUT)
    if not target.exists() and source.is_file() and target.resolve() != source.resolve():
        rows = read_csv(source)
        write_csv(target, rows, list(rows[0]) if rows else profile.COLUMNS)


if __name__ == "__main__":
    sys.exit(run_command(main))
