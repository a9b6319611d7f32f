"""The catalogue of bad input: each case is one line (extra arguments, a fragment of the expected message).

Arguments go to main.py after BASE (less the keys a case sets); a case starting with "sweep" runs ``python -m benchmarks.sweep`` instead.

Every case must exit with 2, print exactly one line on stderr ("error: ..."), no traceback, and leave the
working folder exactly as it was: nothing created, nothing overwritten, not even where results/, plots/
and checkpoints/ already hold an earlier run. ``{fx}`` in an argument is the folder of prepared bad files.
To add a case, add a line (and, if it needs one, a file in ``bad_files``).
"""
import hashlib
import os
import pickle
import struct

import numpy as np
import pytest
import torch

import main
from benchmarks import sweep
from benchmarks.common import run_command
from harness import checkpoint
from harness.config import build_config, parse_command_line

BASE = ["--recipe=seed", "--device=cpu", "--epochs=1", "--max-steps-per-epoch=1", "--batch-size=16"]
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0

CASES = [
    (["--model=resnt"], "unknown model 'resnt': did you mean resnet"),
    (["--dataset=imagenette"], "unknown dataset 'imagenette': choose one of"),
    (["--weight-decy=0.1"], "unknown config key 'weight_decy' (from the command line): did you mean weight_decay"),
    (["--config={fx}/unknown_key.yaml"], "unknown config key 'epoch'"),
    (["--epochs=three"], "'epochs' (from the command line) must be an integer"),
    (["--config={fx}/wrong_type.yaml"], "'batch_size' (from"),
    (["--sam=maybe"], "'sam' (from the command line) must be a boolean"),
    (["--epochs=0"], "epochs must be positive"),
    (["--batch-size=-4"], "batch_size must be positive"),
    (["--lr=0"], "lr must be positive"),
    (["--lr=-0.1"], "lr must be positive"),
    (["--model=alexnet", "--img-size=32"], "smallest accepted size is 67px"),
    (["--model=vit_tiny_patch16_224", "--img-size=40"], "patch size 16 does not divide the 40px input"),
    (["--dataset=mnist", "--data-dir={fx}/nowhere", "--download=false"],
     "put train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz"),
    (["--dataset=cifar10", "--data-dir={fx}/nowhere", "--download=false"], "cifar-10-batches-py/"),
    (["--dataset=mnist", "--data-dir={fx}/mnist_truncated", "--download=false"], "train-images-idx3-ubyte is corrupted or truncated"),
    (["--dataset=cifar10", "--data-dir={fx}/cifar_corrupt", "--download=false"], "data_batch_1 is corrupted or truncated"),
    (["--dataset=cifar10", "--data-dir={fx}/cifar_pickled_code", "--download=false"], "refusing to load"),
    (["--resume={fx}/other_model.pt"], "is of model vit_lite_7_4, not resnet18"),
    (["--resume={fx}/other_config.pt"], "different config: lr=0.5 (now 0.001)"),
    (["--resume={fx}/truncated.pt"], "is corrupted or truncated"),
    (["--resume={fx}/not_a_checkpoint.pt"], "is corrupted or truncated"),
    (["--resume={fx}/pickled_code.pt"], "holds arbitrary Python objects and was refused"),
    (["--resume={fx}/missing.pt"], "missing.pt does not exist"),
    (["--resume=auto", "--seed=7"], "found nothing to resume"),
    (["--results-dir={fx}/a_file/results"], "--results-dir={fx}/a_file/results cannot be created"),
    (["--plots-dir={fx}/a_file"], "--plots-dir={fx}/a_file cannot be created"),
    (["--checkpoint=True", "--checkpoint-dir={fx}/a_file/ckpt"], "--checkpoint-dir={fx}/a_file/ckpt cannot be created"),
    pytest.param(["--results-dir={fx}/read_only/results"], "is not writable",
                 marks=pytest.mark.skipif(IS_ROOT, reason="root writes anywhere")),
    pytest.param(["--device=cuda"], "no CUDA GPU is visible",
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present")),
    (["--batch-size=5000"], "larger than the 1294 training images"),
    (["--config={fx}/unknown_optimizer.yaml"], "unknown optimizer 'lion'"),
    (["--config={fx}/unknown_scheduler.yaml"], "unknown scheduler 'triangle'"),
    (["--recipe=fancy"], "unknown recipe 'fancy'"),
    (["--config={fx}/python_tag.yaml"], "python_tag.yaml is not valid YAML"),
    (["--config={fx}/missing.yaml"], "missing.yaml does not exist"),
    (["--model=vit_lite_7_4", "--model-kwargs={{wings: 2}}"], "vit_lite_7_4 does not take that option"),
    (["stray"], "unexpected argument 'stray'"),
    (["sweep", "--protocol=nope", "--models=lenet5"], "unknown protocol 'nope': choose one of"),
    (["sweep", "--protocol=fmnist", "--models=lenet5", "--seeds=a"], "--seeds takes integers"),
]


def with_base(argv):
    """BASE, less the keys that the case sets itself (a key given twice is refused), then the case."""
    named = {a[2:].partition("=")[0].replace("-", "_") for a in argv if a.startswith("--")}
    return [a for a in BASE if a[2:].partition("=")[0].replace("-", "_") not in named] + argv


def ids(case):
    argv = case.values[0] if hasattr(case, "values") else case[0]
    return " ".join(argv)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A working folder with an earlier run's outputs and the bad files under fixtures/."""
    root = tmp_path_factory.mktemp("work")
    for name, data in [("results/runs/old_run/summary.json", b'{"status": "completed"}\n'),
                       ("results/runs/old_run/metrics.csv", b"epoch,train_loss\n1,0.5\n"),
                       ("plots/resnet18_digits_loss.png", b"\x89PNG old"),
                       ("checkpoints/resnet18_digits_s0/last.pt", b"an old checkpoint")]:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    bad_files(root / "fixtures")
    return root


def bad_files(fx):
    fx.mkdir()
    (fx / "a_file").write_text("a file where a folder should be\n")
    (fx / "read_only").mkdir(mode=0o555)
    for name, text in [("unknown_key.yaml", "epoch: 3\n"), ("wrong_type.yaml", "batch_size: [16]\n"),
                       ("unknown_optimizer.yaml", "optimizer: lion\n"), ("unknown_scheduler.yaml", "scheduler: triangle\n"),
                       ("python_tag.yaml", "model: !!python/object/apply:os.system ['echo hacked']\n")]:
        (fx / name).write_text(text)

    mnist = fx / "mnist_truncated"
    mnist.mkdir()
    (mnist / "train-images-idx3-ubyte").write_bytes(struct.pack(">HBBIII", 0, 8, 3, 100, 28, 28) + bytes(500))
    for name, n in [("train-labels-idx1-ubyte", 100), ("t10k-labels-idx1-ubyte", 10)]:
        (mnist / name).write_bytes(struct.pack(">HBBI", 0, 8, 1, n) + bytes(n))
    (mnist / "t10k-images-idx3-ubyte").write_bytes(struct.pack(">HBBIII", 0, 8, 3, 10, 28, 28) + bytes(7840))

    class Exploit:
        def __reduce__(self):
            return (os.system, ("echo hacked",))
    for folder, first_batch in [("cifar_corrupt", b"\x80\x04 not a whole pickle"),
                                ("cifar_pickled_code", pickle.dumps({"data": Exploit(), "labels": [0]}))]:
        batches = fx / folder / "cifar-10-batches-py"
        batches.mkdir(parents=True)
        good = pickle.dumps({"data": np.zeros((2, 3072), np.uint8), "labels": [0, 1]})
        for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
            (batches / name).write_bytes(first_batch if name == "data_batch_1" else good)

    def forged(*argv):
        cfg = build_config(parse_command_line(with_base(list(argv)))[0])
        return checkpoint.LastCheckpoint(model={}, optimizer={}, scheduler={}, scaler={}, state={"epoch": 1}, rng={},
                                         config=cfg.to_dict(), run_id="forged")
    checkpoint.save(fx / "other_model.pt", forged("--model=vit_lite_7_4"))
    checkpoint.save(fx / "other_config.pt", forged("--lr=0.5"))
    checkpoint.save(fx / "truncated.pt", forged())
    (fx / "truncated.pt").write_bytes((fx / "truncated.pt").read_bytes()[:700])
    (fx / "not_a_checkpoint.pt").write_text("hello\n")
    torch.save({"format_version": checkpoint.FORMAT_VERSION, "config": Exploit()}, fx / "pickled_code.pt")


def snapshot(root):
    """Every file and folder under root with its size, modification time and content hash."""
    state = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs:
            state[os.path.join(folder, name)] = "dir"
        for name in files:
            path = os.path.join(folder, name)
            with open(path, "rb") as handle:
                state[path] = (os.path.getsize(path), os.stat(path).st_mtime_ns, hashlib.sha1(handle.read()).hexdigest())
    return state


@pytest.mark.parametrize("argv,message", CASES, ids=[ids(c) for c in CASES])
def test_bad_input(workdir, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(workdir)
    fx = str(workdir / "fixtures")
    before = snapshot(workdir)
    argv = [a.format(fx=fx) for a in argv]
    if argv[0] == "sweep":
        code = run_command(sweep.main, argv[1:])
    else:
        code = main.main(with_base(argv))
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    assert message.format(fx=fx) in err
    assert snapshot(workdir) == before


def test_debug_shows_the_traceback(workdir, monkeypatch):
    monkeypatch.chdir(workdir)
    with pytest.raises(ValueError, match="unknown model"):
        main.main(BASE + ["--model=resnt", "--debug"])
