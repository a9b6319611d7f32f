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
import math
import os
import pickle
import random
import re
import stat
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from harness.config import Config
from harness.config import defaults as config_defaults
from harness.errors import UsageError
from harness.io import remove_stale_temporaries, safe_filename, write_bytes
from harness.results import check_run_id

FORMAT_VERSION = 1
# Keys a resumed run may change without breaking exact continuation of the interrupted one.
RESUME_MAY_CHANGE = {"epochs", "resume", "device", "workers", "checkpoint", "checkpoint_minutes", "checkpoint_dir",
                     "model_save", "results_dir", "plots_dir", "data_dir", "download"}
# What harness.train.save_mid_epoch records of the epoch in progress (TrainState.epoch_progress).
EPOCH_PROGRESS = {"steps", "loss_sum", "correct", "seen", "time_s"}


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
    KIND: ClassVar[str] = "last"
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
    KIND: ClassVar[str] = "best"
    model: dict
    epoch: int
    config: dict
    run_id: str
    model_spec: dict | None = None  # as in LastCheckpoint


KIND_FILES = {"last": LAST, "best": BEST}
# The type of each field as read from a file (torch.load gives plain dicts, lists, numbers and tensors).
FIELD_TYPES = {"model": dict, "optimizer": dict, "scheduler": dict, "scaler": dict, "state": dict, "rng": dict,
               "config": dict, "run_id": str, "ema": dict, "model_spec": dict, "epoch": int}
def _payload(ckpt: LastCheckpoint | BestCheckpoint) -> dict[str, Any]:
    values = {f.name: getattr(ckpt, f.name) for f in fields(ckpt)}
    return {"format_version": FORMAT_VERSION, "kind": ckpt.KIND, **{k: v for k, v in values.items() if v is not None}}


def _kind_of(payload: dict[str, Any]) -> str:
    """The payload's kind; files written before kinds were recorded are told apart by their fields."""
    return payload.get("kind") or ("last" if "optimizer" in payload else "best" if "epoch" in payload else "?")


def _from_payload(kind: type, payload: dict[str, Any], path: Path):
    found = _kind_of(payload)
    if found != kind.KIND:
        what = {"last": "a last.pt (a run's latest state)", "best": "a best.pt (only the best epoch's weights)"}
        raise UsageError(f"{path} is {what.get(found, 'not a checkpoint kind of this project')}, but "
                         f"{what[kind.KIND]} is needed here: name the {KIND_FILES[kind.KIND]} of the run")
    names = {f.name for f in fields(kind)}
    required = {f.name for f in fields(kind) if f.default is MISSING}
    missing = sorted(required - set(payload))
    if missing:
        raise UsageError(f"{path} is not a {KIND_FILES[kind.KIND]} of this project (it lacks {', '.join(missing)}): "
                         f"use one written by this project")
    for name in names & set(payload):
        value = payload[name]
        if not isinstance(value, FIELD_TYPES[name]) or isinstance(value, bool):
            raise UsageError(f"{path} is damaged: its field '{name}' is a {type(value).__name__}, not a "
                             f"{FIELD_TYPES[name].__name__}; use another checkpoint")
    check_run_id(payload["run_id"], f"checkpoint {path}")
    return kind(**{k: v for k, v in payload.items() if k in names})


def save(path: Path, ckpt: LastCheckpoint | BestCheckpoint) -> None:
    buffer = io.BytesIO()
    torch.save(_payload(ckpt), buffer)
    write_bytes(path, buffer.getvalue())


def _looks_like_safetensors(path: Path) -> bool:
    with open(path, "rb") as handle:
        head = handle.read(9)
    return len(head) == 9 and head[8:9] == b"{" and 0 < int.from_bytes(head[:8], "little") < 100_000_000


def load(path: Path) -> dict[str, Any]:
    """Read a checkpoint safely; every way it can be wrong is one clear UsageError."""
    if not path.exists():
        raise UsageError(f"checkpoint {path} does not exist: check the path or drop --resume")
    if not stat.S_ISREG(path.stat().st_mode):
        raise UsageError(f"checkpoint {path} is not a regular file (a folder, device or pipe): name a last.pt")
    if _looks_like_safetensors(path):
        raise UsageError(f"{path} holds exported weights (safetensors), not a checkpoint: a run resumes from its "
                         f"last.pt; exported weights load with zoo.load_model")
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


# ---------------------------------------------------------------- a checkpoint against the run it continues


def mismatch(expected: Any, given: Any, where: str) -> str | None:
    """Where ``given`` departs in structure from ``expected`` (what this run would write): keys, list lengths,
    tensor shapes and dtypes, value types, finiteness; None when it fits."""
    if isinstance(expected, torch.Tensor):
        if not isinstance(given, torch.Tensor):
            return f"{where} is a {type(given).__name__}, not a tensor"
        if given.shape != expected.shape or given.dtype != expected.dtype:
            return (f"{where} is {tuple(given.shape)} {given.dtype}, but this run's is "
                    f"{tuple(expected.shape)} {expected.dtype}")
        return None
    if isinstance(expected, dict):
        if not isinstance(given, dict):
            return f"{where} is a {type(given).__name__}, not a mapping"
        missing, extra = expected.keys() - given.keys(), given.keys() - expected.keys()
        if missing or extra:
            return f"{where} " + (f"lacks {sorted(map(str, missing))[:3]}" if missing else
                                  f"has unknown entries {sorted(map(str, extra))[:3]}")
        return next((m for k in expected if (m := mismatch(expected[k], given[k], f"{where}.{k}"))), None)
    if isinstance(expected, (list, tuple)):
        if not isinstance(given, (list, tuple)) or len(given) != len(expected):
            return f"{where} is not a list of {len(expected)} entries"
        return next((m for i, (e, g) in enumerate(zip(expected, given)) if (m := mismatch(e, g, f"{where}[{i}]"))),
                    None)
    if isinstance(expected, bool) or isinstance(expected, str):
        return None if type(given) is type(expected) else f"{where} is a {type(given).__name__}, not a " \
                                                           f"{type(expected).__name__}"
    if expected is None or isinstance(expected, (int, float)):  # None: a value this run has not set yet
        if given is None and expected is None:
            return None
        if isinstance(given, bool) or not isinstance(given, (int, float)) or (isinstance(expected, int) and
                                                                               isinstance(given, float)):
            return f"{where} is {str(given)[:30]!r}, not a number"
        return None if math.isfinite(given) else f"{where} is not finite ({given})"
    return None


def _optimizer_mismatch(expected: dict, given: dict) -> str | None:
    """Groups as this run's (same parameters, same settings' types); per-parameter state shaped like the
    parameter or a scalar."""
    if not isinstance(given, dict) or set(given) != {"state", "param_groups"}:
        return "optimizer is not an optimizer state (state, param_groups)"
    found = mismatch(expected["param_groups"], given["param_groups"], "optimizer.param_groups")
    if found:
        return found
    shapes = expected["shapes"]
    if not isinstance(given["state"], dict):
        return "optimizer.state is not a mapping"
    for index, entry in given["state"].items():
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(shapes) \
                or not isinstance(entry, dict):
            return f"optimizer.state[{index!r}] names no parameter of this model"
        for name, value in entry.items():
            if isinstance(value, torch.Tensor):
                if value.numel() != 1 and tuple(value.shape) != tuple(shapes[index]):
                    return f"optimizer.state[{index}].{name} is {tuple(value.shape)}, not the parameter's " \
                           f"{tuple(shapes[index])}"
            elif (m := mismatch(0.0, value, f"optimizer.state[{index}].{name}")):
                return m
    return None


def _state_mismatch(template: dict, state: dict) -> str | None:
    """TrainState fields: counters consistent with each other, one finite history row per epoch."""
    unknown, missing = state.keys() - template.keys(), {"epoch", "step", "history", "best_epoch"} - state.keys()
    if unknown or missing:
        return f"state {'has unknown ' + str(sorted(unknown)) if unknown else 'lacks ' + str(sorted(missing))}"
    for name in state:
        if name not in ("history", "fast_path", "epoch_progress") and (
                m := mismatch(template[name], state[name], f"state.{name}")):
            return m
    progress = state.get("epoch_progress", {})
    if progress and (not isinstance(progress, dict) or progress.keys() != EPOCH_PROGRESS
                     or any(mismatch(0.0, v, "") or v < 0 for v in progress.values()) or progress["steps"] < 1):
        return f"state.epoch_progress is not an epoch's progress ({', '.join(sorted(EPOCH_PROGRESS))})"
    epoch, history = state["epoch"], state["history"]
    if min(epoch, state["step"], state["best_epoch"]) < 0 or state["best_epoch"] > epoch:
        return f"state counts are inconsistent (epoch {epoch}, step {state['step']}, best {state['best_epoch']})"
    if not isinstance(history, list) or len(history) != epoch or not all(isinstance(r, dict) for r in history):
        return f"state.history does not hold one row per epoch ({epoch})"
    for i, row in enumerate(history):
        for k, v in row.items():
            if not isinstance(k, str) or (not isinstance(v, (str, bool)) and mismatch(0.0, v, "")):
                return f"state.history[{i}].{k} is not a finite number"
    if not isinstance(state.get("fast_path", {}), dict):
        return "state.fast_path is not a mapping"
    return None


def _rng_mismatch(given: dict) -> str | None:
    """The generators' states as capture_rng() writes them (Python's cached gauss may be a number or None;
    the CUDA states are used only where a GPU is)."""
    python = given.get("python")
    if not isinstance(python, list) or len(python) != 3 or (python[2] is not None and mismatch(0.0, python[2], "")):
        return "rng.python is not a random-generator state"
    cuda = given.get("cuda")
    if not isinstance(cuda, list) or not all(isinstance(t, torch.Tensor) and t.dtype == torch.uint8 for t in cuda):
        return "rng.cuda is not a list of generator states"
    expected = capture_rng()
    expected["python"][2] = None
    if isinstance(given.get("numpy"), list) and given["numpy"][:1] != expected["numpy"][:1]:
        return f"rng.numpy is not a {expected['numpy'][0]} state"
    return mismatch({**expected, "cuda": cuda}, {**given, "python": [*python[:2], None]}, "rng")


def recorded_fast_path(last: LastCheckpoint, path: Path) -> dict[str, Any]:
    """The fast-path choice (harness/fastpath.py) that the run's first session recorded, checked before it is
    used to build this one: {} when none was recorded."""
    record = last.state.get("fast_path", {})
    if record == {}:
        return record
    trials = {k: v for k, v in record.items() if isinstance(k, str) and k.startswith("trial_img_s_")} \
        if isinstance(record, dict) else {}
    if not (isinstance(record, dict) and record.get("amp") in ("off", "bf16", "fp16")
            and isinstance(record.get("channels_last"), bool) and isinstance(record.get("fast_path"), str)
            and record["fast_path"].isprintable() and len(record["fast_path"]) <= 200
            and set(record) - set(trials) == {"amp", "channels_last", "fast_path"}
            and all(re.fullmatch(r"trial_img_s_[a-z0-9_]{1,40}", k) and not mismatch(0.0, v, "")
                    for k, v in trials.items())):
        raise UsageError(f"checkpoint {path} does not fit this run: state.fast_path is not a fast-path record; "
                         f"resume from a last.pt this project wrote, or start a new run")
    return record


def check_fits(last: LastCheckpoint, path: Path, *, model: dict, optimizer: dict, parameter_shapes: list,
               scheduler: dict, scaler: dict, ema: dict | None, state: dict) -> None:
    """Every field of ``last`` against what this run (its freshly built parts) would write, before any is
    used; one UsageError naming the first field that does not fit."""
    if (ema is None) != (last.ema is None):
        found = "an EMA" if last.ema is not None else "no EMA"
        problem = f"holds {found}, but this run {'keeps' if ema is not None else 'keeps no'} one"
    else:
        problem = (mismatch(model, last.model, "model")
                   or _optimizer_mismatch({**optimizer, "shapes": parameter_shapes}, last.optimizer)
                   or mismatch(scheduler, last.scheduler, "scheduler") or mismatch(scaler, last.scaler, "scaler")
                   or (mismatch(ema, last.ema, "ema") if ema is not None else None)
                   or _state_mismatch(state, last.state) or _rng_mismatch(last.rng))
    if problem:
        raise UsageError(f"checkpoint {path} does not fit this run: {problem}; resume from a last.pt this "
                         f"project wrote for the same model and settings, or start a new run")


# ---------------------------------------------------------------- resuming


def check_compatible(last: LastCheckpoint, cfg: Config, path: Path) -> None:
    saved = last.config
    if saved.get("model") != cfg.model:
        raise UsageError(f"checkpoint {path} is of model {saved['model']}, not {cfg.model}: "
                         f"pass --model={saved['model']} or another checkpoint")
    current = cfg.to_dict()
    # A key the checkpoint lacks was added to the harness later: the run had its default behaviour.
    before = {**config_defaults(), **saved}
    differing = sorted(k for k in current if k not in RESUME_MAY_CHANGE and before[k] != current[k])
    if differing:
        detail = ", ".join(f"{k}={before[k]!r} (now {current[k]!r})" for k in differing[:4])
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


def _mid_epoch(last: LastCheckpoint) -> bool:
    return bool(last.state.get("epoch_progress"))


def best_weights_on_resume(last: LastCheckpoint, folder: Path, weights: dict[str, torch.Tensor]
                           ) -> dict[str, torch.Tensor] | None:
    """The weights of the best epoch so far of a resumed run (None before its first epoch), checked against
    this run's ``weights`` (their names, shapes and dtypes)."""
    epoch, best_epoch = last.state["epoch"], last.state["best_epoch"]
    if epoch == 0:
        return None
    if best_epoch == epoch and not _mid_epoch(last):  # a mid-epoch last.pt holds weights past the best epoch
        return last.selected_weights
    path = folder / BEST
    best = load_best(path) if path.is_file() else None
    if best is None or best.epoch != best_epoch:
        raise UsageError(f"{path} does not hold epoch {best_epoch}, the best epoch recorded in "
                         f"{folder / LAST}: restore it, or start a new run without --resume")
    problem = mismatch(weights, best.model, "model")
    if problem:
        raise UsageError(f"{path} does not fit this run: {problem}; restore the run's own best.pt, or start a "
                         f"new run without --resume")
    return best.model


def owed_best(last: LastCheckpoint, folder: Path) -> BestCheckpoint | None:
    """The best.pt that a run killed between writing last.pt and best.pt for an improved epoch still owes."""
    epoch, path = last.state["epoch"], folder / BEST
    if epoch == 0 or last.state["best_epoch"] != epoch or _mid_epoch(last):  # mid-epoch: its best.pt came first
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
