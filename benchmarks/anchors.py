"""The GPU figures measured against public anchors: python -m benchmarks.anchors [options]

Three measurements, each written to results/anchors/<device>_<what>.csv with the device named:

  overhead   the harness's training step (python main.py on the synthetic dataset: batches prepared by
             the harness, its loss, its optimizer step, its bookkeeping) against the bare PyTorch loop of
             benchmarks.speed (random batch already on the device, forward, loss, backward, SGD step) on
             the same model, batch, precision, layout and compile setting. Target: at most 3 % slower.
  libraries  this zoo's model against torchvision's or timm's same architecture, both timed by the same
             bare loop: training images/s and their ratio. Target: ratio ≥ 1.0.
  mfu        model FLOP/s in training (3 × forward MACs × 2 per image) ÷ the GPU's dense peak for the
             precision in use (BENCHMARKING.md's table; no peak is known for a CPU, so no MFU there).

Defaults are the GPU settings (batch 256, bf16, channels_last, 224 px); on a CPU, pass a small
--batch-size and --img-size (the tests do) — the numbers then describe that CPU, and say so.
"""
from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path

import torch

import zoo
from benchmarks import profile, speed
from benchmarks.common import ArgumentParser, run_command, write_csv
from harness.config import build_config
from harness.errors import UsageError

LIBRARY_PAIRS = [("resnet50", "tv:resnet50"), ("vit_base_patch16_224", "timm:vit_base_patch16_224"),
                 ("efficientnet_b0", "timm:efficientnet_b0"), ("mixer_b16_224", "timm:mixer_b16_224"),
                 ("nfnet_f0", "timm:dm_nfnet_f0")]
MFU_MODELS = ["resnet50", "vit_base_patch16_224"]
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


def measure_overhead(args, device) -> list[dict]:
    rows = []
    for name in args.overhead_models:
        bare = bare_images_per_s(name, args, device)
        harness = harness_images_per_s(name, args, device)
        rows.append({"model": name, "bare_images_per_s": round(bare, 2), "harness_images_per_s": round(harness, 2),
                     "overhead_pct": round(100.0 * (bare / harness - 1.0), 2), "target_pct": 3.0})
    return rows


def measure_libraries(args, device) -> list[dict]:
    rows = []
    for ours, theirs in args.pairs:
        try:
            mine, reference = bare_images_per_s(ours, args, device), bare_images_per_s(theirs, args, device)
        except zoo.ModelConfigError as err:  # timm missing, say: the pair is reported, not guessed
            rows.append({"model": ours, "reference": theirs, "note": str(err).splitlines()[0]})
            continue
        rows.append({"model": ours, "reference": theirs, "zoo_train_images_per_s": round(mine, 2),
                     "reference_train_images_per_s": round(reference, 2), "ratio": round(mine / reference, 4),
                     "target_ratio": 1.0})
    return rows


def measure_mfu(args, device) -> list[dict]:
    name_of_device = speed.device_name(device)
    peak = peak_tflops(name_of_device, args.precision)
    rows = []
    for name in args.mfu_models:
        gmacs = profile.profile_row(name, "anchors", args.img_size, 3, 1000, "")["gmacs"]
        images_per_s = bare_images_per_s(name, args, device)
        achieved = 3 * 2 * float(gmacs) * 1e9 * images_per_s / 1e12
        rows.append({"model": name, "forward_gmacs": gmacs, "train_images_per_s": round(images_per_s, 2),
                     "achieved_tflops": round(achieved, 2), "peak_tflops": peak or "",
                     "mfu_pct": round(100 * achieved / peak, 2) if peak else ""})
    return rows


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
    parser = ArgumentParser(prog="python -m benchmarks.anchors", description=__doc__.split("\n")[0])
    parser.add_argument("--only", default="overhead,libraries,mfu", help="comma-separated: overhead, libraries, mfu")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--img-size", type=int, default=224)
    parser.add_argument("--precision", default=None, choices=tuple(speed.DTYPES),
                        help="default bf16 on a GPU, fp32 on a CPU")
    parser.add_argument("--channels-last", type=lambda v: v.lower() in ("1", "true", "yes"), default=True)
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--overhead-models", default="resnet50")
    parser.add_argument("--pairs", default=",".join(f"{a}={b}" for a, b in LIBRARY_PAIRS))
    parser.add_argument("--mfu-models", default=",".join(MFU_MODELS))
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out-dir", default="results/anchors")
    parser.add_argument("--debug", action="store_true")
    args = parser.parse_args(argv)
    wanted = [w.strip() for w in args.only.split(",") if w.strip()]
    unknown = sorted(set(wanted) - set(MEASUREMENTS))
    if unknown or not wanted:
        raise UsageError(f"--only takes {', '.join(MEASUREMENTS)}; got {args.only!r}")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device=cuda but no CUDA GPU is visible: use --device=cpu")
    for key in ("batch_size", "img_size", "steps", "repeats"):
        if getattr(args, key) < 1:
            raise UsageError(f"--{key.replace('_', '-')} must be positive, got {getattr(args, key)}")
    device = torch.device("cuda" if args.device != "cpu" and torch.cuda.is_available() else "cpu")
    args.precision = args.precision or ("bf16" if device.type == "cuda" else "fp32")
    args.overhead_models = [zoo.resolve_name(n.strip()) for n in args.overhead_models.split(",") if n.strip()]
    args.mfu_models = [zoo.resolve_name(n.strip()) for n in args.mfu_models.split(",") if n.strip()]
    args.pairs = parse_pairs(args.pairs)
    args.num_classes, args.in_chans = 1000, 3

    name = speed.device_name(device)
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:40]
    setting = {"device_name": name, "precision": args.precision, "batch_size": args.batch_size,
               "img_size": args.img_size, "channels_last": args.channels_last, "compile": args.compile,
               "torch_version": torch.__version__, "cuda_version": torch.version.cuda or ""}
    for what in wanted:
        rows = [{**row, **setting} for row in MEASUREMENTS[what](args, device)]
        out = Path(args.out_dir) / f"{slug}_{what}.csv"
        write_csv(out, rows, sorted({k for row in rows for k in row}, key=_column_order))
        for row in rows:
            print(f"[{what}] " + "  ".join(f"{k}={v}" for k, v in row.items() if k not in setting), flush=True)
        print(f"wrote {out} ({name})")
    return 0


def _column_order(key: str) -> tuple[int, str]:
    first = ["model", "reference"]
    return (first.index(key), key) if key in first else (2, key)


if __name__ == "__main__":
    sys.exit(run_command(main))
