"""Train-against-validation curves of one run, written into its run folder (``curves_{accuracy,loss}.png``)
and copied to plots/<model>_<dataset>_{accuracy,loss}.png, which keeps the latest run per model and dataset.

Epochs are whole-number ticks; a loss that spans more than a decade is drawn on a log axis.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from harness.io import safe_filename, write_bytes  # noqa: E402

CURVES = (("accuracy", "top1", "top-1 accuracy (%)"), ("loss", "loss", "cross-entropy loss"))


def png_bytes(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def save_figure(fig, path: Path) -> None:
    write_bytes(path, png_bytes(fig))


def spans_decades(values: list[float]) -> bool:
    positive = [v for v in values if v > 0]
    return len(positive) == len(values) > 0 and max(positive) > 10 * min(positive)


def curve_figure(history: list[dict[str, Any]], title: str, metric: str, ylabel: str):
    epochs = [row["epoch"] for row in history]
    series = [("train", f"train_{metric}", "o"), ("validation", f"val_{metric}", "s"),
              ("validation (EMA)", f"val_{metric}_ema", "^")]
    fig, ax = plt.subplots(figsize=(6, 4))
    plotted = []
    for label, key, marker in series:
        if history and key in history[0]:
            values = [row[key] for row in history]
            ax.plot(epochs, values, marker=marker, label=label)
            plotted += values
    if metric == "loss" and spans_decades(plotted):
        ax.set_yscale("log")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set(title=title, xlabel="epoch", ylabel=ylabel)
    ax.grid(alpha=0.3)
    ax.legend()
    return fig


def plot_curves(history: list[dict[str, Any]], model: str, dataset: str, run_folder: Path,
                plots_dir: str) -> list[Path]:
    """The run's own curves, and the latest-per-model-and-dataset copies in ``plots_dir``."""
    paths = []
    for kind, metric, ylabel in CURVES:
        data = png_bytes(curve_figure(history, f"{model} on {dataset}: {kind}", metric, ylabel))
        for path in (Path(run_folder) / f"curves_{kind}.png",
                     Path(plots_dir) / f"{safe_filename(model)}_{safe_filename(dataset)}_{kind}.png"):
            write_bytes(path, data)
            paths.append(path)
    return paths


def confusion_figure(confusion, class_names: list[str], title: str):
    """Rows are true classes, columns predicted ones; colour is the share of the row, numbers are counts
    (written in the cells up to 20 classes, class names on the axes up to 40)."""
    counts = confusion.numpy() if hasattr(confusion, "numpy") else confusion
    n = len(counts)
    shares = counts / counts.sum(1, keepdims=True).clip(min=1)
    side = min(12, 3 + 0.45 * n)
    fig, ax = plt.subplots(figsize=(side + 1, side))
    image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
    if n <= 40:
        ax.set_xticks(range(n), class_names, rotation=90 if max(map(len, class_names)) > 3 else 0)
        ax.set_yticks(range(n), class_names)
    if n <= 20:
        for i in range(n):
            for j in range(n):
                if counts[i, j]:
                    ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=8,
                            color="white" if shares[i, j] > 0.5 else "black")
    ax.set(title=title, xlabel="predicted", ylabel="true")
    return fig
