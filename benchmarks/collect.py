"""Reading results/ for the table and the plots: protocol runs grouped, seeds aggregated, speeds chosen.

A run counts when it is completed, was launched by benchmarks.sweep (its config names a protocol), ran
whole epochs (max_steps_per_epoch 0) on real data. Runs are grouped by (dataset, protocol, epochs,
recipe, device: a GPU's runs form a column of their own, since the campaign scales their batch); within
a group each seed counts once (its latest run), and a model's cell is the mean ± sample standard
deviation of the test top-1 at the best-validation epoch over its seeds.
"""
from __future__ import annotations

import csv
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from benchmarks.common import read_csv
from harness.results import completed_runs


@dataclass(frozen=True)
class Group:
    dataset: str
    protocol: str
    epochs: int
    recipe: str
    device: str = "cpu"   # a GPU's runs are a column of their own: the campaign scales their batch

    @property
    def slug(self) -> str:
        return f"{self.dataset}_{self.protocol}_{self.epochs}ep_{self.recipe}" + ("_gpu" if self.on_gpu else "")

    @property
    def label(self) -> str:
        on = ", GPU" if self.on_gpu else ""
        return f"{self.dataset} · {self.protocol} ({self.epochs} ep, {self.recipe} recipe{on})"

    @property
    def on_gpu(self) -> bool:
        return self.device == "cuda"


@dataclass
class ModelResult:
    model: str
    family: str
    seeds: list[int] = field(default_factory=list)
    top1: list[float] = field(default_factory=list)
    img_size: int = 0
    params: int = 0
    train_images_per_s: list[float] = field(default_factory=list)
    device_names: set[str] = field(default_factory=set)
    wall_time_s: list[float] = field(default_factory=list)                  # per seed: training + validation
    curves: list[list[tuple[int, float]]] = field(default_factory=list)   # per seed: (epoch, val top-1)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.top1)

    @property
    def std(self) -> float:
        return statistics.stdev(self.top1) if len(self.top1) > 1 else 0.0

    def at_chance(self, num_classes: int) -> bool:
        """Within a point of guessing (100 / classes %): a run whose recipe never started learning."""
        return self.mean <= 100.0 / num_classes + 1.0


def _read_config(folder: Path) -> dict[str, Any]:
    try:
        return yaml.safe_load((folder / "config.yaml").read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return {}


def _read_curve(folder: Path) -> list[tuple[int, float]]:
    path = folder / "metrics.csv"
    if not path.is_file():
        return []
    with path.open(newline="", encoding="utf-8") as handle:
        return [(int(r["epoch"]), float(r["val_top1"])) for r in csv.DictReader(handle) if r.get("val_top1")]


def collect_runs(results_dir: str) -> dict[Group, dict[str, ModelResult]]:
    latest: dict[tuple[Group, str, int], tuple[dict, Path]] = {}
    for summary in completed_runs(results_dir):
        folder = Path(results_dir) / "runs" / summary["run_id"]
        config = _read_config(folder)
        if not config.get("protocol") or config.get("max_steps_per_epoch", 0) or summary.get("synthetic_data"):
            continue
        group = Group(summary["dataset"], config["protocol"], int(summary["epochs"]), summary["recipe"],
                      summary.get("device", "cpu"))
        key = (group, summary["model"], int(summary["seed"]))
        if key not in latest or summary["run_id"] > latest[key][0]["run_id"]:
            latest[key] = (summary, folder)
    groups: dict[Group, dict[str, ModelResult]] = {}
    for (group, model, seed), (summary, folder) in sorted(latest.items(), key=lambda kv: (kv[0][0].slug, kv[0][1],
                                                                                           kv[0][2])):
        result = groups.setdefault(group, {}).setdefault(model, ModelResult(model, summary.get("family", "")))
        result.seeds.append(seed)
        result.top1.append(float(summary["test_top1_best"]))
        result.img_size = int(summary["img_size"])
        result.params = int(summary["params"])
        result.train_images_per_s.append(float(summary.get("train_images_per_s", 0.0)))
        result.device_names.add(str(summary.get("device_name", "")))
        result.wall_time_s.append(float(summary.get("wall_time_s", 0.0)))
        result.curves.append(_read_curve(folder))
    return dict(sorted(groups.items(), key=lambda kv: kv[0].slug))


@dataclass
class SpeedSet:
    """One comparable set of throughput rows: same device, precision, batch, layout and compile setting."""
    device: str
    device_name: str
    precision: str
    batch_size: str
    channels_last: str
    compile: str
    rows: dict[str, dict[str, str]]

    @property
    def label(self) -> str:
        layout = "channels_last" if self.channels_last == "True" else "NCHW"
        compiled = ", compiled" if self.compile == "True" else ""
        return f"{self.device_name}, {self.precision}, batch {self.batch_size}, {layout}{compiled}"


def choose_speed_set(speed_files: list[Path], device: str = "cuda") -> SpeedSet | None:
    """The set of ``device`` rows covering the most models; ties broken by the set's description."""
    sets: dict[tuple, dict[str, dict[str, str]]] = {}
    for path in sorted(speed_files):
        for row in read_csv(path):
            if row.get("device", "") != device:
                continue
            key = (row.get("device", ""), row.get("device_name", ""), row.get("precision", ""),
                   row.get("train_batch_size", "") or row.get("infer_batch_size", ""), row.get("channels_last", ""),
                   row.get("compile", ""))
            sets.setdefault(key, {})[row["model"]] = row
    if not sets:
        return None
    key = min(sets, key=lambda k: (-len(sets[k]), k))
    return SpeedSet(*key, rows=sets[key])


@dataclass
class InferenceSet:
    """CPU inference of one machine at one batch size: per model, the fastest candidate setting's throughput
    and the lowest batch-1 latency over the settings (benchmarks.speed --precision=auto --latency)."""
    device_name: str
    batch_size: str
    throughput: dict[str, dict[str, str]]     # model → its fastest row at batch_size
    latency: dict[str, dict[str, str]]        # model → its row with the lowest batch-1 latency
    measure_s: float                          # seconds spent measuring every row of the set
    max_load: float                           # highest 1-minute load average seen while measuring

    @staticmethod
    def setting(row: dict[str, str]) -> str:
        return f"{row['precision']}{'·CL' if row.get('channels_last') == 'True' else ''}"


def choose_inference_set(speed_files: list[Path]) -> InferenceSet | None:
    """The CPU set with batch-1 latencies that covers the most models."""
    sets: dict[tuple[str, str], list[dict[str, str]]] = {}
    for path in sorted(speed_files):
        for row in read_csv(path):
            if row.get("device") == "cpu" and row.get("latency_bs1_ms") and row.get("infer_samples_per_sec"):
                sets.setdefault((row["device_name"], row["infer_batch_size"]), []).append(row)
    if not sets:
        return None
    key = min(sets, key=lambda k: (-len({r["model"] for r in sets[k]}), k))
    throughput: dict[str, dict[str, str]] = {}
    latency: dict[str, dict[str, str]] = {}
    for row in sets[key]:
        name = row["model"]
        if name not in throughput or float(row["infer_samples_per_sec"]) > float(throughput[name]["infer_samples_per_sec"]):
            throughput[name] = row
        if name not in latency or float(row["latency_bs1_ms"]) < float(latency[name]["latency_bs1_ms"]):
            latency[name] = row
    measured = sum(float(r.get("measure_s") or 0) for r in sets[key])
    load = max((float(r.get("load_1m") or 0) for r in sets[key]), default=0.0)
    return InferenceSet(key[0], key[1], throughput, latency, measured, load)


@dataclass
class FastPathSet:
    """CPU training of one machine at one input (benchmarks.speed --no-infer --precision=auto
    --channels-last=auto): per model, each candidate setting's training img/s."""
    device_name: str
    img_size: str
    batch_size: str
    rates: dict[str, dict[str, float]]        # model → setting ("fp32", "fp32·CL", "bf16", "bf16·CL") → img/s
    max_load: float

    SETTINGS = ("fp32", "fp32·CL", "bf16", "bf16·CL")

    def fastest(self, model: str) -> str:
        return max(self.rates[model], key=self.rates[model].get)

    def speedup(self, model: str) -> float | None:
        """The fastest setting's img/s over fp32 NCHW's, the CPU default before the fast path."""
        base = self.rates[model].get("fp32")
        return self.rates[model][self.fastest(model)] / base if base else None


def choose_fastpath_set(speed_files: list[Path]) -> FastPathSet | None:
    """The CPU training set (machine, input size, batch) with the most models measured in two settings or more."""
    sets: dict[tuple[str, str, str], dict[str, dict[str, float]]] = {}
    loads: dict[tuple[str, str, str], float] = {}
    for path in sorted(speed_files):
        for row in read_csv(path):
            if row.get("device") != "cpu" or not row.get("train_samples_per_sec"):
                continue
            key = (row["device_name"], row["train_img_size"], row["train_batch_size"])
            setting = InferenceSet.setting(row)
            sets.setdefault(key, {}).setdefault(row["model"], {})[setting] = float(row["train_samples_per_sec"])
            loads[key] = max(loads.get(key, 0.0), float(row.get("load_1m") or 0))
    compared = {k: {m: r for m, r in v.items() if len(r) >= 2} for k, v in sets.items()}
    compared = {k: v for k, v in compared.items() if v}
    if not compared:
        return None
    key = min(compared, key=lambda k: (-len(compared[k]), k))
    return FastPathSet(*key, rates=compared[key], max_load=loads[key])
