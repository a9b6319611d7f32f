"""What a run costs before it runs: seconds, from its MACs and a throughput.

One training image costs about 3 × its forward MACs (the backward pass twice the forward: Kaplan et al.,
"Scaling Laws for Neural Language Models", 2020, §2.1), one evaluated image 1 ×. A run's workload is its
training images (epochs × the training split) and its evaluated images (the validation split every epoch,
twice with an EMA, and the test set twice: best and last weights).

Throughput comes, best first, from a measurement of the same model at the same input (a finished run's
``train_images_per_s``, or a ``benchmarks.speed`` CSV row of this machine), else from a prior:
``seconds per image = overhead + 6 × GMACs / sustained TFLOP/s`` (2 FLOPs a MAC). On a GPU the overhead is
negligible and the TFLOP/s is an assumption the caller states; on a CPU small models are bound by the
per-image overhead (memory traffic, Python, elementwise ops), which the prior's first term models.
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path

from benchmarks.common import read_csv
from harness.results import completed_runs, device_name

TRAIN_COST = 3  # forward + backward, in forward passes

# (training, test) images of each dataset the harness reads; the validation split is carved from training.
DATASET_IMAGES = {"digits": (1438, 359), "mnist": (60000, 10000), "fashion_mnist": (60000, 10000),
                  "cifar10": (50000, 10000), "cifar100": (50000, 10000), "imagenet": (1281167, 50000)}


@dataclass(frozen=True)
class Workload:
    train_images: int
    eval_images: int

    @classmethod
    def of_run(cls, dataset: str, epochs: int, val_fraction: float, ema: bool = False, sam: bool = False,
               synthetic_images: int = 1024) -> "Workload":
        """SAM trains every image twice (a second forward-backward at the perturbed weights)."""
        n_train, n_test = DATASET_IMAGES.get(dataset, (synthetic_images, 256))
        n_val = max(1, round(n_train * val_fraction))
        evals_per_epoch = 2 if ema else 1
        return cls((n_train - n_val) * epochs * (2 if sam else 1), n_val * epochs * evals_per_epoch + 2 * n_test)


@dataclass(frozen=True)
class Throughput:
    """A prior on training speed: seconds per training image = overhead_s + 6·GMACs·1e9 / (tflops·1e12)."""
    sustained_tflops: float
    overhead_s: float = 0.0

    def train_images_per_s(self, gmacs: float) -> float:
        return 1.0 / (self.overhead_s + 2 * TRAIN_COST * gmacs * 1e9 / (self.sustained_tflops * 1e12))


# Fitted (least squares on log seconds per image) to the fastest setting's training img/s of the 27 seed
# models that benchmarks.speed measured at 32 px, batch 64, 1 channel, on an Intel Xeon with AMX-BF16,
# 2 threads, nothing else running (results/speed/cpu-*_auto_bs64_auto-layout.csv): 0.16 TFLOP/s and
# 0.9 ms an image, typically within a factor of 2 of each model (a run adds augmentation and evaluation).
CPU_PRIOR = Throughput(sustained_tflops=0.16, overhead_s=0.9e-3)


def rescaled(prior: Throughput, measured: list[tuple[float, float]]) -> Throughput:
    """``prior`` fitted to one machine by its measured (GMACs, training img/s) pairs: both terms scaled by the
    median ratio of measured to predicted speed (one factor: a handful of runs cannot fit two). The prior
    itself where nothing is measured."""
    if not measured:
        return prior
    factor = statistics.median(rate / prior.train_images_per_s(gmacs) for gmacs, rate in measured)
    return Throughput(prior.sustained_tflops * factor, prior.overhead_s / factor)


def estimate_seconds(workload: Workload, train_images_per_s: float) -> float:
    """Training at the given rate; evaluation (no backward) three times as fast."""
    return workload.train_images / train_images_per_s + workload.eval_images / (TRAIN_COST * train_images_per_s)


def measured_rates(results_dir: str | Path = "results") -> dict[tuple[str, int, int], float]:
    """(model, img_size, in_chans) → training img/s measured on this machine: finished runs first, then the
    speed CSVs of this device (the fastest setting measured). Runs of other machines do not count."""
    this_cpu = device_name_of_this_cpu()
    rates: dict[tuple[str, int, int], float] = {}
    for path in sorted(Path(results_dir, "speed").glob("*.csv")):
        for row in read_csv(path):
            if row.get("device_name") != this_cpu or not row.get("train_samples_per_sec"):
                continue
            key = (row["model"], int(row["train_img_size"]), int(row["in_chans"]))
            rates[key] = max(rates.get(key, 0.0), float(row["train_samples_per_sec"]))
    for summary in completed_runs(results_dir):
        if summary.get("device_name") == this_cpu and summary.get("train_images_per_s"):
            in_chans = 1 if summary["dataset"] in ("mnist", "fashion_mnist") else 3
            rates[(summary["model"], int(summary["img_size"]), in_chans)] = float(summary["train_images_per_s"])
    return rates


def device_name_of_this_cpu() -> str:
    import torch

    return device_name(torch.device("cpu"))
