"""What the benchmark commands share: model selection, CSV files, and (from harness.cli) the command-line shell
of main.py: bad input is one line and exit 2."""
from __future__ import annotations

import csv
import io
import re
from pathlib import Path
from typing import Any, Iterable

import zoo
from harness.cli import OneLineParser, run_command  # noqa: F401 — the benchmarks' shell
from harness.errors import UsageError
from harness.io import write_text

# The seed project's models (the names of its README, under this zoo's canonical names) and those its
# issues added; the transformer and MLP families under their 32-px variants (patch 4: 64 tokens at
# 32 px, where patch 16 would leave 4), which the 32-px protocols train.
SEED_MODELS = ["lenet5", "alexnet", "vgg11", "nin_cifar", "resnet18", "resnet18_cifar", "densenet40", "googlenet",
               "mobilenetv1_100", "mobilenetv2_100", "inception_v3", "xception", "resnext50_32x4d", "se_resnet18",
               "darknet53", "squeezenet1_0", "shufflenetv1_g3_100", "shufflenetv2_050", "efficientnet_b0",
               "efficientnetv2_s", "vit_base_patch4_32", "vit_tiny_patch4_32", "vit_lite_7_4", "mixer_b_patch4_32",
               "mixer_s_patch4_32", "resmlp_12_patch4_32", "gmlp_s_patch4_32", "gmlp_ti_patch4_32", "nfnet_f0",
               "sdpnet_s", "cct_7_3x1_32", "resnet18_sam"]


def select_models(spec: str) -> list[str]:
    """``all``, names, aliases, shell globs and ``tv:``/``timm:`` names, comma-separated, in the order given."""
    chosen: list[str] = []
    for item in (part.strip() for part in spec.split(",")):
        if not item:
            continue
        if item == "all":
            names = zoo.list_models()
        elif any(ch in item for ch in "*?[") and ":" not in item:
            names = zoo.list_models(item)
            if not names:
                raise UsageError(f"no registered model matches {item!r}: run `python main.py --list-models`")
        else:
            names = [zoo.resolve_name(item)]
        chosen += [n for n in names if n not in chosen]
    if not chosen:
        raise UsageError("no model given: pass --models=NAME[,NAME...], a glob like 'resnet*', or all")
    return chosen


def device_slug(device_name: str) -> str:
    """A device's name as a file-name stem: lower case, trademark signs dropped, runs of other characters as
    one '-', cut after a whole word to 60 characters at most."""
    slug = re.sub(r"[^a-z0-9]+", "-", re.sub(r"\((r|tm)\)", "", device_name.lower())).strip("-")
    if len(slug) <= 60:
        return slug
    cut = slug[:61]  # one past the limit: a word ending exactly at 60 is kept whole
    return cut.rsplit("-", 1)[0] if "-" in cut else slug[:60]


def read_csv(path: str | Path) -> list[dict[str, str]]:
    path = Path(path)
    if not path.is_file():
        return []
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def write_csv(path: str | Path, rows: Iterable[dict[str, Any]], columns: list[str]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text(path, buffer.getvalue())


def dataset_geometry(dataset: str) -> tuple[int, int]:
    """(in_chans, num_classes) a dataset gives a model."""
    from harness.data import NORMALISATION

    if dataset not in NORMALISATION:
        raise UsageError(f"unknown dataset {dataset!r}: choose one of {', '.join(sorted(NORMALISATION))}")
    return len(NORMALISATION[dataset][0]), {"cifar100": 100, "imagenet": 1000}.get(dataset, 10)


def replace_between(text: str, markers: tuple[str, str], body: str, path: Path) -> str:
    """``text`` (the file at ``path``) with what stands between the two marker lines replaced by ``body``."""
    start, end = markers
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    if not pattern.search(text):
        raise UsageError(f"{path} lacks the markers {start} … {end}: add them where the section belongs")
    return pattern.sub(lambda _: f"{start}\n{body}\n{end}", text, count=1)
