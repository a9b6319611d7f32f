"""benchmarks.campaign: the GPU window's plan (sized on a CPU) and a real CPU run of its first items."""
import csv
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmarks import campaign, cost
from benchmarks.common import SEED_MODELS

REPO = Path(__file__).resolve().parents[1]


def settings(tmp_path, device="cuda", budget_s=540.0, parallel=4, prior=None) -> campaign.Settings:
    prior = prior or cost.Throughput(campaign.GPU_TFLOPS, campaign.GPU_OVERHEAD_S)
    made = campaign.Settings(device, budget_s, prior, parallel, 512, str(tmp_path / "results"),
                             str(tmp_path / "plots"), str(tmp_path / "checkpoints"))
    campaign.seed_complexity(made)
    return made


def item(name, seconds, parallel=False) -> campaign.Item:
    return campaign.Item(name, "seed" if parallel else "anchors", ["benchmarks.none"], seconds, parallel)


def test_schedule_runs_exclusive_items_alone_then_fills_parallel_slots(tmp_path):
    plan = [item("a", 100), item("b", 200), item("p1", 60, True), item("p2", 60, True), item("p3", 60, True),
            item("big", 500, True), item("p4", 10, True)]
    starts = dict((i.name, s) for i, s in campaign.schedule(plan, settings(tmp_path, budget_s=440, parallel=2)))
    assert starts["a"] == 0 and starts["b"] == 100          # one after the other
    assert starts["p1"] == starts["p2"] == 300                # two slots from the end of the exclusive items
    assert starts["p3"] == 360
    assert starts["big"] is None                              # would end past budget − grace
    assert starts["p4"] == 360                                # a later item that fits still runs


def test_schedule_never_plans_past_the_budget_less_the_grace(tmp_path):
    made = settings(tmp_path, budget_s=300, parallel=3)
    plan = [item(f"x{i}", 37.0 + i, parallel=i % 3 != 0) for i in range(20)]
    for planned, start in campaign.schedule(plan, made):
        if start is not None:
            assert start + planned.estimate_s <= made.budget_s - campaign.GRACE_S


def test_gpu_plan_fits_the_first_priorities_into_540_s(tmp_path):
    """The Done of the issue: at the stated 150 TFLOP/s, the anchors, time-to-accuracy and a first set of
    seed models fit the 540-s window, in that order."""
    made = settings(tmp_path)
    scheduled = campaign.schedule(campaign.plan(made, models=SEED_MODELS), made)
    groups = [(i.group, s) for i, s in scheduled]
    assert [g for g, _ in groups[:4]] == ["anchors", "anchors", "anchors", "tta"]
    assert all(s is not None for _, s in groups[:4])
    fitted_seed = [i.name for i, s in scheduled if i.group == "seed" and s is not None]
    assert len(fitted_seed) >= 8
    text = campaign.format_plan(scheduled, made)
    assert "150 TFLOP/s" in text and "does not fit" in text


def test_gpu_sweep_items_scale_the_batch_and_its_lr_and_pick_the_layout(tmp_path):
    made = settings(tmp_path)
    items = {i.name: i.argv for i in campaign.sweep_items(
        "fmnist", ["xception", "mobilenetv2_100", "vit_tiny_patch4_32"], "seed", made)}
    xception = items["fmnist: xception"]        # its recipe gives an lr for the harness's batch of 128
    assert "--batch-size=512" in xception and "--lr-reference-batch=128" in xception
    assert "--amp=bf16" in xception and "--channels-last=true" in xception
    mobilenet = items["fmnist: mobilenetv2_100"]  # its recipe names the lr's batch (96) already
    assert "--batch-size=512" in mobilenet and not any(a.startswith("--lr-reference-batch=") for a in mobilenet)
    assert "--channels-last=false" in items["fmnist: vit_tiny_patch4_32"]
    assert all(a.startswith(("benchmarks.sweep", "--")) for a in xception)
    assert "--assume-tflops=150" in xception   # the sweep judges its budget at the campaign's assumption


def test_cpu_sweep_items_are_the_cpu_sweeps_own_runs(tmp_path):
    made = settings(tmp_path, device="cpu", parallel=1, prior=cost.CPU_PRIOR)
    (only,) = campaign.sweep_items("fmnist", ["lenet5"], "seed", made)
    assert not any(a.startswith(("--batch-size", "--amp", "--channels-last", "--lr-reference")) for a in only.argv)


def test_without_fashion_mnist_the_campaign_says_where_to_put_it(tmp_path, monkeypatch):
    import harness.data

    made = settings(tmp_path)
    assert campaign.fmnist_problem(made) is None   # Debian's dataset-fashion-mnist, as CI installs it
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(harness.data, "FASHION_MNIST_SYSTEM_DIR", tmp_path / "nowhere")
    problem = campaign.fmnist_problem(made)
    assert problem and "data/FashionMNIST/raw" in problem and "train-images-idx3-ubyte.gz" in problem


def test_bad_budget_is_one_line_and_exit_2(capsys):
    from benchmarks.common import run_command

    assert run_command(campaign.main, ["--budget-s=-5"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--budget-s" in err[0]


@pytest.mark.slow
def test_cpu_campaign_runs_its_first_items_within_its_budget(tmp_path):
    """The real thing on a CPU, 60 s, its sweep items limited to two models (planning the whole zoo's builds a
    config per model: 10 s more). The first anchor items run and write their CSV, the log says what ran, and the
    whole command ends within its budget (plus the interpreter's own start)."""
    began = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.campaign", "--device=cpu", "--budget-s=60", "--models=lenet5,resnet18",
         f"--results-dir={tmp_path / 'results'}", f"--plots-dir={tmp_path / 'plots'}",
         f"--checkpoint-root={tmp_path / 'checkpoints'}"],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    wall = time.monotonic() - began
    assert done.returncode == 0, done.stderr[-2000:]
    assert wall < 60 + 15
    (log_path,) = (tmp_path / "results" / "campaign").glob("*.csv")
    log = list(csv.DictReader(log_path.open()))
    outcomes = {row["item"]: row["outcome"] for row in log}
    assert outcomes["anchors: overhead (ResNet-50)"] == "done"
    assert any(row["outcome"] in ("does not fit the budget", "skipped: does not fit the time left",
                                  "interrupted at the budget") for row in log)
    (overhead,) = (tmp_path / "results" / "anchors").glob("*_overhead.csv")
    rows = list(csv.DictReader(overhead.open()))
    assert rows and float(rows[0]["harness_images_per_s"]) > 0
