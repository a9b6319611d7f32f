"""Crash safety: real runs SIGKILLed mid-step, mid-evaluation and mid-write resume to exactly the result of a
run that was never interrupted.

Each run is a process of its own that kills itself (SIGKILL, no clean-up of any kind) at a chosen moment
through harness/faults.py (``HARNESS_KILL_AT=<phase>:<n>``). To keep ~50 runs fast, they are forked from a
small server process that has imported torch and the harness once (started by this file with ``--serve``);
a forked child runs ``main.main(argv)`` exactly as the command line would. One more case runs
``python main.py`` itself. After every kill the files on disk are checked (each parses; metrics.csv never
runs ahead of last.pt), then ``--resume=auto`` must finish with the reference run's weights and metrics.
"""
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

pytestmark = pytest.mark.slow  # kills real runs and resumes them

ROOT = Path(__file__).resolve().parent.parent
MODEL = "lenet5"
ARGV = [f"--model={MODEL}", "--img-size=12", "--dataset=digits", "--epochs=3", "--batch-size=32",
        "--max-steps-per-epoch=2", "--recipe=seed", "--scheduler=cosine", "--lr=0.03", "--seed=4",
        "--model-kwargs={drop_rate: 0.3}", "--deterministic", "--device=cpu", "--checkpoint=True", "--model-save=True"]
# The recipe tools that keep state or draw random numbers: EMA (selecting the best epoch), mixup, RandAugment.
RECIPE_TOOLS = ["--ema-decay=0.9", "--ema-select=True", "--mixup-alpha=0.2", "--auto-augment=randaugment"]
TIMING = ["epoch_time_s", "images_per_s"]
PLOT = f"{MODEL}_digits_loss.png"
CHECKPOINTS = f"{MODEL}_digits_s4"

# Where to kill. Phases: step (after an optimizer step; 2 per epoch), eval (after an evaluation batch:
# 5 validation batches per epoch, then 12 test batches for the last weights and 12 for the best ones),
# write:<file> (new content in the temporary file, not yet renamed; summary.json is written first as
# "running", then as "completed"). A list is a chain: the resumed run is
# killed again at the next point, and only the last resume runs to the end.
KILL_POINTS = [
    "step:1", "step:2", "step:3", "step:6",
    "eval:1", "eval:5", "eval:8", "eval:15", "eval:16", "eval:27", "eval:33",
    "write:last.pt:2", "write:last.pt:4",
    "write:best.pt:1", "write:best.pt:2",
    "write:metrics.csv:1", "write:metrics.csv:3",
    "write:config.yaml:1", "write:summary.json:1", "write:summary.json:2", "write:model.safetensors:1",
    "write:model.yaml:1", f"write:{PLOT}:1",
    ["step:4", "write:best.pt:1", "eval:3", "write:summary.json:2"],
]


# ---------------------------------------------------------------- the fork server (python this_file --serve)


def serve() -> None:
    """Answer one JSON request per line: fork, run main.main(argv) in cwd, report how the child ended."""
    torch.set_num_threads(1)  # before any parallel region, so forking is safe; every run uses one thread
    import importlib

    from sklearn.datasets import load_digits

    import harness.train  # noqa: F401 — the heavy imports, done once
    import main
    importlib.import_module("torch._inductor")  # what use_deterministic_algorithms imports
    load_digits()
    for line in sys.stdin:
        job = json.loads(line)
        pid = os.fork()
        if pid == 0:
            code = 99
            try:
                os.chdir(job["cwd"])
                os.environ.pop("HARNESS_KILL_AT", None)
                if job["kill_at"]:
                    os.environ["HARNESS_KILL_AT"] = job["kill_at"]
                with open(job["log"], "a") as log:
                    os.dup2(log.fileno(), 1)
                    os.dup2(log.fileno(), 2)
                code = main.main(job["argv"])
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        reply = {"exit": os.waitstatus_to_exitcode(status)}
        print(json.dumps(reply), flush=True)


class Server:
    def __init__(self, log_dir: Path):
        self.log_dir = log_dir
        self.proc = subprocess.Popen([sys.executable, __file__, "--serve"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, cwd=ROOT)

    def run(self, cwd: Path, argv: list[str], kill_at: str | None = None) -> int:
        """The child's exit code; -9 when it was SIGKILLed."""
        log = self.log_dir / f"{cwd.name}.log"
        self.proc.stdin.write(json.dumps({"cwd": str(cwd), "argv": argv, "kill_at": kill_at, "log": str(log)}) + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())["exit"]

    def log(self, cwd: Path) -> str:
        return (self.log_dir / f"{cwd.name}.log").read_text()

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = Server(tmp_path_factory.mktemp("logs"))
    yield srv
    srv.close()


def uninterrupted(server, folder: Path, argv: list[str], best_epoch: int | None = 2) -> dict:
    folder.mkdir(exist_ok=True)
    assert server.run(folder, argv) == 0, server.log(folder)
    state = final_state(folder)
    if best_epoch is not None:
        assert state["summary"]["best_epoch"] == best_epoch, "the kill points here expect this best epoch"
    return state


def best_writes(state: dict, column: str) -> int:
    """How often best.pt was written up to the best epoch: once for every epoch that raised the score."""
    writes, best = 0, float("-inf")
    for score in state["metrics"][column][:state["summary"]["best_epoch"]]:
        if score > best:
            writes, best = writes + 1, score
    return writes


@pytest.fixture(scope="module")
def reference(server, tmp_path_factory):
    return uninterrupted(server, tmp_path_factory.mktemp("reference"), ARGV)


# ---------------------------------------------------------------- checks


def run_folder(folder: Path) -> Path:
    runs = list((folder / "results" / "runs").iterdir())
    assert len(runs) == 1, runs  # a resumed run writes into the folder of the run it continues
    return runs[0]


def final_state(folder: Path) -> dict:
    from safetensors.torch import load_file
    run = run_folder(folder)
    last = torch.load(folder / "checkpoints" / CHECKPOINTS / "last.pt", weights_only=True)
    best = torch.load(folder / "checkpoints" / CHECKPOINTS / "best.pt", weights_only=True)
    summary = json.loads((run / "summary.json").read_text())
    return {"weights": last["model"], "best": best["model"], "exported": load_file(run / "model.safetensors"),
            "metrics": pd.read_csv(run / "metrics.csv").drop(columns=TIMING),
            "summary": {k: summary[k] for k in ("status", "best_epoch", "best_val_top1", "test_top1_best",
                                                  "test_top5_best", "test_top1_last", "test_top5_last")},
            "leftovers": sorted(str(p.relative_to(folder)) for p in folder.rglob(".*.tmp")
                                if p.parent.name != "plots")}


def assert_same(state: dict, reference: dict) -> None:
    pd.testing.assert_frame_equal(state["metrics"], reference["metrics"])
    assert state["summary"] == reference["summary"]
    for weights in ("weights", "best", "exported"):
        for key, tensor in reference[weights].items():
            assert torch.equal(state[weights][key], tensor), (weights, key)
    assert state["leftovers"] == []


def assert_files_intact(folder: Path) -> None:
    """Whatever a kill left in place parses; metrics.csv is never ahead of last.pt."""
    from harness import checkpoint
    for path in folder.rglob("*"):
        if path.name.startswith(".") or path.is_dir():
            continue
        if path.suffix == ".pt":
            checkpoint.load(path)
        elif path.suffix == ".csv":
            pd.read_csv(path)
        elif path.suffix == ".json":
            json.loads(path.read_text())
        elif path.suffix == ".yaml":
            yaml.safe_load(path.read_text())
        elif path.suffix == ".png":
            assert path.read_bytes().endswith(b"IEND\xaeB`\x82"), path
    last = folder / "checkpoints" / CHECKPOINTS / "last.pt"
    metrics = list((folder / "results").glob("runs/*/metrics.csv"))
    if last.exists() and metrics:
        history = torch.load(last, weights_only=True)["state"]["history"]
        rows = pd.read_csv(metrics[0]).to_dict("records")
        assert len(history) - 1 <= len(rows) <= len(history)
        assert [r["epoch"] for r in rows] == [h["epoch"] for h in history[:len(rows)]]


def kill_and_resume(server, folder: Path, points: list[str], argv: list[str] = ARGV) -> None:
    resume = argv + ["--resume=auto"]
    for i, point in enumerate(points):
        exit_code = server.run(folder, resume if i else argv, kill_at=point)
        assert exit_code == -signal.SIGKILL, f"{point} never reached:\n{server.log(folder)}"
        assert_files_intact(folder)
    assert server.run(folder, resume) == 0, server.log(folder)


@pytest.mark.parametrize("points", KILL_POINTS, ids=[p if isinstance(p, str) else "+".join(p) for p in KILL_POINTS])
def test_killed_run_resumes_exactly(server, reference, tmp_path, points):
    kill_and_resume(server, tmp_path, [points] if isinstance(points, str) else points)
    assert_same(final_state(tmp_path), reference)


def test_killed_run_with_ema_mixup_and_randaugment_resumes_exactly(server, tmp_path):
    """Killed between last.pt and best.pt of the best epoch (whose weights are the EMA's), mid-step, mid-write."""
    argv = ARGV + RECIPE_TOOLS
    reference = uninterrupted(server, tmp_path / "reference", argv, best_epoch=None)
    (tmp_path / "killed").mkdir()
    last_best = f"write:best.pt:{best_writes(reference, 'val_top1_ema')}"  # the best epoch's best.pt
    kill_and_resume(server, tmp_path / "killed", [last_best, "step:2", "write:summary.json:2"], argv)
    assert_same(final_state(tmp_path / "killed"), reference)


# last.pt after every step too: its writes are then #1 epoch 0, #2 step 1, #3 epoch 1, #4 step 3 (epoch 2's first)...
EVERY_STEP = ["--checkpoint-minutes=1e-9"]
# Where to kill, and what a resumed session then says it continues from.
MID_EPOCH_POINTS = {"step:4": "after epoch 1 and 1 of the 2 steps of epoch 2",
                    "write:last.pt:4": "after epoch 1\n",  # the mid-epoch write was cut: epoch 1's last.pt holds
                    "step:2+step:4": "after epoch 0 and 1 of the 2 steps of epoch 1"}


@pytest.mark.parametrize("points", MID_EPOCH_POINTS)
def test_killed_run_resumes_exactly_from_a_mid_epoch_checkpoint(server, reference, tmp_path, points):
    """Writing last.pt between steps changes nothing in the result, and a run resumed from it (the second step
    of an epoch is left to do) ends exactly as the run that was never interrupted."""
    kill_and_resume(server, tmp_path, points.split("+"), ARGV + EVERY_STEP)
    assert MID_EPOCH_POINTS[points] in server.log(tmp_path)
    assert_same(final_state(tmp_path), reference)


def test_a_mid_epoch_last_pt_says_how_far_its_epoch_got(server, tmp_path):
    assert server.run(tmp_path, ARGV + EVERY_STEP, kill_at="step:4") == -signal.SIGKILL
    last = torch.load(tmp_path / "checkpoints" / CHECKPOINTS / "last.pt", weights_only=True)
    assert last["state"]["epoch"] == 1 and last["state"]["epoch_progress"]["steps"] == 1
    assert last["model_spec"]["weights"] == "last (epoch 1 and 1 of the 2 steps of epoch 2)"


def test_mid_epoch_resume_with_ema_mixup_and_randaugment_is_exact(server, tmp_path):
    """The recipe tools draw from the global RNG and the EMA keeps state of its own: both come back mid-epoch."""
    argv = ARGV + RECIPE_TOOLS
    reference = uninterrupted(server, tmp_path / "reference", argv, best_epoch=None)
    (tmp_path / "killed").mkdir()
    kill_and_resume(server, tmp_path / "killed", ["step:4", "step:2"], argv + EVERY_STEP)
    assert_same(final_state(tmp_path / "killed"), reference)


def test_killed_while_writing_the_first_checkpoint(server, reference, tmp_path):
    """Killed before any checkpoint exists: nothing to resume, and a fresh start leaves no debris behind."""
    assert server.run(tmp_path, ARGV, kill_at="write:last.pt:1") == -signal.SIGKILL
    assert not (tmp_path / "results").exists()
    assert server.run(tmp_path, ARGV + ["--resume=auto"]) == 2
    assert "found nothing to resume" in server.log(tmp_path)
    assert server.run(tmp_path, ARGV) == 0
    assert_same(final_state(tmp_path), reference)


def test_killed_command_line_run_resumes_exactly(reference, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HARNESS_KILL_AT": "write:last.pt:3"}
    killed = subprocess.run([sys.executable, str(ROOT / "main.py"), *ARGV], cwd=tmp_path, env=env,
                            capture_output=True, text=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    env.pop("HARNESS_KILL_AT")
    resumed = subprocess.run([sys.executable, str(ROOT / "main.py"), *ARGV, "--resume=auto"], cwd=tmp_path,
                             env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed from" in resumed.stdout
    assert_same(final_state(tmp_path), reference)


if __name__ == "__main__" and sys.argv[1:] == ["--serve"]:
    sys.path.insert(0, str(ROOT))
    serve()
