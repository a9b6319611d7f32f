"""The catalogue of bad input: each case is one line (extra arguments, a fragment of the expected message).

Arguments go to main.py after BASE (less the keys a case sets); a case starting with "sweep" runs
``python -m benchmarks.sweep`` instead.

Every case must exit with 2, print exactly one line on stderr ("error: ..."), no traceback, and leave the
working folder exactly as it was: nothing created, nothing overwritten, not even where results/, plots/
and checkpoints/ already hold an earlier run. ``{fx}`` in an argument is the folder of prepared bad files.
To add a case, add a line (and, if it needs one, a file in ``bad_files``).
"""
import hashlib
import os
import pickle
import shutil
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
TINY = ["--model=lenet5", "--img-size=12"]   # the forged checkpoints are of this model: kilobytes, not megabytes
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
    # numbers: NaN and infinity for floats, values outside a key's domain, sizes that cannot fit in memory
    (["--lr=nan"], "lr must be finite, got nan"),
    (["--lr=inf"], "lr must be finite"),
    (["--lr=1e999"], "lr must be finite"),
    (["--weight-decay=-inf"], "weight_decay must be finite"),
    (["--config={fx}/nan_lr.yaml"], "lr must be finite"),
    (["--momentum=1.5", "--optimizer=sgd"], "momentum must be below 1"),
    (["--betas=[0.9]"], "betas takes exactly 2 values"),
    (["--betas=[0.9, 1.0]"], "betas entries must be below 1"),
    (["--betas=[a, b]"], "'betas' (from the command line) must be a list of numbers"),
    (["--label-smoothing=1.5"], "label_smoothing must be below 1"),
    (["--ema-decay=1.1"], "ema_decay must be below 1"),
    (["--randaug-magnitude=50"], "randaug_magnitude must be at most 30"),
    (["--randaug-layers=1000000"], "randaug_layers must be at most 16"),
    (["--crop-padding=-2"], "crop_padding must be zero or positive"),
    (["--seed=-1"], "seed must be zero or positive"),
    (["--seed=99999999999"], "seed must be at most 4294967295"),
    (["--config={fx}/huge_seed.yaml"], "seed must be at most 4294967295"),
    (["--milestones=[a]"], "'milestones' (from the command line) must be a list of numbers"),
    (["--milestones=[0.5, 1.5]"], "milestones entries must be at most 1"),
    (["--img-size=0"], "img_size must be positive"),
    (["--epochs=1.5"], "'epochs' (from the command line) must be an integer"),
    (["--epochs=1e3"], "'epochs' (from the command line) must be an integer"),
    (["--val-fraction=1"], "val_fraction must be below 1"),
    (["--gamma=0"], "gamma must be positive"),
    (["--gamma=-0.0"], "gamma must be positive"),
    (["--min-lr=0.5"], "min_lr 0.5 is above lr 0.001"),
    (["--workers=-1"], "workers must be zero or positive"),
    (["--device=cuda:abc"], "device must be auto | cpu | cuda | cuda:N"),
    (["--img-size=100000"], "lower --img-size or --batch-size"),
    (["--crop-padding=100000"], "lower --crop-padding"),
    (["--dataset=synthetic", "--synthetic-images=1000000000"], "lower --synthetic-images"),
    # model options: checked against the builder before anything is built for real
    (["--model=vit_tiny_patch16_224", "--model-kwargs={{drop_path_rate: high}}"], "drop_path_rate of vit_tiny"),
    (["--model=vit_tiny_patch16_224", "--model-kwargs={{depth: 2.5}}"], "depth of vit_tiny_patch16_224 must be int"),
    (["--model-kwargs={{drop_rate: true}}"], "drop_rate of resnet18 must be float"),
    (["--model-kwargs={{drop_rate: 1.5}}"], "cannot build resnet18: dropout probability"),
    (["--model-kwargs={{drop_rate: .nan}}"], "model_kwargs must be finite"),
    (["--model-kwargs={{act_before_se: true}}"], "cannot build resnet18: act_before_se puts a ReLU between"),
    (["--model-kwargs={{num_classes: 5}}"], "may not set num_classes: the harness sets it from --dataset"),
    (["--model-kwargs={{in_chans: 1}}"], "may not set in_chans"),
    (["--model-kwargs={{img_size: 64}}"], "may not set img_size: the harness sets it from --img-size"),
    (["--model-kwargs=[1, 2]"], "'model_kwargs' (from the command line) must be a mapping"),
    (["--model-kwargs={{drop_rate: 0.1, drop_rate: 0.2}}"], "the key 'drop_rate' appears twice"),
    (["--config={fx}/harness_option.yaml"], "may not set num_classes"),
    # ambiguity: a key twice, a YAML key twice, empty paths
    (["--epochs=2", "--epochs=3"], "--epochs is given twice"),
    (["--batch-size=16", "--batch_size=32"], "--batch_size is given twice"),
    (["--lr", "0.1", "--lr=0.1"], "--lr is given twice"),
    (["--config={fx}/unknown_key.yaml", "--config={fx}/unknown_key.yaml"], "--config is given twice"),
    (["--config={fx}/duplicate_key.yaml"], "the key 'epochs' appears twice"),
    (["--config={fx}/duplicate_nested_key.yaml"], "the key 'drop_rate' appears twice"),
    (["--config="], "--config needs a file"),
    (["--results-dir="], "--results-dir is empty"),
    (["--plots-dir= "], "--plots-dir is empty"),
    (["--checkpoint=True", "--checkpoint-dir="], "--checkpoint-dir is empty"),
    (["--data-dir="], "--data-dir is empty"),
    # files that are not what they claim
    (["--config={fx}/latin1.yaml"], "is not UTF-8 text (byte 8 is 0xe9)"),
    (["--config=/dev/urandom"], "/dev/urandom is not a regular file"),
    (["--config={fx}"], "is not a regular file"),
    (["--config={fx}/huge.yaml"], "more than a config holds"),
    (["--config={fx}/alias_bomb.yaml"], "aliases (*name) are not accepted"),
    (["--config={fx}/deep.yaml"], "nests too deeply"),
    (["--config={fx}/a_list.yaml"], "must hold a mapping of config keys, not a list"),
    (["--results-dir=/proc/self/results"], "is under /proc"),
    (["--plots-dir=/sys/plots"], "is under /sys"),
    (["--checkpoint=True", "--checkpoint-dir=/dev/ckpt"], "is under /dev"),
    (["--results-dir=line\nbreak"], "must not hold control characters"),
    (["--results-dir=" + "x" * 300], "too long a path"),
    (["--dataset=mnist", "--data-dir={fx}/mnist_bad_label", "--download=false"],
     "t10k-labels-idx1-ubyte holds label 200 at item 3, outside the 10 classes"),
    (["--dataset=mnist", "--data-dir={fx}/mnist_flat_images", "--download=false"], "are not an image file"),
    (["--dataset=cifar10", "--data-dir={fx}/cifar_bad_label", "--download=false"], "data_batch_1 holds label -1"),
    (["--dataset=imagenet", "--data-dir={fx}/imagenet_corrupt", "--workers=0"],
     "img_1.JPEG is truncated (no end-of-image marker)"),
    (["--dataset=imagenet", "--data-dir={fx}/imagenet_png", "--workers=0"], "is not a JPEG"),
    (["--dataset=imagenet", "--data-dir={fx}/imagenet_extra_class", "--workers=0"],
     "has class folders that the training folder lacks (n00000009)"),
    # checkpoints: a schema and a kind, checked field by field before anything is used
    (TINY + ["--resume={fx}/ckpt/best.pt"], "is a best.pt (only the best epoch's weights), but a last.pt"),
    (TINY + ["--resume={fx}/ckpt/model.safetensors"], "holds exported weights (safetensors), not a checkpoint"),
    (TINY + ["--resume={fx}/ckpt/lacks_optimizer.pt"], "it lacks optimizer"),
    (TINY + ["--resume={fx}/ckpt/state_is_a_list.pt"], "its field 'state' is a list, not a dict"),
    (TINY + ["--resume={fx}/ckpt/epoch_is_text.pt"], "state.epoch is 'one', not a number"),
    (TINY + ["--resume={fx}/ckpt/wrong_shape.pt"],
     "model.head.fc.weight is (7, 84) torch.float32, but this run's is (10, 84)"),
    (TINY + ["--resume={fx}/ckpt/extra_weight.pt"], "model has unknown entries ['intruder']"),
    (TINY + ["--resume={fx}/ckpt/optimizer_state_shape.pt"], "not the parameter's"),
    (TINY + ["--resume={fx}/ckpt/best_after_last.pt"], "state counts are inconsistent"),
    (TINY + ["--resume={fx}/ckpt/short_history.pt"], "state.history does not hold one row per epoch"),
    (TINY + ["--resume={fx}/ckpt/nan_history.pt"], "is not a finite number"),
    (TINY + ["--resume={fx}/ckpt/nan_progress.pt"], "state.epoch_progress is not an epoch's progress"),
    (TINY + ["--resume={fx}/ckpt/progress_past_its_epoch.pt"], "stopped at step 1000000 of an epoch, but this run's"),
    (TINY + ["--resume={fx}/ckpt/rng_torn.pt"], "rng"),
    (TINY + ["--resume={fx}/ckpt/scheduler_hijack.pt"], "scheduler has unknown entries ['optimizer']"),
    (TINY + ["--resume={fx}/ckpt/escaping_run_id.pt"], "which is not a run id"),
    (TINY + ["--resume={fx}/ckpt/absolute_run_id.pt"], "which is not a run id"),
    (TINY + ["--resume={fx}/ckpt/dot_run_id.pt"], "which is not a run id"),
    (TINY + ["--resume={fx}/ckpt"], "is not a regular file"),
    (["--resume=/dev/zero"], "/dev/zero is not a regular file"),
    (TINY + ["--resume={fx}/ckpt/wrong_best/last.pt"], "best.pt does not fit this run: model.head.fc.weight"),
    # distillation: the teacher is a saved model of this run's classes and channels
    (["--teacher={fx}/no_teacher"], "no_teacher does not exist"),
    (["--teacher={fx}/read_only"], "holds no model.safetensors, best.pt or last.pt"),
    (["--dataset=synthetic", "--teacher={fx}/ckpt/model.safetensors"],
     "is a lenet5 for 10 classes and 1 channel(s); this run has 10 and 3"),
    (["--distill-alpha=1.5"], "distill_alpha must be at most 1"),
    (["--distill-temperature=0"], "distill_temperature must be positive"),
    # training edges
    (["--batch-size=1"], "resnet18 has BatchNorm layers, which cannot train on batches of 1 image"),
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
    bad_yaml_files(fx)
    bad_datasets(fx)
    forged_checkpoints(fx)


def bad_yaml_files(fx):
    for name, text in [("nan_lr.yaml", "lr: .nan\n"), ("huge_seed.yaml", "seed: 1.0e+30\n"),
                       ("harness_option.yaml", "model_kwargs: {num_classes: 3}\n"),
                       ("duplicate_key.yaml", "epochs: 1\nbatch_size: 16\nepochs: 500\n"),
                       ("duplicate_nested_key.yaml", "model_kwargs:\n  drop_rate: 0.1\n  drop_rate: 0.2\n"),
                       ("huge.yaml", "# padding\n" * 120_000 + "epochs: 1\n"),
                       ("alias_bomb.yaml", "".join(f"l{i}: &l{i} [*l{i - 1}, *l{i - 1}, *l{i - 1}]\n" if i else
                                                   "l0: &l0 [lol, lol, lol]\n" for i in range(12))),
                       ("deep.yaml", "model_kwargs: " + "[" * 5000 + "]" * 5000 + "\n"),
                       ("a_list.yaml", "- epochs\n- 3\n")]:
        (fx / name).write_text(text)
    (fx / "latin1.yaml").write_bytes(b"epochs: \xe9\n")


def write_idx(path, array):
    array = np.asarray(array, dtype=np.uint8)
    path.write_bytes(struct.pack(">HBB", 0, 8, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
                     + array.tobytes())


def write_jpegs(root, classes, per_class=2, broken=None):
    """ImageNet-style folders of real JPEGs; ``broken`` maps a file name to the bytes it gets instead."""
    from torchvision.io import encode_jpeg
    for split, names in classes.items():
        for name in names:
            (root / split / name).mkdir(parents=True)
            for i in range(per_class):
                data = encode_jpeg(torch.full((3, 16, 16), 40 * i, dtype=torch.uint8)).numpy().tobytes()
                (root / split / name / f"img_{i}.JPEG").write_bytes((broken or {}).get(f"img_{i}.JPEG", data))


def bad_datasets(fx):
    for folder, test_labels, train_images in [("mnist_bad_label", [0, 1, 2, 200, 4, 5, 6, 7, 8, 9],
                                               np.zeros((20, 28, 28))),
                                              ("mnist_flat_images", list(range(10)), np.zeros(20))]:
        (fx / folder).mkdir()
        write_idx(fx / folder / "train-images-idx3-ubyte", train_images)
        write_idx(fx / folder / "train-labels-idx1-ubyte", np.arange(20) % 10)
        write_idx(fx / folder / "t10k-images-idx3-ubyte", np.zeros((10, 28, 28)))
        write_idx(fx / folder / "t10k-labels-idx1-ubyte", test_labels)
    batches = fx / "cifar_bad_label" / "cifar-10-batches-py"
    batches.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        labels = [-1, 0] if name == "data_batch_1" else [0, 1]
        (batches / name).write_bytes(pickle.dumps({"data": np.zeros((2, 3072), np.uint8), "labels": labels}))
    two = {"train": ["n00000000", "n00000001"], "val": ["n00000000", "n00000001"]}
    good = (fx / "a_file").read_bytes()
    write_jpegs(fx / "imagenet_corrupt", two, broken={"img_1.JPEG": b"\xff\xd8\xff\xe0" + good})
    write_jpegs(fx / "imagenet_png", two, broken={"img_0.JPEG": b"\x89PNG\r\n\x1a\n" + good})
    write_jpegs(fx / "imagenet_extra_class", {**two, "val": two["val"] + ["n00000009"]})


def forged_checkpoints(fx):
    """A real run's last.pt, best.pt and model.safetensors, and last.pt files forged from them, one flaw each."""
    real, folder = fx / "real_run", fx / "ckpt"
    real.mkdir()
    folder.mkdir()
    cwd = os.getcwd()
    try:
        os.chdir(real)
        assert main.main(BASE + TINY + ["--checkpoint=True", "--model-save=True"]) == 0
    finally:
        os.chdir(cwd)
    saved = real / "checkpoints" / "lenet5_digits_s0"
    for name in ("last.pt", "best.pt"):
        (folder / name).write_bytes((saved / name).read_bytes())
    (folder / "model.safetensors").write_bytes(next(real.glob("results/runs/*/model.safetensors")).read_bytes())
    shutil.rmtree(real)

    def forge(name, change, source="last.pt", into=folder):
        payload = torch.load(folder / source, weights_only=True)
        change(payload)
        into.mkdir(exist_ok=True)
        torch.save(payload, into / name)

    first_param = lambda p: next(iter(p["optimizer"]["state"].values()))  # noqa: E731
    forge("lacks_optimizer.pt", lambda p: p.pop("optimizer"))
    forge("state_is_a_list.pt", lambda p: p.update(state=[1]))
    forge("epoch_is_text.pt", lambda p: p["state"].update(epoch="one"))
    forge("wrong_shape.pt", lambda p: p["model"].update({"head.fc.weight": torch.zeros(7, 84)}))
    forge("extra_weight.pt", lambda p: p["model"].update(intruder=torch.zeros(1)))
    forge("optimizer_state_shape.pt", lambda p: first_param(p).update(exp_avg=torch.zeros(3)))
    forge("best_after_last.pt", lambda p: p["state"].update(best_epoch=5))
    forge("short_history.pt", lambda p: p["state"].update(history=[]))
    forge("nan_history.pt", lambda p: p["state"]["history"][0].update(val_loss=float("nan")))
    progress = {"steps": 1, "loss_sum": 2.0, "correct": 1, "seen": 16, "time_s": 0.1}  # as written mid-epoch
    forge("nan_progress.pt", lambda p: p["state"].update(epoch_progress={**progress, "loss_sum": float("nan")}))
    forge("progress_past_its_epoch.pt", lambda p: p["state"].update(epoch_progress={**progress, "steps": 10**6}))
    forge("rng_torn.pt", lambda p: p["rng"].update(torch=torch.zeros(3, dtype=torch.uint8)))
    forge("scheduler_hijack.pt", lambda p: p["scheduler"].update(optimizer={"param_groups": []}))
    forge("escaping_run_id.pt", lambda p: p.update(run_id="../../../escape"))
    forge("absolute_run_id.pt", lambda p: p.update(run_id="/tmp/escape"))
    forge("dot_run_id.pt", lambda p: p.update(run_id=".."))
    # a last.pt whose best epoch is an earlier one, beside a best.pt of another model's shape
    forge("last.pt", lambda p: p["state"].update(best_epoch=0), into=folder / "wrong_best")
    forge("best.pt", lambda p: p.update(epoch=0, model={**p["model"], "head.fc.weight": torch.zeros(3, 84)}),
          source="best.pt", into=folder / "wrong_best")


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


def strings_in(value, where=()):
    """The place (a key path) of every string inside a checkpoint payload."""
    if isinstance(value, str):
        yield where
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from strings_in(item, where + (key,))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from strings_in(item, where + (i,))


def set_at(payload, where, value):
    for key in where[:-1]:
        payload = payload[key]
    payload[where[-1]] = value


@pytest.mark.slow
def test_no_file_content_places_a_file_outside_the_output_folders(tmp_path, monkeypatch):
    """Every string a real last.pt holds (outside tuples) is replaced in turn by a path leading elsewhere and the
    run resumed: whatever the outcome, every file created lies under the three folders the command line named."""
    work, elsewhere = tmp_path / "work", tmp_path / "elsewhere"
    work.mkdir()
    monkeypatch.chdir(work)
    argv = TINY + ["--checkpoint=True", "--results-dir=out/results", "--plots-dir=out/plots",
                   "--checkpoint-dir=out/ckpt"]
    assert main.main(with_base(argv)) == 0
    last = work / "out" / "ckpt" / "lenet5_digits_s0" / "last.pt"
    clean = last.read_bytes()
    out = work / "out"
    outside = lambda: sorted(p for p in tmp_path.rglob("*") if out not in p.parents and p != out)  # noqa: E731
    before = outside()
    places = list(strings_in(torch.load(last, weights_only=True)))
    assert ("run_id",) in places and ("config", "results_dir") in places
    for i, where in enumerate(places):  # a relative path that climbs out, or an absolute one, in turn
        hostile = "../../../escape" if i % 2 else str(elsewhere / "x")
        payload = torch.load(last, weights_only=True)
        set_at(payload, where, hostile)
        torch.save(payload, last)
        main.main(with_base(argv + ["--epochs=2", "--resume=auto"]))
        assert outside() == before, (where, hostile)
        last.write_bytes(clean)


def test_skip_corrupt_counts_what_it_skipped(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    two = {"train": ["n00000000", "n00000001"], "val": ["n00000000", "n00000001"]}
    write_jpegs(tmp_path / "imagenet", two, per_class=3, broken={"img_1.JPEG": b"\xff\xd8\xff\xe0 cut short"})
    assert main.main(with_base(["--model=lenet5", "--dataset=imagenet", f"--data-dir={tmp_path / 'imagenet'}",
                                "--img-size=12", "--batch-size=2", "--workers=0", "--skip-corrupt"])) == 0
    assert "--skip-corrupt skipped 2 training and 2 validation images" in capsys.readouterr().out
