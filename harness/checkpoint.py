"""Checkpoints that resume a run exactly, written atomically and loaded without unpickling code.

A checkpoint holds only tensors and plain Python data (so ``torch.load(weights_only=True)`` reads it):
model, optimizer, scheduler and grad-scaler states, the epoch and step, every RNG state, the metric
history, the best epoch so far, the run id and the resolved config.

Every epoch writes last.pt, then best.pt when the epoch improved, so best.pt is never ahead of last.pt: on
resume the best weights are last.pt's own when its best epoch is its last epoch (and a best.pt that a kill
left unwritten is written then), else best.pt's (which that epoch wrote). One live run at a time may use a checkpoint folder (an flock on its ``.lock``, released
by the kernel however the process ends).
"""
from __future__ import annotations

import fcntl
import io
import os
import pickle
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from harness.config import Config
from harness.errors import UsageError
from harness.io import remove_stale_temporaries, write_bytes

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
    except pickle.UnpicklingError as err:
        if "GLOBAL" in str(err) or "Unsupported class" in str(err):  # the words of torch's weights-only refusal
            raise UsageError(f"checkpoint {path} holds arbitrary Python objects and was refused (only tensors "
                             f"and plain data load): use a checkpoint written by this project") from None
        raise UsageError(f"checkpoint {path} is corrupted or truncated (not a readable pickle): "
                         f"delete it, or resume from another one") from None
    except Exception as err:  # noqa: BLE001 — a damaged file breaks torch.load in many ways; all mean the same
        first_line = (str(err).splitlines() or [type(err).__name__])[0][:80]
        raise UsageError(f"checkpoint {path} is corrupted or truncated ({first_line}): "
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


def selected_weights(payload: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The weights of last.pt that competed for the best epoch: the EMA's when the run selected by EMA."""
    return payload["ema"]["module"] if "ema" in payload and payload["config"].get("ema_select") else payload["model"]


def best_weights_on_resume(payload: dict[str, Any], folder: Path) -> dict[str, torch.Tensor] | None:
    """The weights of the best epoch so far of a resumed run (None before its first epoch)."""
    state = payload["state"]
    if state["epoch"] == 0:
        return None
    if state["best_epoch"] == state["epoch"]:
        return selected_weights(payload)
    path = folder / "best.pt"
    best = load(path) if path.is_file() else None
    if best is None or best.get("epoch") != state["best_epoch"]:
        raise UsageError(f"{path} does not hold epoch {state['best_epoch']}, the best epoch recorded in "
                         f"{folder / 'last.pt'}: restore it, or start a new run without --resume")
    return best["model"]


def save_best(folder: Path, weights: dict[str, torch.Tensor], epoch: int, config: dict, run_id: str) -> None:
    save(folder / "best.pt", {"model": weights, "epoch": epoch, "config": config, "run_id": run_id})


def write_owed_best(payload: dict[str, Any], folder: Path) -> None:
    """A run killed between writing last.pt and best.pt for an improved epoch: write that best.pt now."""
    state, path = payload["state"], folder / "best.pt"
    if state["epoch"] == 0 or state["best_epoch"] != state["epoch"]:
        return
    if path.is_file() and load(path).get("epoch") == state["epoch"]:
        return
    save_best(folder, selected_weights(payload), state["epoch"], payload["config"], payload["run_id"])


_held_locks: dict[Path, int] = {}


def claim_folder(folder: Path) -> None:
    """Make this process the only live run writing checkpoints to ``folder``, then clear killed writes."""
    folder.mkdir(parents=True, exist_ok=True)
    key = folder.resolve()
    if key in _held_locks:  # this process already holds it (an earlier run() in the same process)
        return
    fd = os.open(folder / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise UsageError(f"another run is writing checkpoints to {folder} right now: wait for it to end, "
                         f"or give this run another --seed or --checkpoint-dir") from None
    _held_locks[key] = fd
    remove_stale_temporaries(folder)


def release_folder(folder: Path) -> None:
    fd = _held_locks.pop(folder.resolve(), None)
    if fd is not None:
        os.close(fd)
