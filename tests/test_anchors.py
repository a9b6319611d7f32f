"""benchmarks.anchors on the CPU: the harness-overhead, library-comparison and MFU CSVs are well formed."""
import csv

import pytest

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
