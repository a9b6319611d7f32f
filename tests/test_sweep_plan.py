"""The sweep knows its cost: a plan printed first, cheapest first, and a budget that stops it cleanly."""
import time

import pytest
import yaml

from benchmarks import cost, sweep

PROTOCOL = {"description": "test", "dataset": "digits", "img_size": "dataset",
            "config": {"epochs": 1, "recipe": "seed", "batch_size": 32, "max_steps_per_epoch": 1, "device": "cpu"}}
MODELS = "--models=resnet18_cifar,lenet5,resnet18"   # 0.56, 0.0006 and 0.036 GMACs at 32 px


@pytest.fixture
def protocol_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(PROTOCOL))
    return "--protocol=p.yaml"


def plan_lines(out: str) -> list[str]:
    return [line for line in out.splitlines() if line[:3].strip().isdigit()]


def test_the_plan_is_printed_cheapest_first_and_plan_only_trains_nothing(protocol_file, tmp_path, capsys):
    assert sweep.main([protocol_file, MODELS, "--plan-only"]) == 0
    lines = plan_lines(capsys.readouterr().out)
    assert [line.split()[1] for line in lines] == ["lenet5", "resnet18", "resnet18_cifar"]
    assert all("prior" in line for line in lines)
    assert not (tmp_path / "results" / "runs").exists()


def test_order_given_keeps_the_order_of_models(protocol_file, capsys):
    assert sweep.main([protocol_file, MODELS, "--plan-only", "--order=given"]) == 0
    assert [line.split()[1] for line in plan_lines(capsys.readouterr().out)] == ["resnet18_cifar", "lenet5",
                                                                              "resnet18"]


def test_a_run_that_does_not_fit_the_budget_is_not_started(protocol_file, monkeypatch, capsys):
    import harness.train

    trained = []
    monkeypatch.setattr(harness.train, "run", lambda cfg: trained.append(cfg.model) or {"model": cfg.model})
    monkeypatch.setattr(sweep, "record_complexity", lambda summary, path: None)
    # Priced so that the first (cheapest) run fits an 11-second budget and the other two do not.
    monkeypatch.setattr(cost.Throughput, "train_images_per_s", lambda self, gmacs: 1e6 if gmacs < 0.01 else 1.0)
    assert sweep.main([protocol_file, MODELS, f"--budget-hours={11 / 3600}"]) == 0
    out = capsys.readouterr().out
    assert trained == ["lenet5"]
    assert "budget: resnet18 seed 0 needs" in out and "1 trained, 0 skipped, 0 failed, 2 not started" in out


def test_the_run_in_progress_is_interrupted_when_the_budget_is_spent(protocol_file, monkeypatch, capsys):
    import harness.train

    def slow(cfg):
        time.sleep(30)  # the deadline interrupts this

    monkeypatch.setattr(harness.train, "run", slow)
    monkeypatch.setattr(cost.Throughput, "train_images_per_s", lambda self, gmacs: 1e9)
    started = time.monotonic()
    assert sweep.main([protocol_file, MODELS, f"--budget-hours={0.5 / 3600}"]) == 0
    assert time.monotonic() - started < 20
    out = capsys.readouterr().out
    assert "budget of" in out and "resumes from its last checkpoint next time" in out
    assert "0 trained, 0 skipped, 0 failed, 2 not started" in out


def test_workload_counts_training_validation_and_both_tests():
    work = cost.Workload.of_run("fashion_mnist", epochs=10, val_fraction=0.1)
    assert work.train_images == 54000 * 10 and work.eval_images == 6000 * 10 + 2 * 10000
    assert cost.Workload.of_run("fashion_mnist", 10, 0.1, ema=True).eval_images == 6000 * 20 + 2 * 10000
    assert cost.Workload.of_run("fashion_mnist", 10, 0.1, sam=True).train_images == 2 * 54000 * 10
    assert cost.estimate_seconds(work, 100.0) == pytest.approx(5400 + 80000 / 300)


def test_a_key_added_after_a_run_was_saved_does_not_make_it_stale():
    saved = {"model": "lenet5", "epochs": 10, "device": "cpu"}
    defaults = {"model": "resnet18", "epochs": 10, "new_key": 0.0}
    assert sweep.same_run(saved, {"model": "lenet5", "epochs": 10, "new_key": 0.0, "device": "cuda"}, defaults)
    assert not sweep.same_run(saved, {"model": "lenet5", "epochs": 10, "new_key": 0.5}, defaults)
    assert not sweep.same_run(saved, {"model": "lenet5", "epochs": 5, "new_key": 0.0}, defaults)


def test_the_prior_is_rescaled_to_the_speeds_measured_on_this_machine(protocol_file, tmp_path, monkeypatch, capsys):
    prior = cost.Throughput(sustained_tflops=1.0, overhead_s=1e-3)
    # Two runs measured here at half and at a quarter of the prior's speed: the median factor is 3/8.
    measured = [(0.1, 0.5 * prior.train_images_per_s(0.1)), (0.5, 0.25 * prior.train_images_per_s(0.5))]
    fitted = cost.rescaled(prior, measured)
    assert fitted.train_images_per_s(0.3) == pytest.approx(0.375 * prior.train_images_per_s(0.3))
    assert cost.rescaled(prior, []) == prior

    # In the sweep: lenet5's measured speed (here 10× under the prior) rescales the estimate of the others.
    monkeypatch.setattr(cost, "measured_rates", lambda results_dir: {
        ("lenet5", 32, 1): cost.CPU_PRIOR.train_images_per_s(0.0007) / 10})
    assert sweep.main([protocol_file, MODELS, "--plan-only"]) == 0
    out = capsys.readouterr().out
    assert "(the CPU prior rescaled to 1 measured here)" in out
    resnet18 = next(line for line in plan_lines(out) if line.split()[1] == "resnet18")
    assert float(resnet18.split()[6]) == pytest.approx(cost.CPU_PRIOR.train_images_per_s(0.0355) / 10, rel=0.05)


def test_in_the_order_given_a_run_that_does_not_fit_is_passed_over_for_one_that_does(protocol_file, monkeypatch,
                                                                                      capsys):
    import harness.train

    trained = []
    monkeypatch.setattr(harness.train, "run", lambda cfg: trained.append(cfg.model) or {"model": cfg.model})
    monkeypatch.setattr(sweep, "record_complexity", lambda summary, path: None)
    monkeypatch.setattr(cost.Throughput, "train_images_per_s", lambda self, gmacs: 1e6 if gmacs < 0.01 else 1.0)
    assert sweep.main([protocol_file, MODELS, "--order=given", f"--budget-hours={11 / 3600}"]) == 0
    out = capsys.readouterr().out
    assert trained == ["lenet5"]  # resnet18_cifar, first in the order given, does not fit; lenet5 after it does
    assert "budget: resnet18_cifar seed 0 needs" in out and "1 trained, 0 skipped, 0 failed, 2 not started" in out


def test_an_interrupted_run_is_planned_for_the_epochs_its_checkpoint_lacks(protocol_file, tmp_path, monkeypatch,
                                                                          capsys):
    from types import SimpleNamespace

    from harness import checkpoint

    folder = tmp_path / "checkpoints" / "sweep_p" / "lenet5_digits_s0"
    folder.mkdir(parents=True)
    (folder / checkpoint.LAST).write_bytes(b"stands in for a last.pt")
    monkeypatch.setattr(checkpoint, "load_last", lambda path: SimpleNamespace(state={"epoch": 3}))
    monkeypatch.setattr(cost.Throughput, "train_images_per_s", lambda self, gmacs: 10.0)
    assert sweep.main([protocol_file, "--models=lenet5,resnet18", "--plan-only", "--epochs=4"]) == 0
    lines = {line.split()[1]: line for line in plan_lines(capsys.readouterr().out)}
    assert "resumes after epoch 3/4" in lines["lenet5"] and "resumes" not in lines["resnet18"]
    one_epoch = cost.estimate_seconds(cost.Workload.of_run("digits", 1, 0.1), 10.0)
    assert float(lines["lenet5"].split()[8]) == pytest.approx(one_epoch / 60, abs=0.05)
    assert float(lines["resnet18"].split()[8]) > 2 * float(lines["lenet5"].split()[8])
