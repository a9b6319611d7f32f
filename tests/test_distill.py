"""Soft distillation (harness/distill.py): the loss is the formula, the teacher sees the student's images in its
own normalisation and size, its term reaches the gradient, and alpha = 0 is the run without a teacher."""
import copy
import json
import os

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

import main
import zoo
from harness.config import build_config
from harness.data import NORMALISATION
from harness.distill import Teacher
from harness.pixels import Normalise
from harness.recipes import GradientClipping
from harness.train import StepTools, train_step

RUN = ["--model=lenet5", "--dataset=digits", "--recipe=seed", "--epochs=1", "--max-steps-per-epoch=6",
       "--batch-size=32", "--device=cpu", "--amp=off", "--channels-last=false", "--model-save=True",
       "--deterministic=True"]


def train(root, *extra) -> dict:
    """One short run in ``root``: its summary and final weights."""
    cwd = os.getcwd()
    os.chdir(root)
    try:
        before = set((root / "results" / "runs").glob("*")) if (root / "results" / "runs").is_dir() else set()
        assert main.main(RUN + list(extra)) == 0
        (run,) = set((root / "results" / "runs").glob("*")) - before
    finally:
        os.chdir(cwd)
    return {"run": run, "summary": json.loads((run / "summary.json").read_text()),
            "weights": load_file(run / "model.safetensors")}


@pytest.fixture(scope="module")
def teacher_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("teacher")
    return root, train(root, "--seed=3")


def test_loss_is_the_weighted_label_loss_plus_the_tempered_kl():
    teacher = Teacher(torch.nn.Identity(), torch.ones(1), torch.zeros(1), img_size=4, alpha=0.3, temperature=2.0)
    student, target = torch.randn(5, 7, dtype=torch.float64), torch.randn(5, 7, dtype=torch.float64)
    label_loss = torch.tensor(1.7, dtype=torch.float64)
    p_teacher = F.softmax(target / 2.0, dim=1)
    kl = (p_teacher * (p_teacher.log() - F.log_softmax(student / 2.0, dim=1))).sum(1).mean()
    expected = 0.7 * label_loss + 0.3 * 4.0 * kl
    torch.testing.assert_close(teacher.loss(label_loss, student, target).double(), expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(teacher.loss(label_loss, target, target).double(), 0.7 * label_loss,
                               rtol=1e-6, atol=1e-6)


def test_teacher_sees_the_students_pixels_in_its_own_normalisation_and_size(teacher_run):
    _, run = teacher_run
    # A student on MNIST's statistics at 16 px; the teacher was trained on digits at 32 px.
    teacher = Teacher.load(str(run["run"]), mean_std=NORMALISATION["mnist"], num_classes=10, in_chans=1, alpha=0.5,
                           temperature=1.0, device=torch.device("cpu"))
    assert teacher.renormalise and teacher.img_size == 32
    pixels = torch.randint(0, 256, (4, 1, 16, 16)).float()
    student_input = Normalise(NORMALISATION["mnist"], torch.device("cpu"))(pixels)
    resized = F.interpolate(pixels, size=(32, 32), mode="bilinear", antialias=True, align_corners=False)
    model, _, _ = zoo.load_model(run["run"])
    with torch.no_grad():
        expected = model(Normalise(NORMALISATION["digits"], torch.device("cpu"))(resized))
    torch.testing.assert_close(teacher.logits(student_input), expected, rtol=1e-4, atol=1e-4)
    assert not any(p.requires_grad for p in teacher.model.parameters())


@pytest.mark.parametrize("alpha,pulled", [(1.0, False), (0.5, True)])
def test_the_distillation_term_reaches_the_gradient(teacher_run, alpha, pulled):
    """A student equal to its teacher gets no gradient from the KL term (alpha = 1: zero up to rounding); the
    label term still pulls it (alpha = 0.5)."""
    _, run = teacher_run
    teacher = Teacher.load(str(run["run"]), mean_std=NORMALISATION["digits"], num_classes=10, in_chans=1,
                           alpha=alpha, temperature=2.0, device=torch.device("cpu"))
    student = copy.deepcopy(teacher.model).requires_grad_(True)  # eval mode: BatchNorm as in the teacher
    cfg = build_config({"model": "lenet5", "recipe": "seed"})
    optimizer = torch.optim.SGD(student.parameters(), lr=0.0)  # the step leaves the gradients to inspect
    x, y = torch.randn(8, 1, 32, 32), torch.randint(0, 10, (8,))
    train_step(student, x, y, optimizer, torch.amp.GradScaler("cpu", enabled=False), None, cfg, (),
               StepTools(GradientClipping(cfg, student), teacher=teacher))
    largest = max(p.grad.abs().max().item() for p in student.parameters())
    assert (largest > 1e-3) is pulled and (largest < 1e-6 or pulled)


def test_alpha_zero_is_the_run_without_a_teacher_and_the_run_records_its_teacher(teacher_run):
    root, run = teacher_run
    plain = train(root)
    silent = train(root, f"--teacher={run['run']}", "--distill-alpha=0")
    taught = train(root, f"--teacher={run['run']}", "--distill-alpha=0.9", "--distill-temperature=4")
    for name, value in plain["weights"].items():
        torch.testing.assert_close(silent["weights"][name], value, rtol=0, atol=0)
    assert any(not torch.equal(taught["weights"][k], v) for k, v in plain["weights"].items())
    config = (taught["run"] / "config.yaml").read_text()
    assert f"teacher: {run['run']}" in config and "distill_alpha: 0.9" in config
