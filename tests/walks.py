"""The model walks' quick share: one model per family, its smallest, runs in the quick suite
(`python -m pytest -q -m "not slow"`); every other model of the walk is marked slow, so the full suite
still walks them all."""
import csv
from pathlib import Path

import pytest

import zoo

COMPLEXITY = Path(__file__).resolve().parents[1] / "results" / "complexity.csv"


def _native_params() -> dict[str, int]:
    with COMPLEXITY.open(newline="", encoding="utf-8") as handle:
        return {r["model"]: int(r["params"]) for r in csv.DictReader(handle)
                if r["setting"] == "native" and r["params"]}


def one_per_family(names: list[str]) -> set[str]:
    """Each family's model with the fewest parameters at its native size (a model not yet counted last)."""
    params = _native_params()
    smallest: dict[str, str] = {}
    for name in names:
        family = zoo.get_model_info(name).family
        best = smallest.get(family)
        if best is None or params.get(name, 1 << 62) < params.get(best, 1 << 62):
            smallest[family] = name
    return set(smallest.values())


def walk(names: list[str]) -> list:
    quick = one_per_family(names)
    return [pytest.param(n, marks=() if n in quick else pytest.mark.slow) for n in names]
