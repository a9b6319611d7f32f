"""The GPU figures measured against public anchors: python -m benchmarks.anchors [options]

Three measurements, each written to results/anchors/<device>_<what>.csv with the device named, the file
rewritten after every row (a run stopped midway keeps the rows it finished):

  overhead   the harness's training step (python main.py on the synthetic dataset: batches prepared by
             the harness, its loss, its optimizer step, its bookkeeping) against the bare PyTorch loop of
             benchmarks.speed (random batch already on the device, forward, loss, backward, SGD step) on
             the same model, batch, precision, layout and compile setting. Target: at most 3 % slower.
  libraries  this zoo's model against torchvision's or timm's same architecture, both timed by the same
             bare loop: training images/s and their ratio. Target: ratio ≥ 1.0. The comparison is built to
             survive a noisy shared machine: both models of a pair live in one process (same batch, input
             size, precision, memory layout, compile setting, thread count and dropout: SAME_ARITHMETIC,
             recorded in the CSV's both_built_with), both are warmed up, then
             their timed chunks of --steps steps alternate, A B, B A, A B ..., --repeats rounds; the CSV
             has each side's median images/s, and the ratio is the median of the per-round ratios (each
             round's two chunks ran back to back, under nearly the same load), with a 95 % bootstrap
             interval over the rounds (ratio_ci95_low/high): a pair whose interval holds 1.0 is level at
             this measurement's resolution. Each chunk starts with one untimed step. The 1-minute load
             average before and after each pair is recorded with it.
  mfu        model FLOP/s in training (3 × forward MACs × 2 per image) ÷ the GPU's dense peak for the
             precision in use (BENCHMARKING.md's table; no peak is known for a CPU, so no MFU there).

Defaults on a GPU: batch 256, bf16, channels_last, 224 px, 10 warm-up steps, 5 rounds of 20 steps. On a
CPU: batch 8 at 96 px, fp32, channels_last, 2 warm-up steps, 7 rounds of 2 steps (ViT-B/16 and Mixer-B/16
then see 36 tokens, on both sides) — the numbers describe that CPU, and its name is in every row.
"""
from __future__ import annotations

import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

import torch

import zoo
from benchmarks import profile, speed
from benchmarks.common import OneLineParser, device_slug, run_command, write_csv
from harness.config import build_config
from harness.errors import UsageError
from harness.results import device_name

LIBRARY_PAIRS = [("resnet50", "tv:resnet50"), ("vit_base_patch16_224", "timm:vit_base_patch16_224"),
                 ("efficientnet_b0", "timm:efficientnet_b0"), ("mixer_b16_224", "timm:mixer_b16_224"),
                 ("nfnet_f0", "timm:dm_nfnet_f0")]
# Both sides of a pair do the same arithmetic: the zoo's EfficientNet and NFNet train with their papers' dropout
# and stochastic depth by default, timm's with neither, so those pairs are timed with both off on both sides.
SAME_ARITHMETIC = {"efficientnet_b0": {"drop_rate": 0.0, "drop_path_rate": 0.0},
                   "nfnet_f0": {"drop_rate": 0.0, "drop_path_rate": 0.0}}
MFU_MODELS = ["resnet50", "vit_base_patch16_224"]
DEFAULTS = {"cuda": dict(batch_size=256, img_size=224, warmup=10, steps=20, repeats=5),
            "cpu": dict(batch_size=8, img_size=96, warmup=2, steps=2, repeats=7)}
# Dense bf16/fp16 tensor-core peaks in TFLOP/s (BENCHMARKING.md); the first matching name wins.
PEAK_TFLOPS = [("H100 PCIe", 756.0), ("H100", 989.0), ("H200", 989.0), ("A100", 312.0)]


def peak_tflops(device_name: str, precision: str) -> float | None:
    if precision == "fp32":
        return None
    return next((peak for key, peak in PEAK_TFLOPS if key in device_name), None)


def bare_images_per_s(name: str, args, device: torch.device) -> float:
    seconds = speed.measure_training(name, args, device, args.img_size)
    return args.batch_size / seconds


def harness_images_per_s(name: str, args, device: torch.device) -> float:
    """Median training images/s over the epochs of a real harness run on synthetic images."""
    from harness.train import run
    steps = args.warmup + args.steps + 1  # one batch more: the validation split takes a few images
    with tempfile.TemporaryDirectory() as scratch:
        cfg = build_config({
            "model": name, "dataset": "synthetic", "recipe": "seed", "img_size": args.img_size,
            "synthetic_images": args.batch_size * steps, "val_fraction": 0.01, "batch_size": args.batch_size,
            "epochs": args.repeats + 1, "optimizer": "sgd", "lr": 1e-3, "momentum": 0.9, "weight_decay": 0.0,
            "scheduler": "constant", "amp": {"fp32": "off"}.get(args.precision, args.precision),
            "channels_last": args.channels_last, "compile": args.compile, "device": device.type,
            "model_kwargs": {}, "results_dir": f"{scratch}/results", "plots_dir": f"{scratch}/plots",
            "checkpoint": False})
        summary = run(cfg)
    return summary["train_images_per_s"]


def measure_overhead(args, device) -> Iterator[dict]:
    for name in args.overhead_models:
        bare = bare_images_per_s(name, args, device)
        harness = harness_images_per_s(name, args, device)
        yield {"model": name, "bare_images_per_s": round(bare, 2), "harness_images_per_s": round(harness, 2),
               "overhead_pct": round(100.0 * (bare / harness - 1.0), 2), "target_pct": 3.0}


def interleaved_step_times(steps: list, args, device: torch.device) -> list[list[float]]:
    """Seconds per step of each step function, one timed chunk of ``args.steps`` steps each per round, the
    order alternating between rounds (A B, then B A, ...), so that a change of load hits both sides alike.

    Each chunk starts with one untimed step: the first step after the other model ran refills the caches
    with this model's weights and activations, and the A B | B A order would otherwise time one side cold
    and the other warm in every round after the first."""
    for step in steps:
        for _ in range(args.warmup):
            step()
    speed.synchronize(device)
    times: list[list[float]] = [[] for _ in steps]
    for round_index in range(args.repeats):
        order = range(len(steps)) if round_index % 2 == 0 else reversed(range(len(steps)))
        for i in order:
            steps[i]()
            speed.synchronize(device)
            start = time.perf_counter()
            for _ in range(args.steps):
                steps[i]()
            speed.synchronize(device)
            times[i].append((time.perf_counter() - start) / args.steps)
    return times


def median_interval(values: list[float], level: float = 0.95, resamples: int = 2000) -> tuple[float, float]:
    """A bootstrap percentile interval for the median of ``values`` (seeded, so a CSV can be recomputed):
    how far one run's ratio can be trusted, given how much its rounds scatter."""
    draw = random.Random(0)
    medians = sorted(statistics.median(draw.choices(values, k=len(values))) for _ in range(resamples))
    tail = (1.0 - level) / 2
    return medians[int(tail * resamples)], medians[min(resamples - 1, int((1.0 - tail) * resamples))]


def measure_libraries(args, device) -> Iterator[dict]:
    for ours, theirs in args.pairs:
        load_before = os.getloadavg()[0]
        try:
            overrides = SAME_ARITHMETIC.get(ours, {})
            steps = [speed.training_step(name, args, device, args.img_size, **overrides) for name in (ours, theirs)]
        except zoo.ModelConfigError as err:  # timm missing, say: the pair is reported, not guessed
            yield {"model": ours, "reference": theirs, "note": str(err).splitlines()[0]}
            continue
        mine, reference = interleaved_step_times(steps, args, device)
        del steps
        ratios = [r / m for m, r in zip(mine, reference)]
        low, high = median_interval(ratios)
        yield {"model": ours, "reference": theirs,
               "both_built_with": " ".join(f"{k}={v}" for k, v in overrides.items()) or "defaults",
               "zoo_train_images_per_s": round(args.batch_size / statistics.median(mine), 2),
               "reference_train_images_per_s": round(args.batch_size / statistics.median(reference), 2),
               "ratio": round(statistics.median(ratios), 4),
               "ratio_ci95_low": round(low, 4), "ratio_ci95_high": round(high, 4),
               "target_ratio": 1.0, "rounds": args.repeats, "steps_per_chunk": args.steps,
               "load_avg_1min_before": round(load_before, 2),
               "load_avg_1min_after": round(os.getloadavg()[0], 2)}


def measure_mfu(args, device) -> Iterator[dict]:
    name_of_device = device_name(device)
    peak = peak_tflops(name_of_device, args.precision)
    for name in args.mfu_models:
        gmacs = profile.profile_row(name, "anchors", args.img_size, 3, 1000, "")["gmacs"]
        images_per_s = bare_images_per_s(name, args, device)
        achieved = 3 * 2 * float(gmacs) * 1e9 * images_per_s / 1e12
        yield {"model": name, "forward_gmacs": gmacs, "train_images_per_s": round(images_per_s, 2),
               "achieved_tflops": round(achieved, 2), "peak_tflops": peak or "",
               "mfu_pct": round(100 * achieved / peak, 2) if peak else ""}


MEASUREMENTS = {"overhead": measure_overhead, "libraries": measure_libraries, "mfu": measure_mfu}


def parse_pairs(text: str) -> list[tuple[str, str]]:
    pairs = []
    for item in filter(None, (p.strip() for p in text.split(","))):
        ours, sep, theirs = item.partition("=")
        if not sep:
            raise UsageError(f"--pairs takes OURS=THEIRS items like resnet50=tv:resnet50, got {item!r}")
        pairs.append((ours, theirs))
    return pairs


def main(argv: list[str]) -> int:
    parser = OneLineParser(prog="python -m benchmarks.anchors", description=__doc__.split("\n")[0])
    parser.add_argument("--only", default="overhead,libraries,mfu", help="comma-separated: overhead, libraries, mfu")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--batch-size", type=int, default=None, help="default 256 on a GPU, 8 on a CPU")
    parser.add_argument("--img-size", type=int, default=None, help="default 224 on a GPU, 96 on a CPU")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's own choice)")
    parser.add_argument("--precision", default=None, choices=tuple(speed.DTYPES),
                        help="default bf16 on a GPU, fp32 on a CPU")
    parser.add_argument("--channels-last", type=lambda v: v.lower() in ("1", "true", "yes"), default=True)
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--overhead-models", default="resnet50")
    parser.add_argument("--pairs", default=",".join(f"{a}={b}" for a, b in LIBRARY_PAIRS))
    parser.add_argument("--mfu-models", default=",".join(MFU_MODELS))
    parser.add_argument("--warmup", type=int, default=None, help="default 10 on a GPU, 2 on a CPU")
    parser.add_argument("--steps", type=int, default=None, help="steps per timed chunk: 20 on a GPU, 2 on a CPU")
    parser.add_argument("--repeats", type=int, default=None, help="timed rounds: 5 on a GPU, 7 on a CPU")
    parser.add_argument("--out-dir", default="results/anchors")
    args = parser.parse_args(argv)
    wanted = [w.strip() for w in args.only.split(",") if w.strip()]
    unknown = sorted(set(wanted) - set(MEASUREMENTS))
    if unknown or not wanted:
        raise UsageError(f"--only takes {', '.join(MEASUREMENTS)}; got {args.only!r}")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device=cuda but no CUDA GPU is visible: use --device=cpu")
    device = torch.device("cuda" if args.device != "cpu" and torch.cuda.is_available() else "cpu")
    for key, value in DEFAULTS[device.type].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    for key in ("batch_size", "img_size", "steps", "repeats", "warmup", "threads"):
        value = getattr(args, key)
        if value is not None and value < (0 if key == "warmup" else 1):
            raise UsageError(f"--{key.replace('_', '-')} must be positive, got {value}")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    args.precision = args.precision or ("bf16" if device.type == "cuda" else "fp32")
    args.overhead_models = [zoo.resolve_name(n.strip()) for n in args.overhead_models.split(",") if n.strip()]
    args.mfu_models = [zoo.resolve_name(n.strip()) for n in args.mfu_models.split(",") if n.strip()]
    args.pairs = parse_pairs(args.pairs)
    args.num_classes, args.in_chans = 1000, 3

    name = device_name(device)
    slug = device_slug(name)
    setting = {"device_name": name, "precision": args.precision, "batch_size": args.batch_size,
               "img_size": args.img_size, "channels_last": args.channels_last, "compile": args.compile,
               "torch_version": torch.__version__, "cuda_version": torch.version.cuda or ""}
    for what in wanted:
        out = Path(args.out_dir) / f"{slug}_{what}.csv"
        rows = []
        for row in MEASUREMENTS[what](args, device):
            # Rewritten after every row: a run stopped midway keeps what it measured.
            rows.append({**row, **setting})
            write_csv(out, rows, sorted({k for r in rows for k in r}, key=_column_order))
            print(f"[{what}] " + "  ".join(f"{k}={v}" for k, v in row.items() if k not in setting), flush=True)
        print(f"wrote {out} ({name})")
    return 0


def _column_order(key: str) -> tuple[int, str]:
    first = ["model", "reference"]
    return (first.index(key), key) if key in first else (2, key)


if __name__ == "__main__":
    sys.exit(run_command(main))
