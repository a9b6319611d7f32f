"""Throughput of models: python -m benchmarks.speed --models=resnet18,vit_tiny_patch16_224 [options]

Inference (eval mode, no gradients) and training (the whole step: forward, loss, backward, optimizer
step) in images/s on random inputs. Each is run ``--warmup`` steps first (torch.compile and cudnn
autotuning happen there), then ``--repeats`` times ``--steps`` steps, with a device synchronise before
the clock is read; the median of the repeats is reported.

Options: --batch-size (default 256 on a GPU, 16 on the CPU), --img-size (a number, or native: each
model's native size), --device auto|cpu|cuda, --precision fp32|bf16|fp16|auto (autocast; fp16 trains
with a gradient scaler), --channels-last[=auto|true|false], --compile, --no-train / --no-infer,
--latency (also batch-1 inference latency), --out FILE, --resume (measure only what --out lacks).

``auto`` measures every candidate the training harness would consider (harness/fastpath.py: on a CPU,
fp32 and — where the CPU has native bf16 — bf16, each in NCHW and channels_last; on a GPU, bf16 NCHW)
and writes a row per candidate; ``fastest`` marks each model's fastest row (by training img/s when
training is measured, else inference).

Rows go to a CSV (default results/speed/<device>_<precision>_bs<batch>_<layout>[_compiled].csv) with
timm's benchmark columns — model, infer_samples_per_sec, infer_step_time (ms), infer_batch_size,
infer_img_size, train_samples_per_sec, train_step_time (ms), train_batch_size, train_img_size,
param_count (millions), infer_gmacs — plus the device, its name, precision, layout, compile, the torch
and CUDA versions, and the machine's 1-minute load average when the row was measured (a shared machine
says so). A rerun replaces the rows of the models and settings it measures and keeps the others.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import traceback
from typing import Callable

import torch

import zoo
from benchmarks import profile
from benchmarks.common import OneLineParser, device_slug, read_csv, run_command, select_models, write_csv
from harness import fastpath
from harness.errors import UsageError
from harness.results import device_name

TIMM_COLUMNS = ["model", "infer_samples_per_sec", "infer_step_time", "infer_batch_size", "infer_img_size",
                "train_samples_per_sec", "train_step_time", "train_batch_size", "train_img_size", "param_count",
                "infer_gmacs"]
COLUMNS = TIMM_COLUMNS + ["latency_bs1_ms", "device", "device_name", "precision", "channels_last", "fastest",
                          "compile", "num_classes", "in_chans", "torch_version", "cuda_version", "load_1m", "measure_s"]
DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_step_time(step: Callable[[], None], device: torch.device, warmup: int, steps: int, repeats: int) -> float:
    """Seconds per step: the median over ``repeats`` timed runs of ``steps`` steps, after ``warmup`` steps."""
    for _ in range(warmup):
        step()
    synchronize(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            step()
        synchronize(device)
        times.append((time.perf_counter() - start) / steps)
    return statistics.median(times)


def build(name: str, args, device: torch.device, img_size: int, **overrides) -> torch.nn.Module:
    model = zoo.create_model(name, num_classes=args.num_classes, in_chans=args.in_chans, img_size=img_size,
                             **overrides)
    model = model.to(device)
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def inputs(args, device: torch.device, img_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.randn(args.batch_size, args.in_chans, img_size, img_size, device=device)
    if args.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x, torch.randint(0, args.num_classes, (args.batch_size,), device=device)


def measure_inference(name: str, args, device: torch.device, img_size: int) -> float:
    model = build(name, args, device, img_size).eval()
    runner = torch.compile(model) if args.compile else model
    x, _ = inputs(args, device, img_size)
    dtype = DTYPES[args.precision]

    def step():
        with torch.inference_mode(), torch.autocast(device.type, dtype=dtype or torch.float32,
                                                     enabled=dtype is not None):
            runner(x)

    return median_step_time(step, device, args.warmup, args.steps, args.repeats)


def measure_training(name: str, args, device: torch.device, img_size: int) -> float:
    return median_step_time(training_step(name, args, device, img_size), device, args.warmup, args.steps, args.repeats)


def training_step(name: str, args, device: torch.device, img_size: int, **overrides) -> Callable[[], None]:
    """One whole training step of a freshly built model on a fixed random batch (forward, loss, backward, SGD);
    ``overrides`` go to the model's builder."""
    from harness.train import classification_loss

    model = build(name, args, device, img_size, **overrides).train()
    aux_weights = zoo.get_model_info(name).aux_loss_weights
    runner = torch.compile(model) if args.compile else model
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    dtype = DTYPES[args.precision]
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    x, y = inputs(args, device, img_size)

    def step():
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            loss, _ = classification_loss(runner(x), y, aux_weights, 0.0)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    return step


def benchmark(name: str, args, device: torch.device, complexity_rows: list[dict]) -> dict:
    info = zoo.get_model_info(name)
    img_size = info.native_size if args.img_size == "native" else int(args.img_size)
    row = {"model": name, "infer_batch_size": args.batch_size, "infer_img_size": img_size,
           "train_batch_size": args.batch_size, "train_img_size": img_size, "device": device.type,
           "device_name": device_name(device), "precision": args.precision,
           "channels_last": args.channels_last, "compile": args.compile, "num_classes": args.num_classes,
           "in_chans": args.in_chans, "torch_version": torch.__version__, "cuda_version": torch.version.cuda or "",
           "load_1m": round(os.getloadavg()[0], 2)}
    counted = profile.lookup(complexity_rows, name, img_size, args.in_chans, args.num_classes)
    if counted:
        row["param_count"] = round(int(counted["params"]) / 1e6, 2)
        row["infer_gmacs"] = counted["gmacs"]
    else:
        model = zoo.create_model(name, num_classes=args.num_classes, in_chans=args.in_chans, img_size=img_size)
        row["param_count"] = round(sum(p.numel() for p in model.parameters()) / 1e6, 2)
        row["infer_gmacs"] = ""
    if args.infer:
        seconds = measure_inference(name, args, device, img_size)
        row.update(infer_samples_per_sec=round(args.batch_size / seconds, 2), infer_step_time=round(1e3 * seconds, 3))
    if args.latency:
        single = argparse.Namespace(**{**vars(args), "batch_size": 1})
        row["latency_bs1_ms"] = round(1e3 * measure_inference(name, single, device, img_size), 3)
    if args.train:
        seconds = measure_training(name, args, device, img_size)
        row.update(train_samples_per_sec=round(args.batch_size / seconds, 2), train_step_time=round(1e3 * seconds, 3))
    return row


def default_out(device: torch.device, args) -> str:
    slug = device_slug(device_name(device))
    layout = {"true": "channels-last", "false": "nchw", "auto": "auto-layout"}[args.channels_last]
    compiled = "_compiled" if args.compile else ""
    return f"results/speed/{slug}_{args.precision}_bs{args.batch_size}_{layout}{compiled}.csv"


def settings_to_measure(args, device: torch.device) -> list[argparse.Namespace]:
    """One copy of ``args`` per candidate setting, with a concrete precision and layout."""
    amp = {"fp32": "off", "auto": "auto"}.get(args.precision, args.precision)
    settings = fastpath.candidates(amp, args.channels_last, device.type, fastpath.native_bf16_cpu())
    return [argparse.Namespace(**{**vars(args), "precision": {"off": "fp32"}.get(s.amp, s.amp),
                                  "channels_last": s.channels_last}) for s in settings]


def mark_fastest(rows: list[dict]) -> None:
    """``fastest`` on each model's quickest row among the settings measured at the same batch and size."""
    by_model: dict[tuple, list[dict]] = {}
    for row in rows:
        by_model.setdefault((row["model"], str(row["train_batch_size"]), str(row["train_img_size"])), []).append(row)
    for group in by_model.values():
        def speed_of(row: dict) -> float:
            return float(row.get("train_samples_per_sec") or row.get("infer_samples_per_sec") or 0)
        best = max(group, key=speed_of)
        for row in group:
            row["fastest"] = row is best


def row_key(row: dict) -> tuple[str, str, str]:
    return row["model"], str(row["precision"]), str(row["channels_last"])


def main(argv: list[str]) -> int:
    parser = OneLineParser(prog="python -m benchmarks.speed", description=__doc__.split("\n")[0])
    parser.add_argument("--models", required=True, help="names, aliases, globs, tv:NAME, timm:NAME or all")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--img-size", default="native", help="a number, or native (each model's own size)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--precision", default="fp32", choices=tuple(DTYPES) + ("auto",))
    parser.add_argument("--channels-last", nargs="?", const="true", default="false", choices=("auto", "true", "false"),
                        help="memory layout; bare = true; auto = both, a row each")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--no-train", dest="train", action="store_false")
    parser.add_argument("--no-infer", dest="infer", action="store_false")
    parser.add_argument("--latency", action="store_true", help="also batch-1 inference latency (ms)")
    parser.add_argument("--resume", action="store_true",
                        help="keep the rows already in --out and measure only the missing ones")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--steps", type=int, default=10, help="steps per timed repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--num-classes", type=int, default=1000)
    parser.add_argument("--in-chans", type=int, default=3)
    parser.add_argument("--complexity", default=profile.DEFAULT_OUT, help="where GMACs are looked up")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    if args.img_size != "native" and not (args.img_size.isdigit() and int(args.img_size) > 0):
        raise UsageError(f"--img-size must be a positive number or native, got {args.img_size!r}")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device=cuda but no CUDA GPU is visible: use --device=cpu")
    for key in ("warmup", "steps", "repeats", "num_classes", "in_chans"):
        if getattr(args, key) < (0 if key == "warmup" else 1):
            raise UsageError(f"--{key.replace('_', '-')} must be positive, got {getattr(args, key)}")
    if not (args.train or args.infer):
        raise UsageError("--no-train and --no-infer together leave nothing to measure")
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          "cpu" if args.device == "auto" else args.device)
    if args.batch_size is None:
        args.batch_size = 256 if device.type == "cuda" else 16
    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be positive, got {args.batch_size}")
    names = select_models(args.models)
    out = args.out or default_out(device, args)
    complexity_rows = read_csv(args.complexity)
    rows = {row_key(r): r for r in read_csv(out)}
    failed = []
    for name in names:
        for setting in settings_to_measure(args, device):
            if args.resume and (name, setting.precision, str(setting.channels_last)) in rows:
                continue
            try:
                started = time.perf_counter()
                row = benchmark(name, setting, device, complexity_rows)
                row["measure_s"] = round(time.perf_counter() - started, 1)
            except (zoo.ModelConfigError, RuntimeError) as err:  # one model failing (OOM, bad size) stops nothing
                failed.append(name)
                print(f"{name}: FAILED: {str(err).splitlines()[0]}", file=sys.stderr)
                if args.debug:
                    traceback.print_exc()
                if device.type == "cuda":
                    torch.cuda.empty_cache()
                break
            rows[row_key(row)] = row
            layout = "channels_last" if setting.channels_last else "NCHW"
            print(f"{name:32} {setting.precision:>4} {layout:13} infer {row.get('infer_samples_per_sec', '—'):>10} img/s"
                  f"  train {row.get('train_samples_per_sec', '—'):>10} img/s  ({row['device_name']})", flush=True)
            ordered = sorted(rows.values(), key=lambda r: row_key(r))
            mark_fastest(ordered)
            write_csv(out, ordered, COLUMNS)
    print(f"wrote {out}" + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(run_command(main))
