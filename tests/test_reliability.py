"""Numerical faults, concurrent runs, the checkpoint-folder lock, and which runs the tables read."""
import fcntl
import json
import os
import shlex
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import harness.train
import main
from harness.results import completed_runs

pytestmark = pytest.mark.slow  # end-to-end runs, torchrun, concurrent processes

ROOT = Path(__file__).resolve().parent.parent
MODEL = "lenet5"
TINY = [f"--model={MODEL}", "--img-size=12", "--dataset=digits", "--batch-size=16", "--max-steps-per-epoch=3",
        "--recipe=seed", "--deterministic", "--device=cpu"]


def run_dirs(results: Path) -> list[Path]:
    return sorted((results / "runs").iterdir())


def test_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    last = tmp_path / "checkpoints" / f"{MODEL}_digits_s0" / "last.pt"
    real_loss, calls, at_divergence = harness.train.classification_loss, [], {}

    def loss_turning_nan_at_fifth_step(*args, **kwargs):
        loss, logits = real_loss(*args, **kwargs)
        calls.append(1)
        if len(calls) == 5:  # the second step of epoch 2 (3 steps per epoch)
            at_divergence["last.pt"] = last.read_bytes()
            loss = loss * float("nan")
        return loss, logits
    monkeypatch.setattr(harness.train, "classification_loss", loss_turning_nan_at_fifth_step)

    assert main.main(TINY + ["--epochs=3", "--checkpoint=True"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "loss became NaN or infinite at step 4 (epoch 2)" in err and "(epoch 1) is untouched" in err
    assert last.read_bytes() == at_divergence["last.pt"]
    assert torch.load(last, weights_only=True)["state"]["epoch"] == 1
    [run] = run_dirs(tmp_path / "results")
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "failed" and "step 4" in summary["reason"] and summary["epochs_completed"] == 1
    assert completed_runs("results") == []
    assert not (tmp_path / "plots").exists()


def test_divergence_reaches_a_caller_of_run_as_an_exception(tmp_path, monkeypatch):
    """A sweep calling harness.train.run catches TrainingDiverged and moves on to the next model."""
    from harness.config import build_config, parse_command_line
    from harness.errors import TrainingDiverged
    monkeypatch.chdir(tmp_path)
    real_loss = harness.train.classification_loss

    def infinite_loss(*args, **kwargs):
        loss, logits = real_loss(*args, **kwargs)
        return loss * float("inf"), logits
    monkeypatch.setattr(harness.train, "classification_loss", infinite_loss)
    cfg = build_config(parse_command_line(TINY + ["--epochs=1"])[0])
    with pytest.raises(TrainingDiverged, match="at step 0 .*no checkpoint"):
        harness.train.run(cfg)


def test_a_sweep_records_a_diverged_run_and_goes_on(tmp_path, monkeypatch, capsys):
    from benchmarks import sweep
    monkeypatch.chdir(tmp_path)
    protocol = {"dataset": "digits", "config": {"epochs": 1, "recipe": "seed", "batch_size": 16, "img_size": 12,
                                                "max_steps_per_epoch": 2, "device": "cpu"}}
    (tmp_path / "tiny.yaml").write_text(json.dumps(protocol))
    real_loss, calls = harness.train.classification_loss, []

    def nan_in_the_first_run(*args, **kwargs):
        loss, logits = real_loss(*args, **kwargs)
        calls.append(1)
        return (loss * float("nan") if len(calls) == 1 else loss), logits
    monkeypatch.setattr(harness.train, "classification_loss", nan_in_the_first_run)
    monkeypatch.setattr(sweep, "record_complexity", lambda summary, path: None)
    assert sweep.main(["--protocol=tiny.yaml", f"--models={MODEL}", "--seeds=0,1"]) == 1
    captured = capsys.readouterr()
    assert f"{MODEL} seed 0: FAILED: TrainingDiverged: loss became NaN or infinite at step 0" in captured.err
    assert "1 trained, 0 skipped, 1 failed" in captured.out
    summaries = [json.loads((run / "summary.json").read_text()) for run in run_dirs(tmp_path / "results")]
    assert {s["seed"]: s["status"] for s in summaries} == {0: "failed", 1: "completed"}


def test_two_runs_started_together_keep_every_file(tmp_path):
    argv = [sys.executable, str(ROOT / "main.py"), *TINY, "--epochs=1", "--model-save=True"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err
    runs = run_dirs(tmp_path / "results")
    assert len(runs) == 2
    for run in runs:
        assert {p.name for p in run.iterdir()} == {"config.yaml", "metrics.csv", "summary.json", "model.safetensors",
                                                   "model.yaml", "curves_accuracy.png", "curves_loss.png"}
    assert sorted(s["run_id"] for s in completed_runs(str(tmp_path / "results"))) == [r.name for r in runs]


def test_a_checkpoint_folder_takes_one_live_run(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "checkpoints" / f"{MODEL}_digits_s0"
    folder.mkdir(parents=True)
    with open(folder / ".lock", "w") as other_run:
        fcntl.flock(other_run, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert main.main(TINY + ["--epochs=1", "--checkpoint=True"]) == 2
    assert "another run is writing checkpoints to" in capsys.readouterr().err
    folder_name = f"checkpoints/{MODEL}_digits_s0"
    assert {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")} == {
        "checkpoints", folder_name, f"{folder_name}/.lock"}


def test_tables_read_only_completed_runs(tmp_path):
    summaries = {"done": {"status": "completed", "run_id": "done"}, "diverged": {"status": "failed", "run_id": "x"}}
    for name, summary in summaries.items():
        (tmp_path / "runs" / name).mkdir(parents=True)
        (tmp_path / "runs" / name / "summary.json").write_text(json.dumps(summary))
    (tmp_path / "runs" / "killed").mkdir()          # killed before its summary: config and metrics only
    (tmp_path / "runs" / "killed" / "metrics.csv").write_text("epoch\n1\n")
    (tmp_path / "runs" / "torn").mkdir()            # cannot happen with atomic writes, and is skipped anyway
    (tmp_path / "runs" / "torn" / "summary.json").write_text('{"status": "compl')
    assert [s["run_id"] for s in completed_runs(str(tmp_path))] == ["done"]


def test_a_dying_rank_ends_the_torchrun_job_which_then_resumes(tmp_path):
    def torchrun(*args, kill_at=None):
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
        env.pop("HARNESS_KILL_AT", None)
        if kill_at:
            env["HARNESS_KILL_AT"] = kill_at
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               str(ROOT / "main.py"), *TINY, "--epochs=2", "--checkpoint=True", *args]
        return subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)

    died = torchrun(kill_at="step:5@1")  # rank 1, second step of epoch 2: rank 0 waits for it in all-reduce
    assert died.returncode != 0
    assert "Signal 9 (SIGKILL)" in died.stderr or "exitcode  : -9" in died.stderr, died.stderr[-2000:]
    last = tmp_path / "checkpoints" / f"{MODEL}_digits_s0" / "last.pt"
    assert torch.load(last, weights_only=True)["state"]["epoch"] == 1
    resumed = torchrun("--resume=auto")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resumed from" in resumed.stdout and "after epoch 1" in resumed.stdout
    [run] = run_dirs(tmp_path / "results")
    assert json.loads((run / "summary.json").read_text())["status"] == "completed"


def test_nan_validation_loss_is_divergence(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    last = tmp_path / "checkpoints" / f"{MODEL}_digits_s0" / "last.pt"
    real_evaluate, validations = harness.train.evaluate, []

    def nan_at_second_validation(model, stream, s):
        metrics = real_evaluate(model, stream, s)
        if stream is s.data.val:
            validations.append(1)
            if len(validations) == 2:
                return {**metrics, "loss": float("nan")}
        return metrics
    monkeypatch.setattr(harness.train, "evaluate", nan_at_second_validation)
    assert main.main(TINY + ["--epochs=3", "--checkpoint=True"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "validation loss became NaN or infinite (epoch 2)" in err
    assert "(epoch 1) is untouched" in err
    assert torch.load(last, weights_only=True)["state"]["epoch"] == 1
    [run] = run_dirs(tmp_path / "results")
    assert json.loads((run / "summary.json").read_text())["status"] == "failed"


def terminated_after_its_first_epoch(command: list[str], cwd: Path) -> tuple[subprocess.Popen, str]:
    """Start ``command``, send SIGTERM once a run has printed its first epoch (its summary then says "running");
    the ended process and its stderr."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    env.pop("HARNESS_KILL_AT", None)
    proc = subprocess.Popen(command, cwd=cwd, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=lambda: os.umask(0o022))
    try:
        for line in proc.stdout:
            if line.startswith("epoch 1/"):
                break
        [run] = run_dirs(cwd / "results")
        assert json.loads((run / "summary.json").read_text())["status"] == "running"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=300)
    finally:
        proc.kill()
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["epochs_completed"] >= 1
    return proc, err


def test_sigterm_leaves_an_interrupted_run_and_prints_the_resume_command(tmp_path):
    """SIGTERM makes a running run "interrupted" (exit 143) and stderr gives the exact command that resumes it.
    Files are written 0644 under the usual umask."""
    fresh = [a for a in TINY if not a.startswith("--max-steps")] + ["--epochs=100000", "--max-steps-per-epoch=1",
                                                                     "--checkpoint=True"]
    proc, err = terminated_after_its_first_epoch([sys.executable, str(ROOT / "main.py"), *fresh], tmp_path)
    assert proc.returncode == 143, err
    resume = shlex.join(["python", "main.py", *fresh, "--resume=auto"])
    assert err.strip().splitlines() == [f"interrupted; resume with: {resume}"]
    [run] = run_dirs(tmp_path / "results")
    for path in [*run.iterdir(), *(tmp_path / "checkpoints" / f"{MODEL}_digits_s0").glob("*.pt")]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path


def test_sigterm_stops_a_sweep_like_ctrl_c(tmp_path):
    """A sweep ended by SIGTERM (what `kill` sends; a `nohup ... &` job ignores Ctrl-C) leaves its run
    "interrupted" with its checkpoint, says that it resumes, and exits 143."""
    protocol = {"dataset": "digits", "config": {"epochs": 100000, "recipe": "seed", "batch_size": 16, "img_size": 12,
                                                "max_steps_per_epoch": 1, "device": "cpu", "deterministic": True}}
    (tmp_path / "tiny.yaml").write_text(json.dumps(protocol))
    proc, err = terminated_after_its_first_epoch(
        [sys.executable, "-m", "benchmarks.sweep", "--protocol=tiny.yaml", f"--models={MODEL}",
         f"--complexity={tmp_path / 'complexity.csv'}"], tmp_path)
    assert proc.returncode == 143, err
    assert err.strip().splitlines() == [f"[sweep] interrupted: {MODEL} seed 0 resumes from its last checkpoint "
                                        "when the sweep runs again", "interrupted"]
    assert (tmp_path / "checkpoints" / "sweep_tiny" / f"{MODEL}_digits_s0" / "last.pt").is_file()


@pytest.mark.parametrize("flag", ["--list-models", "--help"])
def test_output_cut_short_by_head_is_not_an_error(flag):
    done = subprocess.run(f"{shlex.quote(sys.executable)} main.py {flag} | head -1", shell=True, cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.stderr == "" and len(done.stdout.splitlines()) == 1
