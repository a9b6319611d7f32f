"""Parameters and GMACs of every model: python -m benchmarks.profile [--models=all] [--force]

Each model is counted (benchmarks.complexity: fvcore plus handles for attention and the other ops fvcore
skips) on the uncompiled model in eval mode, batch 1, at these inputs:

  native   its native size, 3 channels, 1000 classes (the paper's ImageNet setting)
  cifar32  32 px, 3 channels, 10 classes (CIFAR)               where the model accepts 32 px
  mnist28  28 px, 1 channel, 10 classes (MNIST, Fashion-MNIST)  where the model accepts 28 px
  fmnist   32 px raised to the model's minimum, 1 channel, 10 classes (the fmnist sweep protocol)

Rows go to results/complexity.csv, rewritten atomically after every model, so an interrupted profile
loses nothing. A row is kept as long as the source it was counted from is unchanged (``code_hash``: the
model's family file, zoo/layers and the counting code), so a rerun counts only new or changed models;
``--force`` recounts everything selected. GMACs: one multiply-accumulate = 1.
"""
from __future__ import annotations

import hashlib
import inspect
import sys
import time
import warnings
from pathlib import Path

import zoo
from benchmarks import complexity
from benchmarks.common import OneLineParser, read_csv, run_command, select_models, write_csv

COLUMNS = ["model", "setting", "img_size", "in_chans", "num_classes", "params", "gmacs", "uncounted_ops",
           "note", "code_hash"]
SETTINGS = ("native", "cifar32", "mnist28", "fmnist")
DEFAULT_OUT = "results/complexity.csv"
_ZOO_DIR = Path(zoo.__file__).resolve().parent


def setting_input(setting: str, info: zoo.ModelInfo) -> tuple[int, int, int]:
    """(img_size, in_chans, num_classes) of a setting for this model."""
    return {"native": (info.native_size, 3, 1000), "cifar32": (32, 3, 10), "mnist28": (28, 1, 10),
            "fmnist": (max(32, info.min_size), 1, 10)}[setting]


def code_hash(name: str) -> str:
    """Fingerprint of the source a count depends on: the model's file, the shared layers, the counter."""
    info = zoo.get_model_info(name)
    digest = hashlib.sha256()
    if info.family in ("torchvision", "timm"):
        digest.update(f"{info.family} {info.paper}".encode())
    else:
        files = [Path(inspect.getsourcefile(info.builder))] + sorted((_ZOO_DIR / "layers").glob("*.py"))
        for path in files:
            digest.update(path.read_bytes())
    digest.update(Path(complexity.__file__).read_bytes())
    return digest.hexdigest()[:12]


def row_key(row: dict) -> tuple[str, int, int, int]:
    return row["model"], int(row["img_size"]), int(row["in_chans"]), int(row["num_classes"])


def profile_row(name: str, setting: str, img_size: int, in_chans: int, num_classes: int, fingerprint: str) -> dict:
    row = {"model": name, "setting": setting, "img_size": img_size, "in_chans": in_chans,
           "num_classes": num_classes, "params": "", "gmacs": "", "uncounted_ops": "", "note": "",
           "code_hash": fingerprint}
    try:
        with warnings.catch_warnings():  # fvcore's first import warns that torch.jit.script is deprecated
            warnings.simplefilter("ignore", FutureWarning)
            row.update(complexity.profile_model(name, img_size, in_chans, num_classes))
    except zoo.ModelConfigError as err:
        row["note"] = f"not accepted: {err}".replace("\n", " ")
    return row


def ensure_rows(wanted: list[tuple[str, str, int, int, int]], out: str = DEFAULT_OUT, force: bool = False,
                verbose: bool = True) -> list[dict]:
    """Count each (model, setting, img_size, in_chans, num_classes) not already in ``out`` with a current hash."""
    rows = {row_key(r): r for r in read_csv(out)}
    hashes: dict[str, str] = {}
    for name, setting, img_size, in_chans, num_classes in wanted:
        fingerprint = hashes.setdefault(name, code_hash(name))
        key = (name, img_size, in_chans, num_classes)
        cached = rows.get(key)
        if cached and cached["code_hash"] == fingerprint and not force:
            continue
        start = time.perf_counter()
        row = profile_row(name, setting, img_size, in_chans, num_classes, fingerprint)
        rows[key] = row
        write_csv(out, sorted_rows(rows.values()), COLUMNS)
        if verbose:
            counted = f"{row['params']:,} params, {row['gmacs']} GMACs" if row["gmacs"] != "" else row["note"]
            print(f"{name:32} {setting:8} {img_size:>4}px {in_chans}ch: {counted} "
                  f"({time.perf_counter() - start:.1f}s)", flush=True)
    return sorted_rows(rows.values())


def sorted_rows(rows) -> list[dict]:
    order = {s: i for i, s in enumerate(SETTINGS)}
    return sorted(rows, key=lambda r: (r["model"], order.get(r["setting"], len(order)), int(r["img_size"]),
                                       int(r["in_chans"]), int(r["num_classes"])))


def wanted_inputs(names: list[str], settings: list[str]) -> list[tuple[str, str, int, int, int]]:
    wanted = []
    for name in names:
        info = zoo.get_model_info(name)
        seen = set()
        for setting in settings:
            size, chans, classes = setting_input(setting, info)
            if (size, chans, classes) not in seen:
                seen.add((size, chans, classes))
                wanted.append((name, setting, size, chans, classes))
    return wanted


def lookup(rows: list[dict], model: str, img_size: int, in_chans: int, num_classes: int) -> dict | None:
    """The counted row for exactly this input, or None."""
    for row in rows:
        if row_key(row) == (model, img_size, in_chans, num_classes) and row["gmacs"] != "":
            return row
    return None


def main(argv: list[str]) -> int:
    parser = OneLineParser(prog="python -m benchmarks.profile", description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="all", help="names, aliases, globs, tv:NAME, timm:NAME or all")
    parser.add_argument("--settings", default=",".join(SETTINGS), help=f"comma-separated of {', '.join(SETTINGS)}")
    parser.add_argument("--out", default=DEFAULT_OUT)
    parser.add_argument("--force", action="store_true", help="recount even where a current row exists")
    args = parser.parse_args(argv)
    settings = [s.strip() for s in args.settings.split(",") if s.strip()]
    unknown = sorted(set(settings) - set(SETTINGS))
    if unknown:
        parser.error(f"unknown setting(s) {', '.join(unknown)}: choose from {', '.join(SETTINGS)}")
    ensure_rows(wanted_inputs(select_models(args.models), settings), args.out, args.force)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(run_command(main))
