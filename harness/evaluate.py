"""Evaluate a saved model on a dataset the harness reads: python -m harness.evaluate MODEL [--key=value ...]

MODEL is a run folder (its model.safetensors), a .safetensors file written with --model-save, or a
checkpoint (last.pt / best.pt, or their folder). By default the model is evaluated on the test split of the
dataset it was trained on, with the precision (amp), memory layout and batch size its run tested with, so the
top-1 equals the test top-1 the run recorded (on the same kind of device).

Options:
  --dataset=NAME         any dataset of configs/datasets/ with the model's classes and channels (default: the
                         model's own)
  --split=test|val       val: the run's own validation split (its seed and fraction, from the model's spec)
  --data-dir=DIR         where the dataset lies (as for main.py)
  --batch-size=N         (default: the run's)
  --device=auto|cpu|cuda
  --amp=run|off|bf16|fp16, --channels-last=run|true|false   (default run: what the run used)
  --output-dir=DIR       (default: the model's folder)
  --debug                tracebacks instead of one-line errors

Writes eval_<dataset>_<split>.json (top-1, top-5, loss, per-class accuracy, the settings, the recorded
top-1 it is compared with), eval_<dataset>_<split>_per_class.csv, eval_<dataset>_<split>_confusion.csv
and eval_<dataset>_<split>_confusion.png. Exit codes: 0 done; 2 bad input (one line on stderr); 130 interrupted.
"""
from __future__ import annotations

import csv
import io
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

import zoo
from harness.cli import OneLineParser, run_command
from harness.config import build_config
from harness.errors import UsageError
from harness.io import check_writable, safe_filename, write_json, write_text
from harness.fastpath import AMP_DTYPES
from harness.train import autocast, select_device
from zoo.saved import LoadedModel, resolve_path


@dataclass
class Precision:
    """How the forward pass runs: autocast dtype name and memory layout."""
    amp: str
    channels_last: bool

    @classmethod
    def resolve(cls, spec: zoo.ModelSpec, amp: str, channels_last: str) -> "Precision":
        return cls(spec.amp if amp == "run" else amp,
                   spec.channels_last if channels_last == "run" else channels_last == "true")

    def prepare(self, model: torch.nn.Module) -> torch.nn.Module:
        return model.to(memory_format=torch.channels_last if self.channels_last else torch.contiguous_format)

    @torch.no_grad()
    def logits(self, model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(x.device, AMP_DTYPES[self.amp]):
            return model(x)


@dataclass
class Evaluation:
    loss: float
    top1: float
    top5: float
    predictions: torch.Tensor   # (N,) top-1 class per image, in the split's order
    labels: torch.Tensor        # (N,)
    confusion: torch.Tensor     # (classes, classes): row = true class, column = predicted


def evaluate_stream(model, stream, precision: Precision, num_classes: int) -> Evaluation:
    """Metrics summed batch by batch exactly as the training loop's evaluate() sums them, so the numbers
    agree with the run's, plus every top-1 prediction."""
    model.eval()
    device = next(model.parameters()).device
    loss_sum = torch.zeros((), device=device)
    top1 = top5 = 0
    k = min(5, num_classes)
    predictions, labels = [], []
    for x, y in stream.epoch(0):
        logits = precision.logits(model, x)
        loss_sum += F.cross_entropy(logits.float(), y, reduction="sum")
        best = logits.topk(k, dim=1).indices
        top1 += int((best[:, 0] == y).sum())
        top5 += int((best == y[:, None]).any(1).sum())
        predictions.append(best[:, 0].cpu())
        labels.append(y.cpu())
    predicted, truth = torch.cat(predictions), torch.cat(labels)
    n = len(truth)
    confusion = torch.bincount(truth * num_classes + predicted, minlength=num_classes ** 2)
    return Evaluation(loss_sum.double().item() / n, 100.0 * top1 / n, 100.0 * top5 / n, predicted, truth,
                      confusion.view(num_classes, num_classes))


def open_split(loaded: LoadedModel, dataset: str, split: str, batch_size: int, device: torch.device,
               data_dir: str | None, channels_last: bool):
    """The dataset's split as the harness batches it for evaluation, checked against the model."""
    from harness.data import open_data
    spec = loaded.spec
    keys: dict[str, Any] = {"model": spec.model, "dataset": dataset, "recipe": "seed", "seed": spec.seed,
                            "val_fraction": spec.val_fraction, "batch_size": batch_size, "img_size": spec.img_size}
    if data_dir:
        keys["data_dir"] = data_dir
    data = open_data(build_config(keys), spec.img_size, device)
    if (data.num_classes, data.in_chans) != (spec.num_classes, spec.in_chans):
        raise UsageError(f"{dataset} has {data.num_classes} classes of {data.in_chans}-channel images but the model "
                         f"takes {spec.in_chans}-channel images into {spec.num_classes} classes: choose a dataset "
                         f"like {spec.dataset or 'the one it was trained on'}")
    if channels_last:
        data.use_channels_last()
    return data.test if split == "test" else data.val, data.class_names or spec.class_names


def parse(argv: list[str]):
    parser = OneLineParser(prog="python -m harness.evaluate", description=__doc__.split("\n")[0],
                           allow_abbrev=False)
    parser.add_argument("model")
    parser.option("--dataset")
    parser.option("--split", choices=("test", "val"), default="test")
    parser.option("--data-dir")
    parser.option("--batch-size", type=int)
    parser.running_options()
    parser.option("--output-dir")
    args = parser.parse_args(argv)
    if args.batch_size is not None and args.batch_size < 1:
        raise UsageError(f"--batch-size must be positive, got {args.batch_size}")
    return args


def main(argv: list[str]) -> int:
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0
    args = parse(argv)
    source = resolve_path(args.model)
    output_dir = Path(args.output_dir) if args.output_dir else source.parent
    check_writable(output_dir, "output-dir")
    device = select_device(args.device)
    loaded = zoo.load_model(source, device)
    spec = loaded.spec
    precision = Precision.resolve(spec, args.amp, args.channels_last)
    dataset = args.dataset or spec.dataset
    if not dataset:
        raise UsageError(f"{source} does not say which dataset it was trained on: pass --dataset=NAME")
    batch_size = args.batch_size or spec.batch_size
    stream, class_names = open_split(loaded, dataset, args.split, batch_size, device, args.data_dir,
                                     precision.channels_last)
    result = evaluate_stream(precision.prepare(loaded.model), stream, precision, spec.num_classes)
    report = build_report(source, spec, dataset, args.split, batch_size, device, precision, result, class_names)
    paths = write_report(output_dir, f"eval_{safe_filename(dataset)}_{args.split}", report, result, class_names)
    print(f"{spec.model} on {dataset} {args.split} ({len(result.labels)} images): top-1 {result.top1:.2f}%  "
          f"top-5 {result.top5:.2f}%  loss {result.loss:.4f}  [{precision.amp}, "
          f"{'channels_last' if precision.channels_last else 'nchw'}, {device.type}, batch {batch_size}]")
    if report["recorded_test_top1"] is not None:
        verdict = "reproduced" if report["matches_recorded"] else "differs"
        print(f"the run recorded test top-1 {report['recorded_test_top1']:.2f}% for these weights: {verdict}")
    print(f"wrote {', '.join(str(p) for p in paths)}")
    return 0


def build_report(source: Path, spec: zoo.ModelSpec, dataset: str, split: str, batch_size: int,
                 device: torch.device, precision: Precision, result: Evaluation, class_names) -> dict[str, Any]:
    comparable = dataset == spec.dataset and split == "test" and spec.test_top1 is not None
    support = result.confusion.sum(1)
    return {
        "model": spec.model, "source": str(source), "run_id": spec.run_id, "weights": spec.weights,
        "dataset": dataset, "split": split, "images": len(result.labels),
        "top1": result.top1, "top5": result.top5, "loss": result.loss,
        "amp": precision.amp, "channels_last": precision.channels_last, "device": device.type,
        "batch_size": batch_size,
        "recorded_test_top1": spec.test_top1 if comparable else None,
        "matches_recorded": (result.top1 == spec.test_top1) if comparable else None,
        "per_class": [{"class": i, "name": class_names[i] if class_names else str(i), "images": int(support[i]),
                       "top1": 100.0 * int(result.confusion[i, i]) / int(support[i]) if support[i] else None}
                      for i in range(len(support))],
    }


def write_report(folder: Path, stem: str, report: dict[str, Any], result: Evaluation, class_names) -> list[Path]:
    from harness.plots import confusion_figure, save_figure
    names = [row["name"] for row in report["per_class"]]
    per_class, confusion = io.StringIO(), io.StringIO()
    writer = csv.DictWriter(per_class, fieldnames=["class", "name", "images", "top1"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(report["per_class"])
    matrix = csv.writer(confusion, lineterminator="\n")
    matrix.writerow(["true \\ predicted", *names])
    matrix.writerows([name, *row] for name, row in zip(names, result.confusion.tolist()))
    paths = [folder / f"{stem}.json", folder / f"{stem}_per_class.csv", folder / f"{stem}_confusion.csv",
             folder / f"{stem}_confusion.png"]
    write_json(paths[0], report)
    write_text(paths[1], per_class.getvalue())
    write_text(paths[2], confusion.getvalue())
    title = f"{report['model']} on {report['dataset']} {report['split']}: top-1 {report['top1']:.2f}%"
    save_figure(confusion_figure(result.confusion, names, title), paths[3])
    return paths


if __name__ == "__main__":
    sys.exit(run_command(main))
