"""Checkpoints that resume a run exactly, written atomically and loaded without unpickling code.

A checkpoint holds only tensors and plain Python data (so ``torch.load(weights_only=True)`` reads it);
``LastCheckpoint`` and ``BestCheckpoint`` below say which fields last.pt and best.pt hold.

Every epoch writes last.pt, then best.pt when the epoch improved, so best.pt is never ahead of last.pt: on
resume the best weights are last.pt's own when its best epoch is its last epoch (and a best.pt that a kill
left unwritten is written then), else best.pt's (which that epoch wrote). One live run at a time may use a
checkpoint folder: ``FolderLock`` holds an flock on its ``.lock`` for the run, released when the run ends
however it ends (by the kernel, if the process is killed).
"""
from __future__ import annotations

import fcntl
import io
import os
import pickle
import random
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from harness.config import Config
from harness.errors import UsageError
from harness.io import remove_stale_temporaries, safe_filename, write_bytes

FORMAT_VERSION = 1
# Keys a resumed run may change without breaking exact continuation of the interrupted one.
RESUME_MAY_CHANGE = {"epochs", "resume", "device", "workers", "checkpoint", "checkpoint_dir", "model_save",
                     "results_dir", "plots_dir", "data_dir", "download"}


def checkpoint_folder(cfg: Config) -> Path:
    return Path(cfg.checkpoint_dir) / f"{safe_filename(cfg.model)}_{cfg.dataset}_s{cfg.seed}"


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


# ---------------------------------------------------------------- what last.pt and best.pt hold

LAST, BEST = "last.pt", "best.pt"


@dataclass
class LastCheckpoint:
    """last.pt: everything that continues the run exactly where its last epoch ended."""
    model: dict
    optimizer: dict
    scheduler: dict
    scaler: dict
    state: dict          # harness.train.TrainState as a dict: epoch, step, history, best epoch, elapsed time
    rng: dict            # capture_rng()
    config: dict         # the resolved Config
    run_id: str
    ema: dict | None = None   # only when the recipe keeps an EMA
    model_spec: dict | None = None  # zoo.saved.ModelSpec as a dict: zoo.load_model rebuilds the model from it

    @property
    def selected_weights(self) -> dict[str, torch.Tensor]:
        """The weights that competed for the best epoch: the EMA's when the run selected by EMA."""
        return self.ema["module"] if self.ema is not None and self.config.get("ema_select") else self.model


@dataclass
class BestCheckpoint:
    """best.pt: the weights of the best validation epoch so far."""
    model: dict
    epoch: int
    config: dict
    run_id: str
    model_spec: dict | None = None  # as in LastCheckpoint


def _payload(ckpt: LastCheckpoint | BestCheckpoint) -> dict[str, Any]:
    values = {f.name: getattr(ckpt, f.name) for f in fields(ckpt)}
    return {"format_version": FORMAT_VERSION, **{k: v for k, v in values.items() if v is not None}}


def _from_payload(kind: type, payload: dict[str, Any], path: Path):
    names = {f.name for f in fields(kind)}
    required = {f.name for f in fields(kind) if f.default is MISSING}
    missing = sorted(required - set(payload))
    if missing:
        raise UsageError(f"{path} is not a {kind.__name__} of this project (it lacks {', '.join(missing)}): "
                         f"resume from a {LAST if kind is LastCheckpoint else BEST} written by this project")
    return kind(**{k: v for k, v in payload.items() if k in names})


def save(path: Path, ckpt: LastCheckpoint | BestCheckpoint) -> None:
    buffer = io.BytesIO()
    torch.save(_payload(ckpt), buffer)
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


def load_last(path: Path) -> LastCheckpoint:
    return _from_payload(LastCheckpoint, load(path), path)


def load_best(path: Path) -> BestCheckpoint:
    return _from_payload(BestCheckpoint, load(path), path)


# ---------------------------------------------------------------- resuming


def check_compatible(last: LastCheckpoint, cfg: Config, path: Path) -> None:
    saved = last.config
    if saved["model"] != cfg.model:
        raise UsageError(f"checkpoint {path} is of model {saved['model']}, not {cfg.model}: "
                         f"pass --model={saved['model']} or another checkpoint")
    current = cfg.to_dict()
    differing = sorted(k for k in current if k not in RESUME_MAY_CHANGE and saved.get(k) != current[k])
    if differing:
        detail = ", ".join(f"{k}={saved.get(k)!r} (now {current[k]!r})" for k in differing[:4])
        raise UsageError(f"checkpoint {path} was trained with a different config: {detail}; "
                         f"resume with the same settings or start a new run")


def resolve_resume(cfg: Config, folder: Path) -> Path | None:
    """``--resume=auto`` finds the last checkpoint in this run's checkpoint folder; a path names one."""
    if not cfg.resume:
        return None
    if cfg.resume == "auto":
        path = folder / LAST
        if not path.is_file():
            raise UsageError(f"--resume=auto found nothing to resume in {folder}: "
                             f"train with --checkpoint=True first, or drop --resume")
        return path
    return Path(cfg.resume)


def best_weights_on_resume(last: LastCheckpoint, folder: Path) -> dict[str, torch.Tensor] | None:
    """The weights of the best epoch so far of a resumed run (None before its first epoch)."""
    epoch, best_epoch = last.state["epoch"], last.state["best_epoch"]
    if epoch == 0:
        return None
    if best_epoch == epoch:
        return last.selected_weights
    path = folder / BEST
    best = load_best(path) if path.is_file() else None
    if best is None or best.epoch != best_epoch:
        raise UsageError(f"{path} does not hold epoch {best_epoch}, the best epoch recorded in "
                         f"{folder / LAST}: restore it, or start a new run without --resume")
    return best.model


def owed_best(last: LastCheckpoint, folder: Path) -> BestCheckpoint | None:
    """The best.pt that a run killed between writing last.pt and best.pt for an improved epoch still owes."""
    epoch, path = last.state["epoch"], folder / BEST
    if epoch == 0 or last.state["best_epoch"] != epoch:
        return None
    if path.is_file() and load_best(path).epoch == epoch:
        return None
    return BestCheckpoint(last.selected_weights, epoch, last.config, last.run_id, last.model_spec)


class FolderLock:
    """``with FolderLock(folder):`` makes this process the only live run writing checkpoints to ``folder``
    (then clears killed writes); released when the block ends, however it ends."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.fd: int | None = None

    def __enter__(self) -> "FolderLock":
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.folder / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise UsageError(f"another run is writing checkpoints to {self.folder} right now: wait for it to end, "
                             f"or give this run another --seed or --checkpoint-dir") from None
        self.fd = fd
        remove_stale_temporaries(self.folder)
        return self

    def __exit__(self, *exc_info) -> None:
        os.close(self.fd)  # closing the descriptor releases the flock
        self.fd = None
