"""benchmarks.anchors on the CPU: the harness-overhead, library-comparison and MFU CSVs are well formed."""
import csv

import pytest
import torch

from benchmarks import anchors
from benchmarks.common import run_command


def rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_anchor_csvs_on_cpu(tmp_path):
    out = tmp_path / "anchors"
    assert run_command(anchors.main, [
        "--device=cpu", "--batch-size=2", "--img-size=32", "--overhead-models=resnet18",
        "--pairs=resnet18=tv:resnet18", "--mfu-models=resnet18", "--warmup=0", "--steps=1", "--repeats=1",
        f"--out-dir={out}"]) == 0
    overhead, = rows(next(out.glob("*_overhead.csv")))
    assert float(overhead["bare_images_per_s"]) > 0 and float(overhead["harness_images_per_s"]) > 0
    assert overhead["device_name"].startswith("CPU") and overhead["precision"] == "fp32"
    pair, = rows(next(out.glob("*_libraries.csv")))
    assert pair["reference"] == "tv:resnet18"
    assert float(pair["ratio"]) == pytest.approx(float(pair["zoo_train_images_per_s"]) /
                                                 float(pair["reference_train_images_per_s"]), rel=2e-2)  # from unrounded rates
    mfu, = rows(next(out.glob("*_mfu.csv")))
    assert float(mfu["forward_gmacs"]) > 0 and mfu["mfu_pct"] == ""  # no peak is known for a CPU


@pytest.mark.parametrize("name,precision,peak", [
    ("NVIDIA H100 80GB HBM3", "bf16", 989.0), ("NVIDIA H100 PCIe", "bf16", 756.0), ("NVIDIA H200", "fp16", 989.0),
    ("NVIDIA A100-SXM4-80GB", "bf16", 312.0), ("NVIDIA H100 80GB HBM3", "fp32", None), ("CPU x", "bf16", None)])
def test_peak_table(name, precision, peak):
    assert anchors.peak_tflops(name, precision) == peak


def test_bad_measurement_name_is_one_line(capsys):
    assert run_command(anchors.main, ["--only=speedup"]) == 2
    assert "--only takes overhead, libraries, mfu" in capsys.readouterr().err


def test_both_sides_of_a_pair_are_built_to_do_the_same_arithmetic(tmp_path, monkeypatch):
    built = []
    monkeypatch.setattr(anchors.speed, "training_step",
                        lambda name, args, device, img_size, **overrides: built.append((name, overrides)) or (lambda: None))
    assert run_command(anchors.main, ["--device=cpu", "--only=libraries", "--warmup=0", "--steps=1", "--repeats=1",
                                      "--pairs=efficientnet_b0=timm:efficientnet_b0,resnet50=tv:resnet50",
                                      f"--out-dir={tmp_path}"]) == 0
    no_dropout = {"drop_rate": 0.0, "drop_path_rate": 0.0}  # the zoo's paper defaults; timm's are off
    assert built == [("efficientnet_b0", no_dropout), ("timm:efficientnet_b0", no_dropout),
                     ("resnet50", {}), ("tv:resnet50", {})]
    effnet, resnet = rows(next(tmp_path.glob("*_libraries.csv")))
    assert effnet["both_built_with"] == "drop_rate=0.0 drop_path_rate=0.0" and resnet["both_built_with"] == "defaults"


def test_a_model_against_itself_reads_level_when_switching_models_costs_a_cold_step(monkeypatch):
    """A fake clock: a step costs 2 s right after the other model ran (cold caches), 1 s otherwise. The A B | B A
    order would time one side cold and the other warm in each round; the untimed step that opens each chunk
    makes every timed step warm on both sides."""
    clock = {"now": 0.0, "last": None}

    def step_of(side):
        def step():
            clock["now"] += 2.0 if clock["last"] not in (None, side) else 1.0
            clock["last"] = side
        return step

    monkeypatch.setattr(anchors.time, "perf_counter", lambda: clock["now"])
    args = type("Args", (), {"warmup": 1, "steps": 2, "repeats": 6})()
    mine, reference = anchors.interleaved_step_times([step_of("A"), step_of("B")], args, torch.device("cpu"))
    assert mine == reference == [1.0] * 6


def test_the_ratio_comes_with_a_bootstrap_interval_around_its_median():
    ratios = [0.97, 0.99, 1.0, 1.01, 1.02, 1.0, 0.98, 1.03, 1.0]
    low, high = anchors.median_interval(ratios)
    assert low <= 1.0 <= high and min(ratios) <= low < high <= max(ratios)
    assert anchors.median_interval(ratios) == (low, high)   # seeded: a CSV's interval can be recomputed
    assert anchors.median_interval([1.02] * 9) == (1.02, 1.02)
