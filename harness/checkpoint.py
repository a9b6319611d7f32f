"""Checkpoints that resume a run exactly, written atomically and loaded without unpickling code.

A checkpoint holds only tensors and plain Python data (so ``torch.load(weights_only=True)`` reads it):
model, optimizer, scheduler and grad-scaler states, the epoch and step, every RNG state, the metric
history, the best epoch so far, the run id and the resolved config.
"""
from __future__ import annotations

import io
import pickle
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from harness.config import Config
from harness.errors import UsageError
from harness.io import write_bytes

FORMAT_VERSION = 1
# Keys a resumed run may change without breaking exact continuation of the interrupted one.
RESUME_MAY_CHANGE = {"epochs", "resume", "device", "workers", "checkpoint", "checkpoint_dir", "model_save",
                     "results_dir", "plots_dir", "data_dir", "download"}


def checkpoint_folder(cfg: Config) -> Path:
    return Path(cfg.checkpoint_dir) / f"{cfg.model}_{cfg.dataset}_s{cfg.seed}"


def capture_rng() -> dict[str, Any]:
    version, mt_state, gauss = random.getstate()
    np_kind, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    return {
        "python": [version, list(mt_state), gauss],
        "numpy": [np_kind, torch.from_numpy(np_keys.astype(np.int64)), np_pos, np_has_gauss, np_gauss],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def restore_rng(state: dict[str, Any]) -> None:
    version, mt_state, gauss = state["python"]
    random.setstate((version, tuple(mt_state), gauss))
    np_kind, np_keys, np_pos, np_has_gauss, np_gauss = state["numpy"]
    np.random.set_state((np_kind, np_keys.numpy().astype(np.uint32), np_pos, np_has_gauss, np_gauss))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save(path: Path, payload: dict[str, Any]) -> None:
    buffer = io.BytesIO()
    torch.save({"format_version": FORMAT_VERSION, **payload}, buffer)
    write_bytes(path, buffer.getvalue())


def load(path: Path) -> dict[str, Any]:
    """Read a checkpoint safely; every way it can be wrong is one clear UsageError."""
    if not path.is_file():
        raise UsageError(f"checkpoint {path} does not exist: check the path or drop --resume")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise UsageError(f"checkpoint {path} holds arbitrary Python objects and was refused "
                         f"(only tensors and plain data load): use a checkpoint written by this project") from None
    except (RuntimeError, EOFError, OSError, ValueError) as err:
        raise UsageError(f"checkpoint {path} is corrupted or truncated ({str(err).splitlines()[0][:80]}): "
                         f"delete it, or resume from another one") from None
    if not isinstance(payload, dict) or payload.get("format_version") != FORMAT_VERSION:
        raise UsageError(f"{path} is not a checkpoint of this project (format {FORMAT_VERSION})")
    return payload


def check_compatible(payload: dict[str, Any], cfg: Config, path: Path) -> None:
    saved = payload["config"]
    if saved["model"] != cfg.model:
        raise UsageError(f"checkpoint {path} is of model {saved['model']}, not {cfg.model}: "
                         f"pass --model={saved['model']} or another checkpoint")
    current = cfg.to_dict()
    differing = sorted(k for k in current if k not in RESUME_MAY_CHANGE and saved.get(k) != current[k])
    if differing:
        detail = ", ".join(f"{k}={saved.get(k)!r} (now {current[k]!r})" for k in differing[:4])
        raise UsageError(f"checkpoint {path} was trained with a different config: {detail}; "
                         f"resume with the same settings or start a new run")


def resolve_resume(cfg: Config) -> Path | None:
    """``--resume=auto`` finds this model/dataset/seed's last checkpoint; a path names one."""
    if not cfg.resume:
        return None
    if cfg.resume == "auto":
        path = checkpoint_folder(cfg) / "last.pt"
        if not path.is_file():
            raise UsageError(f"--resume=auto found nothing to resume in {path.parent}: "
                             f"train with --checkpoint=True first, or drop --resume")
        return path
    return Path(cfg.resume)
