"""Every seed-project name (and the small models the issues name) trains from main.py on digits with
its paper recipe: build, one training step, validation, test, results. One step keeps CI fast; the
full-epoch runs are the same code path."""
import json
from pathlib import Path

import pytest

import main

pytestmark = pytest.mark.slow  # one end-to-end run from main.py per name

SEED_NAMES = ["alexnet", "vggnet", "nin", "resnet", "densenet", "googlenet", "cnn", "mobilenetv1", "mobilenetv2",
              "inceptionv3", "xception", "resnext", "senet", "darknet", "squeezenet", "shufflenet", "efficientnetb0",
              "efficientnetv2", "vit", "mlpmixer", "resmlp", "gmlp", "nfnet", "sdpnet"]
ISSUE_NAMES = ["cct_7_3x1", "vit_lite_7_4", "sdpnet_cifar", "resnet18_sam"]


@pytest.mark.parametrize("name", SEED_NAMES + ISSUE_NAMES)
def test_trains_from_main_on_digits(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main.main([f"--model={name}", "--dataset=digits", "--epochs=1", "--max-steps-per-epoch=1",
                      "--batch-size=16", "--device=cpu"]) == 0
    summary = json.loads(next(Path("results/runs").glob("*/summary.json")).read_text())
    assert summary["status"] == "completed" and summary["recipe"] == "paper"
