"""Benchmarks: GMACs that count attention, throughput CSV, resumable sweeps, the README table and plots."""
import csv
import json
import statistics
import sys
import types
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
import yaml

import zoo
from benchmarks import complexity, cost, plots, profile, speed, sweep, table
from benchmarks.collect import collect_runs
from benchmarks.common import device_slug, read_csv

# A CNN, a ViT, a CCT, a Mixer and SdP-Net: (family, preferred model, input size). fvcore also counts norms
# (FlopCounterMode does not), which is why the inputs are large enough for matmuls to dominate.
CROSS_CHECK = {"cnn": ("resnet", "resnet18", 64), "vit": ("vit", "vit_tiny_patch16_224", 64),
               "cct": ("cct", "cct_2_3x2_32", 32), "mixer": ("mlp_mixer", "mixer_s32_224", 64),
               "sdpnet": ("sdpnet", "sdpnet_s", 64)}


@pytest.mark.parametrize("kind", sorted(CROSS_CHECK))
def test_fvcore_with_handles_matches_flop_counter(kind):
    family, preferred, size = CROSS_CHECK[kind]
    in_family = [n for n in zoo.list_models() if zoo.get_model_info(n).family == family]
    if not in_family:
        pytest.skip(f"no {family} model registered yet")
    name = preferred if preferred in in_family else in_family[0]
    model = zoo.create_model(name, num_classes=10, img_size=size).eval()
    x = torch.randn(1, 3, size, size)
    macs, uncounted = complexity.count_macs(model, x)
    assert uncounted == [], f"{name}: fvcore skipped {uncounted}"
    reference = complexity.flop_counter_macs(model, x)
    assert macs == pytest.approx(reference, rel=0.01), (name, macs, reference)


class CrossAttention(nn.Module):
    def forward(self, x):
        q = x[..., :16].reshape(2, 4, 10, 16)
        k = torch.ones(2, 4, 12, 16)
        v = torch.ones(2, 4, 12, 8)
        return F.scaled_dot_product_attention(q, k, v)


def test_attention_handle_counts_qk_and_av_for_any_shape():
    x = torch.randn(2, 4, 10, 16)
    macs, _ = complexity.count_macs(CrossAttention(), x)
    assert macs == 2 * 4 * 10 * 12 * 16 + 2 * 4 * 10 * 12 * 8
    assert macs == complexity.flop_counter_macs(CrossAttention(), x)


def test_same_padding_convolution_is_counted():
    conv = nn.Conv2d(3, 8, 3, padding="same", bias=False)
    macs, uncounted = complexity.count_macs(conv, torch.randn(1, 3, 10, 10))
    assert uncounted == [] and macs == 10 * 10 * 8 * 3 * 9


def test_profile_reads_vit_b16_at_17_58_gmacs_and_resumes_from_its_csv(tmp_path, monkeypatch):
    out = tmp_path / "complexity.csv"
    assert profile.main(["--models=vit_base_patch16_224,resnet18", "--settings=native,mnist28", f"--out={out}"]) == 0
    rows = {(r["model"], r["setting"]): r for r in csv.DictReader(open(out))}
    vit = rows[("vit_base_patch16_224", "native")]
    assert f"{float(vit['gmacs']):.2f}" == "17.58" and vit["params"] == "86567656" and vit["uncounted_ops"] == ""
    assert rows[("resnet18", "native")]["params"] == "11689512"
    assert rows[("vit_base_patch16_224", "mnist28")]["gmacs"] == ""      # 28 px is not a multiple of 16
    assert "not accepted" in rows[("vit_base_patch16_224", "mnist28")]["note"]
    before = out.read_text()

    def must_not_count(*args):
        raise AssertionError("a current row was counted again")

    monkeypatch.setattr(complexity, "profile_model", must_not_count)
    assert profile.main(["--models=vit_base_patch16_224,resnet18", "--settings=native,mnist28", f"--out={out}"]) == 0
    assert out.read_text() == before


def test_speed_on_cpu_writes_a_well_formed_csv(tmp_path):
    out = tmp_path / "speed.csv"
    argv = ["--models=resnet18,vit_tiny_patch16_224", "--device=cpu", "--batch-size=2", "--img-size=32",
            "--num-classes=10", "--warmup=1", "--steps=1", "--repeats=1", f"--out={out}",
            f"--complexity={tmp_path / 'none.csv'}"]
    assert speed.main(argv) == 0
    rows = list(csv.DictReader(open(out)))
    assert [r["model"] for r in rows] == ["resnet18", "vit_tiny_patch16_224"]
    assert list(rows[0])[:len(speed.TIMM_COLUMNS)] == speed.TIMM_COLUMNS
    for row in rows:
        assert float(row["infer_samples_per_sec"]) > 0 and float(row["train_samples_per_sec"]) > 0
        assert row["infer_batch_size"] == "2" and row["train_img_size"] == "32" and row["device"] == "cpu"
        assert row["device_name"].startswith("CPU") and row["torch_version"] == torch.__version__
    assert rows[0]["param_count"] == "11.18"       # resnet18 at 10 classes, in millions as timm writes it


def test_speed_auto_writes_a_row_per_candidate_and_marks_the_fastest(tmp_path, monkeypatch):
    from harness import fastpath
    monkeypatch.setattr(fastpath, "native_bf16_cpu", lambda: True)
    out = tmp_path / "speed.csv"
    argv = ["--models=lenet5", "--device=cpu", "--batch-size=2", "--img-size=32", "--num-classes=10", "--in-chans=1",
            "--warmup=0", "--steps=1", "--repeats=1", "--precision=auto", "--channels-last=auto", "--latency",
            f"--out={out}", f"--complexity={tmp_path / 'none.csv'}"]
    assert speed.main(argv) == 0
    rows = list(csv.DictReader(open(out)))
    assert {(r["precision"], r["channels_last"]) for r in rows} == {
        ("fp32", "False"), ("fp32", "True"), ("bf16", "False"), ("bf16", "True")}
    assert [r["fastest"] for r in rows].count("True") == 1
    fastest = next(r for r in rows if r["fastest"] == "True")
    assert float(fastest["train_samples_per_sec"]) == max(float(r["train_samples_per_sec"]) for r in rows)
    assert all(float(r["latency_bs1_ms"]) > 0 and r["load_1m"] != "" for r in rows)


def test_speed_rejects_bad_input_in_one_line(capsys):
    from benchmarks.common import run_command
    assert run_command(speed.main, ["--models=resnet18", "--precision=fp8"]) == 2
    assert run_command(speed.main, ["--models=no_such_model"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("error: ") for line in err)


# ---------------------------------------------------------------- sweep

PROTOCOL = {"description": "test", "dataset": "digits", "img_size": "dataset",
            "config": {"epochs": 1, "recipe": "seed", "batch_size": 32, "max_steps_per_epoch": 1, "device": "cpu"}}


def test_sweep_skips_finished_runs_and_resumes_interrupted_ones(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "digits_test.yaml").write_text(yaml.safe_dump(PROTOCOL))
    argv = ["--protocol=digits_test.yaml", "--models=resnet18,vit_tiny_patch16_224"]
    assert sweep.main(argv) == 0
    runs = sorted((tmp_path / "results" / "runs").iterdir())
    assert len(runs) == 2
    config = yaml.safe_load((runs[0] / "config.yaml").read_text())
    assert config["protocol"] == "digits_test" and config["checkpoint"] is True
    assert (tmp_path / "checkpoints" / "sweep_digits_test" / "resnet18_digits_s0" / "last.pt").is_file()
    rows = list(csv.DictReader(open(tmp_path / "results" / "complexity.csv")))
    assert {(r["model"], r["img_size"], r["in_chans"]) for r in rows} == {("resnet18", "32", "1"),
                                                                       ("vit_tiny_patch16_224", "32", "1")}
    capsys.readouterr()

    assert sweep.main(argv) == 0
    out = capsys.readouterr().out
    assert out.count("skipped") >= 2 and "2 skipped" in out and "0 trained" in out
    assert len(list((tmp_path / "results" / "runs").iterdir())) == 2

    # An interrupted run has a checkpoint but no completed summary: it resumes instead of starting over.
    vit_run = next(r for r in runs if "vit_tiny" in r.name)
    (vit_run / "summary.json").unlink()
    assert sweep.main(argv) == 0
    out = capsys.readouterr().out
    assert "vit_tiny_patch16_224 seed 0: resuming" in out and "1 trained, 1 skipped" in out
    assert json.loads((vit_run / "summary.json").read_text())["status"] == "completed"


def test_sweep_reports_a_failing_model_and_goes_on(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "p.yaml").write_text(yaml.safe_dump({**PROTOCOL, "config": {**PROTOCOL["config"], "epochs": 1}}))
    import harness.train

    def flaky(cfg):  # stands in for training: one model fails, the other completes
        if cfg.model == "resnet18":
            raise RuntimeError("out of memory (simulated)")
        return {"model": cfg.model}

    monkeypatch.setattr(harness.train, "run", flaky)
    monkeypatch.setattr(sweep, "record_complexity", lambda summary, path: None)
    assert sweep.main(["--protocol=p.yaml", "--models=resnet18,vit_tiny_patch16_224"]) == 1
    captured = capsys.readouterr()
    assert "resnet18 seed 0: FAILED: RuntimeError: out of memory" in captured.err
    assert "1 trained, 0 skipped, 1 failed" in captured.out


def test_sweep_unknown_protocol_is_one_line_exit_2(capsys):
    from benchmarks.common import run_command
    assert run_command(sweep.main, ["--protocol=nope", "--models=resnet18"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: unknown protocol 'nope'") and "fmnist" in err[0]


def test_shipped_protocols_load():
    fmnist, seed, paper = (sweep.load_protocol(n) for n in ("fmnist", "seed", "paper"))
    assert fmnist.dataset == "fashion_mnist" and fmnist.config == {"epochs": 10, "recipe": "paper", "input_size": 32}
    assert seed.dataset == "cifar10" and seed.config["img_size"] == 224 and seed.config["recipe"] == "seed"
    assert paper.img_size == "native" and paper.config["recipe"] == "paper"
    cfg = sweep.run_config(fmnist, "resnet18", 0, "fashion_mnist", {}, "checkpoints")
    assert (cfg.epochs, cfg.recipe, cfg.input_size, cfg.img_size, cfg.protocol) == (10, "paper", 32, None, "fmnist")


# ---------------------------------------------------------------- table and plots


def write_run(results: Path, run_id: str, model: str, seed: int, top1: float, protocol: str = "fmnist",
              max_steps: int = 0, img_size: int = 32):
    folder = results / "runs" / run_id
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(yaml.safe_dump({"model": model, "protocol": protocol, "seed": seed,
                                                        "max_steps_per_epoch": max_steps}))
    (folder / "summary.json").write_text(json.dumps({
        "status": "completed", "run_id": run_id, "model": model, "family": zoo.get_model_info(model).family,
        "dataset": "fashion_mnist", "recipe": "paper", "img_size": img_size, "params": 1_000_000, "epochs": 10,
        "seed": seed, "test_top1_best": top1, "train_images_per_s": 100.0 + seed, "device_name": "CPU test"}))
    (folder / "metrics.csv").write_text("epoch,val_top1\n1,50.0\n2,%.1f\n" % top1)


@pytest.fixture()
def fixture_results(tmp_path):
    results = tmp_path / "results"
    write_run(results, "20250101-000000_resnet18_a", "resnet18", 0, 10.0)        # superseded by the rerun below
    write_run(results, "20250102-000000_resnet18_b", "resnet18", 0, 90.0)
    write_run(results, "20250102-000000_resnet18_c", "resnet18", 1, 92.0)
    write_run(results, "20250102-000000_resnet18_d", "resnet18", 2, 94.0)
    write_run(results, "20250102-000000_vit_e", "vit_tiny_patch16_224", 0, 80.0)
    write_run(results, "20250102-000000_vit_f", "vit_tiny_patch16_224", 1, 70.0, max_steps=3)  # smoke run: ignored
    write_run(results, "20250102-000000_vit_g", "vit_tiny_patch16_224", 2, 60.0, protocol="")  # main.py run: ignored
    with open(results / "complexity.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=profile.COLUMNS)
        writer.writeheader()
        writer.writerow({"model": "resnet18", "setting": "native", "img_size": 224, "in_chans": 3,
                         "num_classes": 1000, "params": 11689512, "gmacs": 1.819, "code_hash": "x"})
        writer.writerow({"model": "resnet18", "setting": "fmnist", "img_size": 32, "in_chans": 1,
                         "num_classes": 10, "params": 11175370, "gmacs": 0.0355, "code_hash": "x"})
        writer.writerow({"model": "vit_tiny_patch16_224", "setting": "fmnist", "img_size": 32, "in_chans": 1,
                         "num_classes": 10, "params": 5391178, "gmacs": 0.027, "code_hash": "x"})
        # The model list's parameter counts come from the repository's native rows, but for AlexNet's, which
        # the table counts itself (counting all 120 took 20 s).
        for row in read_csv(Path(__file__).parent.parent / profile.DEFAULT_OUT):
            if row["setting"] == "native" and row["model"] not in ("alexnet", "resnet18", "vit_tiny_patch16_224"):
                writer.writerow(row)
    (results / "speed").mkdir()
    with open(results / "speed" / "gpu.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=speed.COLUMNS)
        writer.writeheader()
        writer.writerow({"model": "resnet18", "infer_samples_per_sec": 5000.0, "train_samples_per_sec": 1500.0,
                         "infer_batch_size": 256, "train_batch_size": 256, "infer_img_size": 224,
                         "train_img_size": 224, "device": "cuda",
                         "device_name": "Test GPU 80GB", "precision": "bf16", "channels_last": True, "compile": False})
    with open(results / "speed" / "cpu.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=speed.COLUMNS)
        writer.writeheader()
        for precision, layout, rate, latency in (("fp32", False, 900.0, 5.0), ("bf16", True, 800.0, 4.2)):
            writer.writerow({"model": "resnet18", "infer_samples_per_sec": rate, "infer_batch_size": 32,
                             "infer_img_size": 224, "latency_bs1_ms": latency, "device": "cpu",
                             "device_name": "CPU Test Xeon (2 threads)", "precision": precision,
                             "channels_last": layout, "load_1m": 3.5, "measure_s": 10})
        for precision, layout, rate in (("fp32", False, 100.0), ("fp32", True, 150.0), ("bf16", False, 120.0),
                                        ("bf16", True, 250.0)):
            writer.writerow({"model": "lenet5", "train_samples_per_sec": rate, "train_batch_size": 64,
                             "train_img_size": 32, "in_chans": 1, "device": "cpu",
                             "device_name": "CPU Test Xeon (2 threads)", "precision": precision,
                             "channels_last": layout, "load_1m": 2.1, "measure_s": 5})
    readme = tmp_path / "README.md"
    readme.write_text("# title\n\n" + "\n".join(table.TABLE_MARKERS) + "\n\ntext\n\n" +
                      "\n".join(table.MODEL_LIST_MARKERS) + "\n\nend\n")
    return tmp_path


def table_rows(text: str) -> dict[str, list[str]]:
    rows = {}
    for line in text.splitlines():
        if line.startswith("| `"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            rows.setdefault(cells[0].strip("`"), cells)
    return rows


@pytest.mark.slow  # draws every plot
def test_table_aggregates_seeds_marks_missing_and_is_idempotent(fixture_results):
    readme, results = fixture_results / "README.md", fixture_results / "results"
    argv = [f"--results-dir={results}", f"--readme={readme}", f"--plots-dir={fixture_results / 'plots'}"]
    assert table.main(argv) == 0
    first = readme.read_text()
    assert table.main(argv) == 0
    assert readme.read_text() == first
    assert first.startswith("# title") and first.rstrip().endswith("end") and "\ntext\n" in first

    benchmark = first.split(table.TABLE_MARKERS[0])[1].split(table.TABLE_MARKERS[1])[0]
    header = next(line for line in benchmark.splitlines() if line.startswith("| model"))
    columns = [c.strip() for c in header.strip("|").split("|")]
    assert "top-1 % fashion_mnist · fmnist (10 ep, paper recipe)" in columns
    rows = table_rows(benchmark)
    resnet = dict(zip(columns, rows["resnet18"]))
    expected = f"{statistics.fmean([90, 92, 94]):.2f} ± {statistics.stdev([90, 92, 94]):.2f} (3)"
    assert resnet["top-1 % fashion_mnist · fmnist (10 ep, paper recipe)"] == expected == "92.00 ± 2.00 (3)"
    assert resnet["GMACs @ fashion_mnist input"] == "0.0355 @32px"
    assert resnet["params (M)"] == "11.69" and resnet["GMACs @ native size"] == "1.82"
    assert resnet["train img/s ²"] == "1500" and resnet["infer img/s ²"] == "5000"
    assert resnet["CPU infer ms, batch 1 ¹"] == "4.2 (bf16·CL)" and resnet["CPU infer img/s, batch 32 ¹"] == "900 (fp32)"
    assert resnet["paper ImageNet top-1 %"] == "72.1" and resnet["seed README CIFAR-10 top-1 % ³"] == "74.90"
    vit = dict(zip(columns, rows["vit_tiny_patch16_224"]))
    assert vit["top-1 % fashion_mnist · fmnist (10 ep, paper recipe)"] == "80.00 (1)"
    assert vit["train img/s ²"] == "—" and vit["params (M)"] == "—" and vit["CPU infer ms, batch 1 ¹"] == "—"
    alexnet = dict(zip(columns, rows["alexnet"]))
    assert alexnet["top-1 % fashion_mnist · fmnist (10 ep, paper recipe)"] == "—"
    assert "Test GPU 80GB, bf16, batch 256, channels_last" in benchmark
    assert "![fashion_mnist · fmnist (10 ep, paper recipe): top-1 against GMACs](plots/compare_fashion_mnist_fmnist_10ep_paper_top1_vs_gmacs.png)" in benchmark
    assert "on CPU Test Xeon (2 threads)" in benchmark and "1 of " in benchmark and "load average up to 3.5" in benchmark
    # The whole column's cost: the prior rescaled to the 4 runs of "CPU test", over the 2 models that have GMACs.
    prior = cost.rescaled(cost.CPU_PRIOR, [(0.0355, 100.0), (0.0355, 101.0), (0.0355, 102.0), (0.027, 100.0)])
    work = cost.Workload.of_run("fashion_mnist", 10, 0.1)
    hours = sum(cost.estimate_seconds(work, prior.train_images_per_s(g)) for g in (0.0355, 0.027)) / 3600
    assert ("fmnist (10 ep, paper recipe): 2 of" in benchmark and f"would take about {hours:.0f} h on CPU test at "
            "the benchmarks/cost.py prior rescaled to its 4 runs" in benchmark)
    assert "python -m benchmarks.sweep --protocol=fmnist --models=MODEL --seeds=0,1,2" in benchmark
    assert "| `lenet5` | 100 | 150 | 120 | 250 | bf16·CL | 2.50 |" in benchmark   # the CPU fast-path table
    assert "at 32 px, batch 64, 1 channel, on CPU Test Xeon (2 threads)" in benchmark
    assert "nothing else ran while measuring (1-minute load average at most 2.1" in benchmark

    models = first.split(table.MODEL_LIST_MARKERS[0])[1].split(table.MODEL_LIST_MARKERS[1])[0]
    listed = table_rows(models)
    assert set(listed) == set(zoo.list_models())
    assert listed["resnet18"][3] == "11.69" and listed["alexnet"][3] == "60.97"   # from the CSV / counted

    for kind in ("top1_vs_gmacs", "top1_vs_params", "top1_vs_throughput", "val_curves"):
        path = fixture_results / "plots" / f"compare_fashion_mnist_fmnist_10ep_paper_{kind}.png"
        assert path.stat().st_size > 5000, kind


def test_collect_keeps_the_latest_run_per_seed(fixture_results):
    groups = collect_runs(str(fixture_results / "results"))
    (group, results), = groups.items()
    assert results["resnet18"].seeds == [0, 1, 2] and results["resnet18"].top1 == [90.0, 92.0, 94.0]
    assert results["vit_tiny_patch16_224"].seeds == [0]


def test_a_run_at_chance_is_marked_and_explained(fixture_results):
    results = fixture_results / "results"
    write_run(results, "20250103-000000_nin_h", "nin_cifar", 0, 10.0)    # ln(10) loss throughout: never learned
    write_run(results, "20250103-000000_lenet_i", "lenet5", 0, 11.5)     # a point and a half above: it learned
    text = table.benchmark_table(read_csv(results / "complexity.csv"), None, collect_runs(str(results)))
    rows = table_rows(text)
    assert "10.00 (1) †" in rows["nin_cifar"] and "11.50 (1)" in rows["lenet5"] and "92.00 ± 2.00 (3)" in rows["resnet18"]
    assert "† At chance (100 % / classes, within a point)" in text
    write_run(fixture_results / "fine", "20250103-000000_lenet_j", "lenet5", 0, 90.0)
    assert "†" not in table.benchmark_table([], None, collect_runs(str(fixture_results / "fine")))


def test_the_comparison_plots_leave_runs_at_chance_out_and_name_them(fixture_results, monkeypatch):
    results = fixture_results / "results"
    write_run(results, "20250103-000000_nin_h", "nin_cifar", 0, 10.0)
    drawn = []
    monkeypatch.setattr(plots, "scatter", lambda points, families, title, *a, **k: drawn.append((set(points), title)))
    monkeypatch.setattr(plots, "validation_curves", lambda results, title, path: drawn.append((set(results), title)))
    plots.comparison_plots(collect_runs(str(results)), read_csv(results / "complexity.csv"), str(fixture_results))
    assert len(drawn) == 4
    for names, title in drawn:
        assert "nin_cifar" not in names and "resnet18" in names and title.endswith("; not shown, at chance: nin_cifar")


def test_device_slugs_are_whole_words_without_trademark_signs():
    assert device_slug("CPU Intel(R) Xeon(R) Processor (AMX-BF16, 2 threads)") == "cpu-intel-xeon-processor-amx-bf16-2-threads"
    assert device_slug("NVIDIA H100 80GB HBM3") == "nvidia-h100-80gb-hbm3"
    long = device_slug("word " * 20)
    assert len(long) <= 60 and long.endswith("-word")


def test_pareto_front():
    from benchmarks.plots import pareto_front
    points = [(1.0, 50.0), (2.0, 70.0), (3.0, 60.0), (4.0, 80.0)]
    assert pareto_front(points, lower_x_better=True) == [(1.0, 50.0), (2.0, 70.0), (4.0, 80.0)]
    assert pareto_front(points, lower_x_better=False) == [(4.0, 80.0)]


def test_table_without_markers_is_a_usage_error(tmp_path, capsys):
    from benchmarks.common import run_command
    (tmp_path / "README.md").write_text("# no markers\n")
    argv = [f"--results-dir={tmp_path}", f"--readme={tmp_path / 'README.md'}", "--no-plots"]
    assert run_command(table.main, argv) == 2
    assert "lacks the markers" in capsys.readouterr().err


# ---------------------------------------------------------------- torchvision / timm models


def test_torchvision_models_go_through_the_registry():
    info = zoo.get_model_info("tv:resnet18")
    assert info.family == "torchvision" and info.native_size == 224 and info.min_size == 32
    model = zoo.create_model("tv:resnet18", num_classes=10, in_chans=1, img_size=32)
    assert model(torch.randn(2, 1, 32, 32)).shape == (2, 10)
    assert model.conv1.in_channels == 1
    with pytest.raises(zoo.ModelConfigError, match="did you mean tv:resnet50"):
        zoo.resolve_name("tv:resnet5")


def test_timm_models_need_timm_and_use_it_when_present(monkeypatch):
    monkeypatch.setitem(sys.modules, "timm", None)   # as if timm were not installed
    from zoo import external
    external.info.cache_clear()
    with pytest.raises(zoo.ModelConfigError, match="pip install timm"):
        zoo.create_model("timm:resnet18")
    calls = []
    fake = types.SimpleNamespace(list_models=lambda: ["tiny_net"],
                                 create_model=lambda name, **kw: calls.append((name, kw)) or nn.Linear(1, 1))
    monkeypatch.setitem(sys.modules, "timm", fake)
    external.info.cache_clear()
    zoo.create_model("timm:tiny_net", num_classes=7, in_chans=1, img_size=64)
    assert calls == [("tiny_net", {"pretrained": False, "num_classes": 7, "in_chans": 1, "img_size": 64})]
    external.info.cache_clear()
