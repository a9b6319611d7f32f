"""Classify images with a saved model: python -m harness.predict MODEL IMAGE_OR_FOLDER [...] [--key=value ...]

MODEL is a run folder, a .safetensors file written with --model-save, or a checkpoint (as for
harness.evaluate). Each image goes through the model's own preprocessing (``zoo.load_model``: channels,
resize, normalisation) and the same precision and memory layout its run tested with. A folder contributes
every image file under it (sorted, sub-folders included).

Options:
  --top-k=N              classes per image (default 5, at most the number of classes)
  --output=FILE.csv      (default: predictions.csv in the model's folder): columns image, rank, class, name,
                         probability
  --batch-size=N         images per forward pass (default 64)
  --device=auto|cpu|cuda
  --amp=run|off|bf16|fp16, --channels-last=run|true|false   (default run: what the run used)
  --debug                tracebacks instead of one-line errors

Every image is read before anything is written; an unreadable one is a one-line error (exit 2).
"""
from __future__ import annotations

import csv
import io
import sys
from pathlib import Path

import torch

import zoo
from harness.cli import OneLineParser, run_command
from harness.errors import UsageError
from harness.evaluate import Precision
from harness.io import check_writable, write_text
from harness.train import select_device
from zoo.saved import resolve_path

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}


def image_files(inputs: list[str]) -> list[Path]:
    files = []
    for name in inputs:
        path = Path(name)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise UsageError(f"folder {path} holds no image files ({', '.join(sorted(IMAGE_SUFFIXES))})")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise UsageError(f"{path} does not exist: pass image files or folders of images")
    return files


def read_image(path: Path, in_chans: int):
    """The image as PIL in the model's colour mode (greyscale for one channel, RGB otherwise)."""
    from PIL import Image, UnidentifiedImageError
    try:
        with Image.open(path) as image:
            image.load()
            return image.convert("L" if in_chans == 1 else "RGB")
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as err:
        raise UsageError(f"{path} is not an image that can be read ({str(err).splitlines()[0][:80]}): "
                         f"remove it or pass other files") from None


@torch.no_grad()
def top_k(loaded: zoo.LoadedModel, images: list, k: int, precision: Precision, batch_size: int,
          device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(probabilities, class indices), each (N, k), best first."""
    model = precision.prepare(loaded.model)
    probs, classes = [], []
    for start in range(0, len(images), batch_size):
        x = torch.stack([loaded.preprocess(image) for image in images[start:start + batch_size]]).to(device)
        p, c = precision.logits(model, x).float().softmax(1).topk(k, dim=1)
        probs.append(p.cpu())
        classes.append(c.cpu())
    return torch.cat(probs), torch.cat(classes)


def parse(argv: list[str]):
    parser = OneLineParser(prog="python -m harness.predict", description=__doc__.split("\n")[0], allow_abbrev=False)
    parser.add_argument("model")
    parser.add_argument("images", nargs="+")
    parser.option("--top-k", type=int, default=5)
    parser.option("--output")
    parser.option("--batch-size", type=int, default=64)
    parser.running_options()
    args = parser.parse_args(argv)
    for name in ("top_k", "batch_size"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}")
    return args


def main(argv: list[str]) -> int:
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0
    args = parse(argv)
    source = resolve_path(args.model)
    output = Path(args.output) if args.output else source.parent / "predictions.csv"
    if output.suffix.lower() != ".csv" or output.is_dir():
        raise UsageError(f"--output={output} must name a .csv file")
    check_writable(output.parent, "output")
    files = image_files(args.images)
    device = select_device(args.device)
    loaded = zoo.load_model(source, device)
    spec = loaded.spec
    images = [read_image(path, spec.in_chans) for path in files]
    k = min(args.top_k, spec.num_classes)
    precision = Precision.resolve(spec, args.amp, args.channels_last)
    probs, classes = top_k(loaded, images, k, precision, args.batch_size, device)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["image", "rank", "class", "name", "probability"])
    for path, p_row, c_row in zip(files, probs.tolist(), classes.tolist()):
        writer.writerows([str(path), rank + 1, c, spec.class_name(c), f"{p:.6f}"]
                         for rank, (p, c) in enumerate(zip(p_row, c_row)))
        print(f"{path}: " + ", ".join(f"{spec.class_name(c)} {100 * p:.1f}%" for p, c in zip(p_row, c_row)))
    write_text(output, buffer.getvalue())
    print(f"wrote {output}")
    return 0


if __name__ == "__main__":
    sys.exit(run_command(main))
