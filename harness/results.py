"""A run's record: results/runs/<run-id>/{config.yaml, metrics.csv, summary.json}.

``summary.json`` is written last, with ``status``; readers take only runs whose status is ``completed``.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
import secrets
import subprocess
from pathlib import Path
from typing import Any

import torch

from harness.errors import UsageError
from harness.fastpath import cpu_unit
from harness.io import safe_filename, write_json, write_text, write_yaml

METRIC_COLUMNS = ["epoch", "train_loss", "train_top1", "val_loss", "val_top1", "val_top5", "lr",
                  "epoch_time_s", "images_per_s"]


def new_run_id(model: str, dataset: str, seed: int) -> str:
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
    return f"{stamp}_{safe_filename(model)}_{safe_filename(dataset)}_s{seed}_{secrets.token_hex(3)}"


RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,199}")   # one path component, never "." or ".."


def check_run_id(run_id: Any, source: str) -> str:
    """A run id (read from ``source``) that is safe as one folder name under results/runs/."""
    if not isinstance(run_id, str) or not RUN_ID.fullmatch(run_id):
        raise UsageError(f"{source} names the run {str(run_id)[:60]!r}, which is not a run id (letters, digits, "
                         f"'.', '_', '+', '-'; no path): use a file written by this project")
    return run_id


class RunRecord:
    """The files of one run, always inside ``<results_dir>/runs/<run id>/``."""

    def __init__(self, results_dir: str, run_id: str):
        self.run_id = check_run_id(run_id, "the run record")
        self.folder = Path(results_dir) / "runs" / run_id

    def write_config(self, config: dict[str, Any]) -> None:
        write_yaml(self.folder / "config.yaml", config)

    def write_metrics(self, history: list[dict[str, Any]]) -> None:
        buffer = io.StringIO()
        extra = [k for k in dict.fromkeys(k for row in history for k in row) if k not in METRIC_COLUMNS]
        writer = csv.DictWriter(buffer, fieldnames=METRIC_COLUMNS + extra, lineterminator="\n")  # + EMA columns
        writer.writeheader()
        writer.writerows(history)
        write_text(self.folder / "metrics.csv", buffer.getvalue())

    def write_summary(self, summary: dict[str, Any]) -> None:
        write_json(self.folder / "summary.json", summary)


def device_name(device: torch.device) -> str:
    """The GPU's name, or the CPU's model name and thread count: a timing means nothing without it."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    threads = torch.get_num_threads()
    unit = cpu_unit()
    return f"CPU {model} ({unit + ', ' if unit else ''}{threads} thread{'s' if threads > 1 else ''})"


def environment(device: torch.device) -> dict[str, Any]:
    """The hardware and software a run used: the GPU and CUDA version only when it ran on a GPU."""
    on_gpu = device.type == "cuda"
    return {
        "device": device.type,
        "device_name": device_name(device),
        "torch_version": torch.__version__,
        **({"cuda_version": torch.version.cuda} if on_gpu else {}),
        "git_commit": _git_commit(),
    }


def recipe_used(cfg) -> str:
    """"paper" only when a paper recipe was applied (configs/models/<family>.yaml exists for the model; a tv: or
    timm: model has none), else "seed": the uniform defaults."""
    from harness.config import model_recipe_layers
    return "paper" if cfg.recipe == "paper" and model_recipe_layers(cfg.model) else "seed"


def _git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def completed_runs(results_dir: str) -> list[dict[str, Any]]:
    """Summaries of finished runs only (an interrupted or failed run has no completed summary)."""
    runs = []
    for path in sorted(Path(results_dir).glob("runs/*/summary.json")):
        try:
            summary = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
        if summary.get("status") == "completed":
            runs.append(summary)
    return runs
