"""Learngene on Fashion-MNIST: train the components once, recompose ViTs of several depths, compare with scratch.

    python -m benchmarks.learngene            # resumable: finished runs are skipped, a killed one resumes

Protocol (zoo/learngene.py for the method; every run goes through harness.train, one loop):

1. Learngene: a decomposed ViT-Tiny/4 (width 192, 3 heads, 32 px) of ``--ancestry-depth`` layers, trained
   incrementally: stage k has components 0 … k, trains component k with 0 … k−1 frozen, and starts from
   stage k−1's exported weights. ``--stage-epochs`` epochs per stage.
2. For every depth in ``--depths``, three arms of the same plain ViT (``learngene_descendant_vit_tiny_patch4_32``)
   with the same recipe: ``recomposed`` (weights recomposed from the learngene, then ``--epochs`` of fine-tuning),
   ``scratch`` (``--epochs`` from a fresh init) and ``scratch_plus`` (from a fresh init for ``--epochs`` plus the
   learngene's epochs, so it sees as many training images as the learngene and the fine-tuning together).

An "epoch" here is ``--steps-per-epoch`` batches of ``--batch-size`` images drawn from that epoch's seeded
shuffle of the full training set (``max_steps_per_epoch``), so the whole experiment fits a shared 2-core CPU.
Every run of one seed draws the same images in its epoch e. Test accuracy is on a fixed, class-balanced subset of
``--test-images`` of the 10,000 test images (written once under data/learngene_fmnist/, the training files
linked from Debian's dataset-fashion-mnist); the validation split that picks the best epoch is
``--val-fraction`` of the training set.

Writes results/learngene/runs/<run-id>/ (the harness's records; the learngene stages' model.safetensors too, which
the descendants are recomposed from), results/learngene/learngene.csv (one row per run), results/learngene/table.md,
the same table into the README between its learngene-table markers, and plots/learngene_accuracy_vs_depth.png,
plots/learngene_accuracy_vs_images.png.
"""
from __future__ import annotations

import dataclasses
import gzip
import struct
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import OneLineParser, read_csv, replace_between, run_command, write_csv
from harness.config import build_config
from harness.data import FASHION_MNIST_SYSTEM_DIR, IDX_FILES, read_idx
from harness.errors import UsageError
from harness.io import write_bytes, write_text

DATA_DIR = Path("data") / "learngene_fmnist"
DECOMPOSED = "learngene_vit_tiny_patch4_32"
DESCENDANT = "learngene_descendant_vit_tiny_patch4_32"
ARMS = ("recomposed", "scratch", "scratch_plus")
README_MARKERS = ("<!-- learngene-table:start -->", "<!-- learngene-table:end -->")
COLUMNS = ["arm", "depth", "stage", "epochs", "train_images", "learngene_images", "total_images", "test_top1",
           "test_top1_last", "best_val_top1", "params", "wall_time_s", "process_time_s", "device_name", "run_id"]
# The recipe every run shares (ours: AdamW with a short warm-up and cosine decay, the usual small-ViT recipe).
RECIPE = dict(recipe="seed", optimizer="adamw", lr=1e-3, weight_decay=0.05, scheduler="cosine", warmup_epochs=0.25,
              warmup_lr=1e-5, min_lr=1e-5, label_smoothing=0.1, grad_clip=1.0, img_size=32, input_size=32, amp="off",
              channels_last="false")  # fp32 NCHW: bf16 autocast measured slower for this ViT on this CPU


@dataclasses.dataclass(frozen=True)
class Plan:
    depths: tuple[int, ...]
    epochs: int
    stage_epochs: int
    components: int
    ancestry_depth: int
    basis: str
    steps_per_epoch: int
    batch_size: int
    val_fraction: float
    test_images: int
    seed: int
    teacher: str
    out: Path
    plots: Path
    checkpoints: Path

    @property
    def images_per_epoch(self) -> int:
        return self.steps_per_epoch * self.batch_size

    @property
    def learngene_epochs(self) -> int:
        return self.components * self.stage_epochs


# ---------------------------------------------------------------- data


def write_idx(path: Path, array: np.ndarray) -> None:
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    write_bytes(path, gzip.compress(header + array.astype(np.uint8).tobytes(), mtime=0))


def prepare_data(test_images: int, seed: int) -> Path:
    """Link the training files and write a class-balanced test subset (the same one for every run)."""
    if test_images % 10 or not 10 <= test_images <= 10000:
        raise UsageError(f"--test-images must be a multiple of 10 between 10 and 10000, got {test_images}")
    sources = {name: FASHION_MNIST_SYSTEM_DIR / f"{name}.gz" for split in IDX_FILES.values() for name in split}
    if not all(p.is_file() for p in sources.values()):
        raise UsageError(f"Fashion-MNIST is not in {FASHION_MNIST_SYSTEM_DIR}: apt-get install dataset-fashion-mnist")
    folder = DATA_DIR / f"test{test_images}_s{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    for name in IDX_FILES["train"]:
        link = folder / f"{name}.gz"
        if not link.exists():
            link.symlink_to(sources[name])
    images_name, labels_name = IDX_FILES["test"]
    if not (folder / f"{labels_name}.gz").is_file():
        images, labels = read_idx(sources[images_name]), read_idx(sources[labels_name])
        order = np.random.default_rng(seed).permutation(len(labels))
        keep = np.sort(np.concatenate([order[labels[order] == c][:test_images // 10] for c in range(10)]))
        write_idx(folder / f"{images_name}.gz", images[keep])
        write_idx(folder / f"{labels_name}.gz", labels[keep])  # written last: its presence means both are whole
    return folder


# ---------------------------------------------------------------- runs


def run_config(plan: Plan, data_dir: Path, label: str, model: str, epochs: int, model_kwargs: dict[str, Any],
               model_save: bool = False, teacher: str = ""):
    return build_config({"teacher": teacher,
        **RECIPE, "model": model, "dataset": "fashion_mnist", "data_dir": str(data_dir), "download": False,
        "epochs": epochs, "batch_size": plan.batch_size, "max_steps_per_epoch": plan.steps_per_epoch,
        "val_fraction": plan.val_fraction, "seed": plan.seed, "device": "cpu", "model_kwargs": model_kwargs,
        "checkpoint": True, "checkpoint_dir": str(plan.checkpoints / label),
        "results_dir": str(plan.out), "plots_dir": str(plan.checkpoints / "plots"),
        "model_save": model_save})


def train_or_skip(cfg, label: str) -> dict[str, Any]:
    """The run's summary: found when it finished before, otherwise trained (resumed from its last.pt if any)."""
    from benchmarks.sweep import finished_run
    from harness import checkpoint
    from harness.train import run

    done = finished_run(cfg)
    if done:
        print(f"[learngene] {label}: done already ({done['run_id']}), skipped", flush=True)
        return done
    if (checkpoint.checkpoint_folder(cfg) / "last.pt").is_file():
        cfg = dataclasses.replace(cfg, resume="auto")
    print(f"[learngene] {label}: {'resuming' if cfg.resume else 'training'}", flush=True)
    return run(cfg)


def row(summary: dict[str, Any], plan: Plan, arm: str, depth: int, stage: int | None, epochs: int) -> dict[str, Any]:
    train_images = epochs * plan.images_per_epoch
    learngene_images = plan.learngene_epochs * plan.images_per_epoch if arm == "recomposed" else 0
    return {"arm": arm, "depth": depth, "stage": "" if stage is None else stage, "epochs": epochs,
            "train_images": train_images, "learngene_images": learngene_images,
            "total_images": train_images + learngene_images, "test_top1": round(summary["test_top1_best"], 2),
            "test_top1_last": round(summary["test_top1_last"], 2), "best_val_top1": round(summary["best_val_top1"], 2),
            "params": summary["params"], "wall_time_s": round(summary["wall_time_s"], 1),
            "process_time_s": round(summary.get("process_time_s", 0.0), 1), "device_name": summary["device_name"],
            "run_id": summary["run_id"]}


def train_learngene(plan: Plan, data_dir: Path, rows: list[dict[str, Any]]) -> Path:
    """The incremental stages; returns the last stage's exported weights."""
    weights = ""
    for stage in range(plan.components):
        kwargs = {"depth": plan.ancestry_depth, "num_components": stage + 1, "basis": plan.basis,
                  "trainable_components": [stage], "init_from": weights}
        label = f"learngene_stage{stage}"
        cfg = run_config(plan, data_dir, label, DECOMPOSED, plan.stage_epochs, kwargs, model_save=True,
                         teacher=plan.teacher)
        summary = train_or_skip(cfg, label)
        path = plan.out / "runs" / summary["run_id"] / "model.safetensors"
        if not path.is_file():
            raise UsageError(f"{label} finished but its weights {path} are gone: delete {path.parent} and rerun")
        weights = str(path)
        rows.append(row(summary, plan, "learngene", plan.ancestry_depth, stage, plan.stage_epochs))
    return Path(weights)


def experiment(plan: Plan) -> list[dict[str, Any]]:
    data_dir = prepare_data(plan.test_images, plan.seed)
    rows: list[dict[str, Any]] = []
    csv_path = plan.out / "learngene.csv"
    learngene = train_learngene(plan, data_dir, rows)
    write_csv(csv_path, rows, COLUMNS)
    for depth in plan.depths:
        arms = {"recomposed": ({"depth": depth, "learngene": str(learngene), "basis": plan.basis}, plan.epochs),
                "scratch": ({"depth": depth}, plan.epochs),
                "scratch_plus": ({"depth": depth}, plan.epochs + plan.learngene_epochs)}
        for arm, (kwargs, epochs) in arms.items():
            label = f"{arm}_d{depth}"
            summary = train_or_skip(run_config(plan, data_dir, label, DESCENDANT, epochs, kwargs), label)
            rows.append(row(summary, plan, arm, depth, None, epochs))
            write_csv(csv_path, rows, COLUMNS)
    return rows


# ---------------------------------------------------------------- report


def by_arm(rows: list[dict[str, Any]]) -> dict[str, dict[int, dict[str, Any]]]:
    table: dict[str, dict[int, dict[str, Any]]] = {arm: {} for arm in ARMS}
    for r in rows:
        if r["arm"] in table:
            table[r["arm"]][int(r["depth"])] = r
    return table


def markdown_table(rows: list[dict[str, Any]], plan: Plan) -> str:
    table = by_arm(rows)
    learngene_s = sum(float(r["wall_time_s"]) for r in rows if r["arm"] == "learngene")
    lines = [f"| depth | recomposed + {plan.epochs} ep | scratch {plan.epochs} ep | "
             f"scratch {plan.epochs + plan.learngene_epochs} ep (+ learngene's images) | "
             "gain vs scratch | gain vs scratch, same images | wall time: recomposed / scratch / scratch+ (s) |",
             "|---:|---:|---:|---:|---:|---:|---:|"]
    complete = [depth for depth in plan.depths if all(depth in table[arm] for arm in ARMS)]
    for depth in complete:
        cells = [table[arm][depth] for arm in ARMS]
        rec, scr, plus = (float(c["test_top1"]) for c in cells)
        times = " / ".join(f"{float(c['wall_time_s']):.0f}" for c in cells)
        lines.append(f"| {depth} | {rec:.2f} | {scr:.2f} | {plus:.2f} | {rec - scr:+.2f} | {rec - plus:+.2f} | {times} |")
    total_s = sum(float(r["wall_time_s"]) for r in rows)
    device = rows[0]["device_name"] if rows else "?"
    lines += ["", f"Test top-1 (%) on the {plan.test_images}-image balanced test subset, at the best-validation "
              f"epoch. Learngene: {plan.components} stages × {plan.stage_epochs} epoch(s) at depth "
              f"{plan.ancestry_depth}, {learngene_s:.0f} s. All runs: {total_s:.0f} s of wall time on {device}."]
    if complete:
        # The cost of a family of depths: the learngene once plus a short fine-tune each, against training each
        # depth from scratch on as many images.
        recomposed_s = learngene_s + sum(float(table["recomposed"][d]["wall_time_s"]) for d in complete)
        scratch_s = sum(float(table["scratch_plus"][d]["wall_time_s"]) for d in complete)
        lines.append(f"Depths {', '.join(map(str, complete))} together: learngene + fine-tunes {recomposed_s:.0f} s, "
                     f"scratch on the same images {scratch_s:.0f} s ({recomposed_s / scratch_s:.0%}).")
    return "\n".join(lines) + "\n"


def plot(rows: list[dict[str, Any]], plan: Plan) -> list[Path]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from harness.plots import png_bytes

    table = by_arm(rows)
    names = {"recomposed": f"recomposed + {plan.epochs} ep fine-tune", "scratch": f"scratch {plan.epochs} ep",
             "scratch_plus": f"scratch {plan.epochs + plan.learngene_epochs} ep (learngene's images added)"}
    fig, ax = plt.subplots(figsize=(6, 4))
    for arm in ARMS:
        depths = sorted(table[arm])
        ax.plot(depths, [float(table[arm][d]["test_top1"]) for d in depths], marker="o", label=names[arm])
    ax.set(xlabel="encoder depth", ylabel="test top-1 (%)", title="Learngene on Fashion-MNIST: accuracy vs depth")
    ax.set_xticks(list(plan.depths))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    by_depth = Path(plan.plots) / "learngene_accuracy_vs_depth.png"
    write_bytes(by_depth, png_bytes(fig))

    fig, ax = plt.subplots(figsize=(6, 4))
    markers = dict(zip(ARMS, "o^s"))
    for depth in plan.depths:
        points = [(float(table[arm][depth]["total_images"]), float(table[arm][depth]["test_top1"]), arm)
                  for arm in ARMS if depth in table[arm]]
        if not points:
            continue
        line, = ax.plot([p[0] for p in points if p[2] != "recomposed"],
                        [p[1] for p in points if p[2] != "recomposed"], alpha=0.6, label=f"depth {depth} (scratch)")
        for x, y, arm in points:
            ax.scatter([x], [y], marker=markers[arm], color=line.get_color(), edgecolor="black" if arm == "recomposed"
                       else None, s=60 if arm == "recomposed" else 30, zorder=3)
    ax.scatter([], [], marker="o", color="grey", edgecolor="black", s=60, label="recomposed (learngene images counted)")
    ax.set(xlabel="training images processed (learngene + fine-tune for the recomposed arm)",
           ylabel="test top-1 (%)", title="Learngene on Fashion-MNIST: accuracy vs training images")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    by_images = Path(plan.plots) / "learngene_accuracy_vs_images.png"
    write_bytes(by_images, png_bytes(fig))
    return [by_depth, by_images]


def parse_depths(text: str) -> tuple[int, ...]:
    try:
        depths = tuple(dict.fromkeys(int(d) for d in text.split(",") if d.strip()))
    except ValueError:
        raise UsageError(f"--depths takes integers like 2,4,6, got {text!r}") from None
    if not depths or min(depths) < 1:
        raise UsageError(f"--depths needs positive depths, got {text!r}")
    return depths


def main(argv: list[str]) -> int:
    parser = OneLineParser(prog="python -m benchmarks.learngene", description=__doc__.split("\n")[0])
    parser.add_argument("--depths", default="2,4,6,8,12")
    parser.add_argument("--epochs", type=int, default=2, help="fine-tune / from-scratch epochs")
    parser.add_argument("--stage-epochs", type=int, default=1, help="epochs per incremental learngene stage")
    parser.add_argument("--components", type=int, default=3)
    parser.add_argument("--ancestry-depth", type=int, default=6)
    parser.add_argument("--basis", default="chebyshev", choices=("chebyshev", "power", "linear"))
    parser.add_argument("--steps-per-epoch", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--val-fraction", type=float, default=0.01)
    parser.add_argument("--test-images", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--teacher", default="", help="a saved run to distil the learngene from (TLEG's CNN teacher; "
                        "harness/distill.py); the descendants train on labels alone")
    parser.add_argument("--out", default="results/learngene")
    parser.add_argument("--plots", default="plots")
    parser.add_argument("--readme", default="README.md", help="the table goes between its learngene-table markers")
    parser.add_argument("--checkpoint-root", default="checkpoints/learngene",
                        help="last.pt of every run (and the harness's per-run curves)")
    parser.add_argument("--report-only", action="store_true",
                        help="rewrite the table and plots from the CSV of finished runs, training nothing")
    args = parser.parse_args(argv)
    for name in ("epochs", "stage_epochs", "components", "ancestry_depth", "steps_per_epoch", "batch_size"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}")
    plan = Plan(parse_depths(args.depths), args.epochs, args.stage_epochs, args.components, args.ancestry_depth,
                args.basis, args.steps_per_epoch, args.batch_size, args.val_fraction, args.test_images, args.seed,
                args.teacher, Path(args.out), Path(args.plots), Path(args.checkpoint_root))
    readme = Path(args.readme)
    if not readme.is_file():  # checked before the hour of training, not after
        raise UsageError(f"{readme} does not exist: pass --readme=PATH (a file with {' … '.join(README_MARKERS)})")
    replace_between(readme.read_text(encoding="utf-8"), README_MARKERS, "", readme)
    started = time.perf_counter()
    rows = read_csv(plan.out / "learngene.csv") if args.report_only else experiment(plan)
    if not rows:
        raise UsageError(f"--report-only found no {plan.out / 'learngene.csv'}: run the experiment first")
    table = markdown_table(rows, plan)
    write_text(plan.out / "table.md", table)
    write_text(readme, replace_between(readme.read_text(encoding="utf-8"), README_MARKERS, table.rstrip("\n"), readme))
    for path in plot(rows, plan):
        print(f"[learngene] wrote {path}")
    print(table)
    print(f"[learngene] this session: {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(run_command(main))
