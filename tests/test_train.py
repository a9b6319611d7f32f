"""The harness end to end on digits: results, plots, checkpoints, exact resume, safe loading."""
import json
import os

import pandas as pd
import pytest
import torch

import harness.train
import main

pytestmark = pytest.mark.slow  # end-to-end runs from main.py

FAST = ["--model=resnet18", "--dataset=digits", "--batch-size=32", "--max-steps-per-epoch=3", "--recipe=seed",
        "--model-kwargs={drop_rate: 0.2}", "--deterministic", "--device=cpu"]


def run_main(*extra):
    return main.main(FAST + list(extra))


def only_run(results="results"):
    runs = sorted(os.listdir(os.path.join(results, "runs")))
    assert len(runs) == 1, runs
    return os.path.join(results, "runs", runs[0])


def test_cli_writes_results_and_plots(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert run_main("--epochs=2", "--model_save=True") == 0
    run_dir = only_run()
    assert {"config.yaml", "metrics.csv", "summary.json", "model.safetensors", "model.yaml"} <= set(os.listdir(run_dir))
    metrics = pd.read_csv(os.path.join(run_dir, "metrics.csv"))
    assert list(metrics.epoch) == [1, 2]
    assert {"train_loss", "train_top1", "val_loss", "val_top1", "val_top5", "lr", "epoch_time_s",
            "images_per_s"} <= set(metrics.columns)
    summary = json.load(open(os.path.join(run_dir, "summary.json")))
    assert summary["status"] == "completed" and summary["model"] == "resnet18" and summary["img_size"] == 32
    for key in ("params", "test_top1_best", "test_top1_last", "wall_time_s", "device_name", "torch_version",
                "git_commit", "seed"):
        assert key in summary
    for kind in ("accuracy", "loss"):
        assert os.path.getsize(tmp_path / "plots" / f"resnet18_digits_{kind}.png") > 1000
    from safetensors.torch import load_file
    weights = load_file(os.path.join(run_dir, "model.safetensors"))
    assert "head.fc.weight" in weights and weights["head.fc.weight"].shape == (10, 512)


def test_train_and_eval_modes_switch_every_epoch(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    modes = []
    real_train = harness.train.train_one_epoch

    def spy(session, *args, **kwargs):
        result = real_train(session, *args, **kwargs)
        modes.append(("after-train", session.train_model.training))
        return result
    real_eval = harness.train.evaluate

    def eval_spy(model, *args, **kwargs):
        result = real_eval(model, *args, **kwargs)
        modes.append(("after-eval", model.training))
        return result
    monkeypatch.setattr(harness.train, "train_one_epoch", spy)
    monkeypatch.setattr(harness.train, "evaluate", eval_spy)
    assert run_main("--epochs=2") == 0
    assert modes[:4] == [("after-train", True), ("after-eval", False)] * 2


@pytest.mark.parametrize("ema_select", ["true", "false"])
def test_the_test_set_is_evaluated_once_per_set_of_weights(tmp_path, monkeypatch, ema_select):
    """One epoch: its best weights are the selected ones (the EMA's or the model's), which the test has already
    evaluated; only the last weights and the EMA's are tested."""
    monkeypatch.chdir(tmp_path)
    streams = []
    real_eval = harness.train.evaluate

    def eval_spy(model, stream, session):
        streams.append(stream is session.data.test)
        return real_eval(model, stream, session)
    monkeypatch.setattr(harness.train, "evaluate", eval_spy)
    assert run_main("--epochs=1", "--ema-decay=0.9", f"--ema-select={ema_select}") == 0
    assert streams == [False, False, True, True]  # validation, model and EMA; then the test set, model and EMA
    summary = json.load(open(os.path.join(only_run(), "summary.json")))
    selected = "test_top1_ema" if ema_select == "true" else "test_top1_last"
    assert summary["best_epoch"] == 1 and summary["test_top1_best"] == summary[selected]


def test_warmup_finishes_within_a_short_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert run_main("--epochs=3", "--scheduler=cosine", "--warmup-epochs=1", "--min-lr=0.0001") == 0
    lrs = pd.read_csv(os.path.join(only_run(), "metrics.csv")).lr.tolist()
    assert lrs[0] == pytest.approx(0.001)  # end of epoch 1: warm-up done, stepped per iteration
    assert lrs[0] > lrs[1] > lrs[2] >= 0.0001


def _final_state(tmp_path):
    ckpt = torch.load(tmp_path / "checkpoints" / "resnet18_digits_s0" / "last.pt", weights_only=True)
    metrics = pd.read_csv(os.path.join(only_run(), "metrics.csv")).drop(columns=["epoch_time_s", "images_per_s"])
    return ckpt["model"], metrics


def test_resume_is_exact(tmp_path, monkeypatch):
    straight, interrupted = tmp_path / "straight", tmp_path / "interrupted"
    straight.mkdir(), interrupted.mkdir()
    monkeypatch.chdir(straight)
    assert run_main("--epochs=3", "--checkpoint=True", "--scheduler=cosine") == 0
    weights_a, metrics_a = _final_state(straight)

    monkeypatch.chdir(interrupted)
    real_train = harness.train.train_one_epoch

    def crash_in_second_epoch(session, epoch):
        if epoch == 1:
            raise KeyboardInterrupt
        return real_train(session, epoch)
    monkeypatch.setattr(harness.train, "train_one_epoch", crash_in_second_epoch)
    assert run_main("--epochs=3", "--checkpoint=True", "--scheduler=cosine") == 130
    monkeypatch.setattr(harness.train, "train_one_epoch", real_train)
    assert run_main("--epochs=3", "--checkpoint=True", "--scheduler=cosine", "--resume=auto") == 0
    weights_b, metrics_b = _final_state(interrupted)

    pd.testing.assert_frame_equal(metrics_a, metrics_b)
    for key in weights_a:
        assert torch.equal(weights_a[key], weights_b[key]), key
    summary = json.load(open(os.path.join(only_run(), "summary.json")))
    assert summary["test_top1_best"] == json.load(open(os.path.join(only_run(str(straight / "results")),
                                                                    "summary.json")))["test_top1_best"]


def test_truncated_checkpoint_is_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert run_main("--epochs=1", "--checkpoint=True") == 0
    path = tmp_path / "checkpoints" / "resnet18_digits_s0" / "last.pt"
    path.write_bytes(path.read_bytes()[:1000])
    assert run_main("--epochs=2", "--checkpoint=True", "--resume=auto") == 2
    assert "corrupted or truncated" in capsys.readouterr().err


def test_checkpoint_of_another_config_is_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert run_main("--epochs=1", "--checkpoint=True") == 0
    path = tmp_path / "checkpoints" / "resnet18_digits_s0" / "last.pt"
    assert run_main("--epochs=2", "--lr=0.5", f"--resume={path}") == 2
    assert "different config" in capsys.readouterr().err


def test_checkpoint_from_before_a_key_existed_resumes_with_its_default(tmp_path, monkeypatch):
    """A last.pt written before the harness had a key (here: distillation's) ran with that key's default."""
    monkeypatch.chdir(tmp_path)
    assert run_main("--epochs=1", "--checkpoint=True") == 0
    path = tmp_path / "checkpoints" / "resnet18_digits_s0" / "last.pt"
    payload = torch.load(path, weights_only=True)
    for key in ("teacher", "distill_alpha", "distill_temperature"):
        del payload["config"][key]
    torch.save(payload, path)
    assert run_main("--epochs=2", "--checkpoint=True", "--resume=auto") == 0


def test_small_input_is_raised_to_the_model_minimum(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main.main(["--model=alexnet", "--dataset=digits", "--epochs=1", "--max-steps-per-epoch=1",
                      "--batch-size=8", "--recipe=seed"]) == 0
    assert "resized to 67px" in capsys.readouterr().out
    assert json.load(open(os.path.join(only_run(), "summary.json")))["img_size"] == 67
