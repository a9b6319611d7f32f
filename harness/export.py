"""What a finished run leaves for later use (``--model-save=True``), in its run folder:

- ``model.safetensors``: the weights of the best validation epoch (the EMA's when the run selects by EMA), with
  a ``zoo.saved.ModelSpec`` in the metadata, so ``zoo.load_model`` rebuilds the model from the file alone;
- ``model.yaml``: the model card, for people: how to load, evaluate and predict; the architecture and its
  input; the classes; how it was trained; its test accuracy and the precision it was measured with.

Checkpoints carry the same spec (``model_spec``), so last.pt and best.pt load with ``zoo.load_model`` too.
"""
from __future__ import annotations

import hashlib
from dataclasses import asdict, replace
from typing import TYPE_CHECKING, Any

import yaml

import zoo
from harness.data import NORMALISATION
from harness.imagenet import EVAL_CROP_FRACTION
from harness.io import write_bytes, write_text
from zoo.saved import SAFETENSORS_NAME, ModelSpec, safetensors_bytes

if TYPE_CHECKING:
    from harness.train import Session

CARD_NAME = "model.yaml"


def model_spec(s: "Session") -> ModelSpec:
    """The spec of the session's model: how to rebuild it, feed it, and where its weights come from."""
    cfg, setting = s.cfg, s.fast_path.setting
    mean, std = NORMALISATION[cfg.dataset]
    return ModelSpec(
        model=s.info.name, num_classes=s.data.num_classes, in_chans=s.data.in_chans, img_size=s.img_size,
        mean=tuple(mean), std=tuple(std), model_kwargs=model_kwargs(s), class_names=s.data.class_names,
        crop_fraction=EVAL_CROP_FRACTION if cfg.dataset == "imagenet" else 1.0,
        run_id=s.record.run_id, dataset=cfg.dataset, seed=cfg.seed, val_fraction=cfg.val_fraction,
        amp=setting.amp, channels_last=setting.channels_last, device=s.device.type, batch_size=cfg.batch_size)


def model_kwargs(s: "Session") -> dict[str, Any]:
    """The builder options that rebuild the model: the run's own, over the conventions of pretrained weights
    (zoo.pretrained builds a model the way its source was trained, e.g. EfficientNet with BN eps 1e-5)."""
    return {**getattr(s.model, "pretrained_options", {}), **s.cfg.model_kwargs}


def checkpoint_spec(s: "Session", which: str) -> dict[str, Any]:
    """The spec a checkpoint carries (plain data: checkpoints load with weights_only=True)."""
    return asdict(replace(model_spec(s), weights=f"{which} ({s.position()})"))


def export_model(s: "Session", summary: dict[str, Any]) -> None:
    """Write model.safetensors (best-validation weights) and its card into the run folder."""
    best = s.best_weights is not None
    weights = s.best_weights if best else s.model.state_dict()
    which = f"best (epoch {s.state.best_epoch})" if best else f"last (epoch {s.state.epoch})"
    spec = replace(model_spec(s), weights=which,
                   test_top1=summary["test_top1_best"] if best else summary["test_top1_last"])
    data = safetensors_bytes(weights, spec)
    write_bytes(s.record.folder / SAFETENSORS_NAME, data)
    write_text(s.record.folder / CARD_NAME, model_card(spec, summary, hashlib.sha256(data).hexdigest()))


def model_card(spec: ModelSpec, summary: dict[str, Any], sha256: str) -> str:
    info = zoo.get_model_info(spec.model)
    best = spec.weights.startswith("best")
    card = {
        "model": {"name": spec.model, "family": info.family, "paper": info.paper, "year": info.year,
                  "options": spec.model_kwargs, "params": summary["params"], "num_classes": spec.num_classes},
        "input": {"channels": spec.in_chans, "size": spec.img_size, "mean": list(spec.mean), "std": list(spec.std),
                  "crop_fraction": spec.crop_fraction,
                  "pixels": ("the centre square of crop_fraction of the shorter side, " if spec.crop_fraction < 1
                             else "the whole image, ") + "resized (bilinear) to size x size, then (x / 255 - mean) / std"},
        "classes": list(spec.class_names),
        "training": {key: summary[key] for key in ("run_id", "dataset", "recipe", "epochs", "batch_size", "seed",
                                                   "best_epoch", "best_val_top1", "git_commit") if key in summary},
        "results": {
            "weights": spec.weights,
            "test_top1": spec.test_top1,
            "test_top5": summary["test_top5_best" if best else "test_top5_last"],
            "test_top1_last_epoch": summary["test_top1_last"],
            "measured_with": {"amp": spec.amp, "channels_last": spec.channels_last, "device": spec.device,
                              "device_name": summary.get("device_name"), "batch_size": spec.batch_size},
        },
        "file": {"name": SAFETENSORS_NAME, "sha256": sha256},
    }
    header = (f"# Model card: {spec.model} trained on {spec.dataset} (run {spec.run_id}).\n"
              f"# Everything here comes from the run; {SAFETENSORS_NAME} holds the same spec in its metadata.\n"
              f"#   model, preprocess, spec = zoo.load_model(FOLDER)         # in Python\n"
              f"#   python -m harness.evaluate FOLDER [--dataset=NAME]       # reproduces results.test_top1\n"
              f"#   python -m harness.predict FOLDER IMAGE_OR_FOLDER ...     # top-k classes\n")
    return header + yaml.safe_dump(card, sort_keys=False, allow_unicode=True)
