"""After training: a run's saved model loads (run folder, .safetensors, checkpoints), evaluation reproduces the
test accuracy the run recorded, predict agrees with evaluation image by image, bad input is one line (exit 2);
curves in the run folder, safe file names, summary.json's recipe and device, --list-models=PATTERN."""
import json
import os
from pathlib import Path

import pandas as pd
import pytest
import torch
from PIL import Image

import main
import zoo
from harness import evaluate, predict
from harness.cli import run_command
from harness.config import build_config
from harness.data import load_digits_splits
from harness.io import safe_filename
from harness.plots import curve_figure, plot_curves
from harness.results import recipe_used

# bf16 autocast and channels_last on the CPU: evaluation must rebuild both to reproduce the recorded number.
TRAIN = ["--model=lenet5", "--dataset=digits", "--recipe=seed", "--epochs=2", "--max-steps-per-epoch=8",
         "--batch-size=64", "--device=cpu", "--amp=bf16", "--channels-last=true", "--model-save=True",
         "--checkpoint=True"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("after_training")
    cwd = os.getcwd()
    os.chdir(root)
    try:
        assert main.main(TRAIN) == 0
    finally:
        os.chdir(cwd)
    (run,) = (root / "results" / "runs").iterdir()
    return {"root": root, "run": run, "summary": json.loads((run / "summary.json").read_text()),
            "checkpoints": root / "checkpoints" / "lenet5_digits_s0"}


def run_cli(module, *args):
    return run_command(module.main, [str(a) for a in args])


def files_under(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*") if p.is_file()}


# ---------------------------------------------------------------- saved model → load → evaluate / predict


def test_saved_model_describes_itself(trained):
    model, preprocess, spec = zoo.load_model(trained["run"])
    assert not model.training
    summary = trained["summary"]
    assert (spec.model, spec.num_classes, spec.in_chans, spec.img_size) == ("lenet5", 10, 1, 32)
    assert spec.class_names == tuple("0123456789") and spec.dataset == "digits"
    assert spec.run_id == summary["run_id"] and spec.test_top1 == summary["test_top1_best"]
    assert (spec.amp, spec.channels_last) == ("bf16", True) == (summary["amp"], summary["channels_last"])
    assert preprocess(Image.new("L", (8, 8))).shape == (1, 32, 32)
    card = (trained["run"] / "model.yaml").read_text()
    assert "zoo.load_model" in card and spec.run_id in card and f"test_top1: {spec.test_top1}" in card


def test_evaluate_reproduces_the_recorded_test_accuracy(trained, capsys):
    assert run_cli(evaluate, trained["run"]) == 0
    assert "reproduced" in capsys.readouterr().out
    report = json.loads((trained["run"] / "eval_digits_test.json").read_text())
    assert report["top1"] == trained["summary"]["test_top1_best"] and report["matches_recorded"] is True
    assert report["top5"] == trained["summary"]["test_top5_best"]
    assert (report["amp"], report["channels_last"], report["images"]) == ("bf16", True, 359)
    assert sum(row["images"] for row in report["per_class"]) == 359
    for suffix in ("_per_class.csv", "_confusion.csv", "_confusion.png"):
        assert (trained["run"] / f"eval_digits_test{suffix}").stat().st_size > 100


def test_checkpoints_load_with_their_spec(trained):
    from safetensors.torch import load_file
    exported = load_file(trained["run"] / "model.safetensors")
    best = zoo.load_model(trained["checkpoints"] / "best.pt")
    last = zoo.load_model(trained["checkpoints"] / "last.pt")
    assert best.spec.weights.startswith("best") and last.spec.weights == "last (epoch 2)"
    assert best.spec.run_id == trained["summary"]["run_id"]
    best_state = best.model.state_dict()
    assert all(torch.equal(best_state[k], v) for k, v in exported.items())  # model.safetensors = best weights
    assert zoo.load_model(trained["checkpoints"]).spec.weights == best.spec.weights  # a folder: its best.pt


def test_last_checkpoint_evaluates_to_the_last_epochs_validation(trained, tmp_path):
    assert run_cli(evaluate, trained["checkpoints"] / "last.pt", "--split=val", f"--output-dir={tmp_path}") == 0
    report = json.loads((tmp_path / "eval_digits_val.json").read_text())
    metrics = pd.read_csv(trained["run"] / "metrics.csv")
    assert report["top1"] == metrics.val_top1.iloc[-1] and report["recorded_test_top1"] is None


def test_predict_agrees_with_evaluation_image_by_image(trained, tmp_path):
    _, test = load_digits_splits()
    images = tmp_path / "images"
    images.mkdir()
    count = 24
    for i in range(count):
        Image.fromarray(test.images[i, 0].numpy()).save(images / f"{i:03d}.png")
    # fp32 for both: the same images in other batches then agree to float rounding, not to bf16's.
    loaded = zoo.load_model(trained["run"])
    stream, _ = evaluate.open_split(loaded, "digits", "test", 64, torch.device("cpu"), None, channels_last=False)
    expected = evaluate.evaluate_stream(loaded.model, stream, evaluate.Precision("off", False), 10).predictions
    out = tmp_path / "predictions.csv"
    assert run_cli(predict, trained["run"], images, "--top-k=3", f"--output={out}", "--amp=off",
                   "--channels-last=false") == 0
    rows = pd.read_csv(out)
    top1 = rows[rows["rank"] == 1].sort_values("image")
    assert len(top1) == count and list(top1["class"]) == expected[:count].tolist()
    assert rows.groupby("image").probability.apply(lambda p: p.is_monotonic_decreasing).all()


def test_preprocessing_is_the_evaluation_input_bit_for_bit(trained):
    loaded = zoo.load_model(trained["run"])
    stream, _ = evaluate.open_split(loaded, "digits", "test", 16, torch.device("cpu"), None, channels_last=False)
    batch, _ = next(iter(stream.epoch(0)))
    _, test = load_digits_splits()
    mine = torch.stack([loaded.preprocess(Image.fromarray(test.images[i, 0].numpy())) for i in range(16)])
    assert torch.equal(mine, batch)


def test_imagenet_style_preprocessing_crops_as_the_harness_does():
    from harness.imagenet import augment
    from harness.pixels import Normalise
    spec = zoo.ModelSpec(model="lenet5", num_classes=10, in_chans=3, img_size=24, mean=(0.5, 0.4, 0.3),
                         std=(0.2, 0.25, 0.3), crop_fraction=0.875)
    image = torch.randint(0, 256, (3, 40, 52), dtype=torch.uint8)
    harness_input = Normalise((spec.mean, spec.std), torch.device("cpu"))(augment(image, 24, False, None)[None])[0]
    mine = zoo.saved.preprocessing(spec)(image)
    assert mine.shape == harness_input.shape
    assert (mine - harness_input).abs().max() <= 1.001 / (min(spec.std) * 255)  # at most one grey level apart


def test_the_zoo_loads_saved_models_without_the_harness(trained):
    import subprocess
    import sys
    code = (f"import sys, zoo; m = zoo.load_model({str(trained['run'])!r}); "
            "print(sorted(n for n in sys.modules if n.split('.')[0] == 'harness'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


# ---------------------------------------------------------------- bad input


class NotPlainData:
    """A pickled instance: weights_only loading must refuse it."""


def forged_files(folder: Path, trained) -> dict[str, Path]:
    from safetensors.torch import save_file
    spec = json.loads(json.dumps(zoo.load_model(trained["run"]).spec.__dict__))
    weights = {k: v.contiguous() for k, v in zoo.load_model(trained["run"]).model.state_dict().items()}

    def with_spec(name, text):
        save_file(weights, folder / name, metadata={"zoo_spec": text})
        return folder / name

    (folder / "random.safetensors").write_bytes(os.urandom(256))
    save_file({"w": torch.zeros(2)}, folder / "no_spec.safetensors")
    torch.save({"model": NotPlainData()}, folder / "pickled.pt")
    torch.save({"model": weights}, folder / "no_spec.pt")
    return {
        "random bytes": (folder / "random.safetensors", "not a readable safetensors file"),
        "no spec": (folder / "no_spec.safetensors", "has no 'zoo_spec' metadata"),
        "bad json": (with_spec("bad_json.safetensors", "{not json"), "not valid JSON"),
        "wrong type": (with_spec("wrong_type.safetensors", json.dumps({**spec, "num_classes": "ten"})),
                       "'num_classes' must be int"),
        "unknown model": (with_spec("unknown.safetensors", json.dumps({**spec, "model": "lenet9"})),
                          "cannot be built here"),
        "unknown option": (with_spec("option.safetensors", json.dumps({**spec, "model_kwargs": {"wings": 2}})),
                           "cannot be built here"),
        "weights misfit": (with_spec("misfit.safetensors", json.dumps({**spec, "num_classes": 7,
                                                                       "class_names": []})), "do not fit"),
        "mean length": (with_spec("mean.safetensors", json.dumps({**spec, "mean": [0.1, 0.2]})),
                        "mean and std need 1 values"),
        "pickled object": (folder / "pickled.pt", "arbitrary Python objects"),
        "checkpoint without spec": (folder / "no_spec.pt", "has no model spec"),
        "missing": (folder / "nothing_here.safetensors", "does not exist"),
        "folder without a model": (folder / "empty", "holds no model.safetensors"),
    }


def test_forged_or_wrong_files_are_one_clear_error(trained, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    for case, (path, words) in forged_files(tmp_path, trained).items():
        with pytest.raises(zoo.SavedModelError, match=words):
            zoo.load_model(path)
        before = files_under(tmp_path)
        assert run_cli(evaluate, path) == 2, case
        err = capsys.readouterr().err
        assert err.startswith("error: ") and words in err and err.count("\n") == 1, (case, err)
        assert files_under(tmp_path) == before, case


@pytest.mark.parametrize("args, words", [
    (["--dataset=synthetic"], "3-channel images"),
    (["--dataset=imagenette"], "unknown dataset"),
    (["--split=train"], "invalid choice"),
    (["--batch-size=0"], "must be positive"),
    (["--amp=fp8"], "invalid choice"),
    (["--device=cuda:7"] if not torch.cuda.is_available() else ["--bogus"], "CUDA" if not torch.cuda.is_available()
     else "unrecognized"),
])
def test_evaluate_bad_options(trained, capsys, args, words):
    before = files_under(trained["run"])
    assert run_cli(evaluate, trained["run"], *args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and words in err and err.count("\n") == 1, err
    assert files_under(trained["run"]) == before


def test_predict_bad_input(trained, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "broken.png").write_bytes(b"not a png")
    cases = [([tmp_path / "broken.png"], "is not an image"), ([tmp_path / "empty"], "holds no image files"),
             ([tmp_path / "missing.png"], "does not exist"), ([tmp_path / "broken.png", "--top-k=0"], "must be positive"),
             ([tmp_path / "broken.png", f"--output={tmp_path / 'p.txt'}"], "must name a .csv file")]
    for args, words in cases:
        before = files_under(trained["run"]) | files_under(tmp_path)
        assert run_cli(predict, trained["run"], *args) == 2, args
        err = capsys.readouterr().err
        assert err.startswith("error: ") and words in err and err.count("\n") == 1, err
        assert files_under(trained["run"]) | files_under(tmp_path) == before


# ---------------------------------------------------------------- item 5: what a run leaves


def test_curves_live_in_the_run_folder_and_the_latest_in_plots(trained):
    for kind in ("accuracy", "loss"):
        assert (trained["run"] / f"curves_{kind}.png").stat().st_size > 1000
        assert (trained["root"] / "plots" / f"lenet5_digits_{kind}.png").read_bytes() == \
            (trained["run"] / f"curves_{kind}.png").read_bytes()


def test_loss_axis_is_logarithmic_past_a_decade_and_epoch_ticks_are_whole():
    rows = [{"epoch": e, "train_loss": 3.0 / e ** 2, "val_loss": 2.5 / e ** 2, "train_top1": 10.0 * e,
             "val_top1": 9.0 * e} for e in range(1, 5)]
    loss = curve_figure(rows, "t", "loss", "loss").axes[0]
    assert loss.get_yscale() == "log"
    assert curve_figure(rows[:2], "t", "loss", "loss").axes[0].get_yscale() == "linear"
    accuracy = curve_figure(rows, "t", "top1", "acc").axes[0]
    ticks = [t for t in accuracy.get_xticks() if 1 <= t <= 4]
    assert ticks and all(float(t).is_integer() for t in ticks)


def test_file_names_are_safe_for_external_models(tmp_path):
    assert safe_filename("tv:resnet18") == "tv-resnet18" and safe_filename("timm:vit/b") == "timm-vit-b"
    rows = [{"epoch": 1, "train_loss": 1.0, "val_loss": 1.1, "train_top1": 50.0, "val_top1": 40.0}]
    paths = plot_curves(rows, "tv:resnet18", "digits", tmp_path / "run", str(tmp_path / "plots"))
    assert all(":" not in p.name for p in paths) and (tmp_path / "plots" / "tv-resnet18_digits_loss.png").exists()


def test_summary_says_what_was_really_used(trained):
    summary = trained["summary"]
    assert summary["device"] == "cpu" and "cuda_version" not in summary and summary["recipe"] == "seed"
    assert recipe_used(build_config({"model": "lenet5", "recipe": "paper"})) == "paper"
    assert recipe_used(build_config({"model": "tv:resnet18", "recipe": "paper"})) == "seed"  # no paper recipe


def test_list_models_filters(capsys):
    assert main.main(["--list-models=resnet1*"]) == 0
    names = [line.split()[0] for line in capsys.readouterr().out.splitlines()[1:]]
    assert names and all(n.startswith("resnet1") for n in names) and "resnet18" in names
    assert main.main(["--list-models", "mixer"]) == 0  # a word: names that contain it
    assert all("mixer" in line.split()[0] for line in capsys.readouterr().out.splitlines()[1:])
    assert main.main(["--list-models=no_such_model"]) == 2
    assert "no registered model matches" in capsys.readouterr().err
