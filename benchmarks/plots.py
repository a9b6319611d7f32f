"""Comparison plots of the protocol runs, one set per (dataset, protocol) group, in plots/:

  compare_<group>_top1_vs_gmacs.png       top-1 against GMACs at the input used (log x), Pareto front
  compare_<group>_top1_vs_params.png      top-1 against parameters (log x), Pareto front
  compare_<group>_top1_vs_throughput.png  top-1 against training images/s measured during the runs (log x)
  compare_<group>_val_curves.png          every model's validation top-1 per epoch (mean over seeds)

The Pareto front joins the models no other model beats on both axes (more accuracy for less cost, or
for more throughput). Runs at chance (the recipe never started learning) are named in the title, not
drawn: a point at 10 % would squash the others into the top of the axis. Written by
``python -m benchmarks.table`` (or ``python -m benchmarks.plots``).
"""
from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from benchmarks import collect, profile  # noqa: E402
from benchmarks.common import OneLineParser, dataset_geometry, read_csv, run_command  # noqa: E402
from harness.plots import save_figure  # noqa: E402


def pareto_front(points: list[tuple[float, float]], lower_x_better: bool) -> list[tuple[float, float]]:
    """The points not dominated: walking from the best x to the worst, each one that raises the best accuracy."""
    front, best = [], float("-inf")
    for x, y in sorted(points, key=lambda p: (p[0] if lower_x_better else -p[0], -p[1])):
        if y > best:
            front.append((x, y))
            best = y
    return front


# Where a label may sit around its point, in points: right, above, left, below, then the diagonals.
LABEL_OFFSETS = [(5, 3), (0, 8), (-5, 3), (0, -11), (5, -9), (-5, -9), (5, 11), (-5, 11)]


def place_labels(ax, points: dict[str, tuple[float, float]]) -> None:
    """Each label at the first offset where it overlaps no label placed before it (the least-overlapping
    offset where every one does), points taken from the most crowded first."""
    renderer = ax.figure.canvas.get_renderer()
    placed = []
    for name, (x, y) in sorted(points.items(), key=lambda item: item[1][1]):
        best = None
        for dx, dy in LABEL_OFFSETS:
            text = ax.annotate(name, (x, y), textcoords="offset points", xytext=(dx, dy), fontsize=6.5,
                               ha="left" if dx > 0 else "right" if dx < 0 else "center", va="center")
            box = text.get_window_extent(renderer).expanded(1.05, 1.15)
            overlap = sum(box.overlaps(other) for other in placed)
            if best is None or overlap < best[0]:
                if best is not None:
                    best[1].remove()
                best = (overlap, text, box)
            else:
                text.remove()
            if overlap == 0:
                break
        placed.append(best[2])


def scatter(points: dict[str, tuple[float, float]], families: dict[str, str], title: str, xlabel: str, path: Path,
            lower_x_better: bool = True) -> Path:
    """Models coloured by family (legend), the Pareto front dashed, labels kept apart."""
    fig, ax = plt.subplots(figsize=(10, 6.5))
    names_by_family: dict[str, list[str]] = {}
    for name in sorted(points):
        names_by_family.setdefault(families.get(name, "other"), []).append(name)
    colours = plt.get_cmap("tab20")
    for i, (family, names) in enumerate(sorted(names_by_family.items())):
        ax.scatter([points[n][0] for n in names], [points[n][1] for n in names], s=28, zorder=3,
                   color=colours(i % 20), label=family, edgecolors="black", linewidths=0.4)
    front = pareto_front(list(points.values()), lower_x_better)
    if len(front) > 1:
        xs, ys = zip(*sorted(front))
        ax.plot(xs, ys, linestyle="--", color="grey", zorder=2, label="Pareto front")
    ax.set_xscale("log")
    ax.set(xlabel=xlabel, ylabel="test top-1 (%)")
    ax.set_title(textwrap.fill(title, 130), fontsize=9)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), title="family", title_fontsize=8)
    fig.tight_layout()
    place_labels(ax, points)
    save_figure(fig, path)
    return path


def validation_curves(results: dict[str, collect.ModelResult], title: str, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(7, 5))
    for name, result in sorted(results.items()):
        by_epoch: dict[int, list[float]] = {}
        for curve in result.curves:
            for epoch, top1 in curve:
                by_epoch.setdefault(epoch, []).append(top1)
        epochs = sorted(by_epoch)
        ax.plot(epochs, [sum(by_epoch[e]) / len(by_epoch[e]) for e in epochs], marker="o", markersize=3, label=name)
    ax.set(title=textwrap.fill(title, 90), xlabel="epoch", ylabel="validation top-1 (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    save_figure(fig, path)
    return path


def comparison_plots(groups: dict, complexity_rows: list[dict], plots_dir: str) -> list[Path]:
    paths = []
    for group, every_result in groups.items():
        base = Path(plots_dir) / f"compare_{group.slug}"
        in_chans, num_classes = dataset_geometry(group.dataset)
        results = {name: r for name, r in every_result.items() if not r.at_chance(num_classes)}
        families = {name: r.family for name, r in results.items()}
        devices = sorted({d for r in every_result.values() for d in r.device_names if d})
        where = f"{group.label}; trained on {', '.join(devices) or 'unknown hardware'}"
        if len(results) < len(every_result):
            where += f"; not shown, at chance: {', '.join(sorted(set(every_result) - set(results)))}"
        gmacs = {}
        for name, result in results.items():
            counted = profile.lookup(complexity_rows, name, result.img_size, in_chans, num_classes)
            if counted:
                gmacs[name] = (float(counted["gmacs"]), result.mean)
        if gmacs:
            paths.append(scatter(gmacs, families, f"Top-1 against GMACs — {where}", "GMACs at the input used (log)",
                                 base.with_name(base.name + "_top1_vs_gmacs.png")))
        params = {name: (r.params / 1e6, r.mean) for name, r in results.items() if r.params}
        paths.append(scatter(params, families, f"Top-1 against parameters — {where}", "parameters (M, log)",
                             base.with_name(base.name + "_top1_vs_params.png")))
        speed = {name: (sum(r.train_images_per_s) / len(r.train_images_per_s), r.mean)
                 for name, r in results.items() if r.train_images_per_s and min(r.train_images_per_s) > 0}
        if speed:
            paths.append(scatter(speed, families, f"Top-1 against training throughput — {where}",
                                 "training images/s during the runs (log; a shared machine: lower bounds)",
                                 base.with_name(base.name + "_top1_vs_throughput.png"), lower_x_better=False))
        paths.append(validation_curves(results, f"Validation top-1 — {where}",
                                       base.with_name(base.name + "_val_curves.png")))
    return paths


def main(argv: list[str]) -> int:
    parser = OneLineParser(prog="python -m benchmarks.plots", description=__doc__.split("\n")[0])
    parser.add_argument("--results-dir", default="results")
    parser.add_argument("--plots-dir", default="plots")
    args = parser.parse_args(argv)
    rows = read_csv(Path(args.results_dir) / "complexity.csv")
    for path in comparison_plots(collect.collect_runs(args.results_dir), rows, args.plots_dir):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(run_command(main))
