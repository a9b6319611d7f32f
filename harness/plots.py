"""Train-against-validation curves of one run: plots/<model>_<dataset>_{accuracy,loss}.png."""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from harness.io import write_bytes  # noqa: E402


def save_figure(fig, path: Path) -> None:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    write_bytes(path, buffer.getvalue())


def plot_curves(history: list[dict[str, Any]], model: str, dataset: str, plots_dir: str) -> list[Path]:
    epochs = [row["epoch"] for row in history]
    paths = []
    for kind, train_key, val_key, ylabel in (("accuracy", "train_top1", "val_top1", "top-1 accuracy (%)"),
                                             ("loss", "train_loss", "val_loss", "cross-entropy loss")):
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.plot(epochs, [row[train_key] for row in history], marker="o", label="train")
        ax.plot(epochs, [row[val_key] for row in history], marker="s", label="validation")
        ax.set(title=f"{model} on {dataset}: {kind}", xlabel="epoch", ylabel=ylabel)
        ax.grid(alpha=0.3)
        ax.legend()
        path = Path(plots_dir) / f"{model}_{dataset}_{kind}.png"
        save_figure(fig, path)
        paths.append(path)
    return paths
