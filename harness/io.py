"""Atomic file writes: every file the project writes goes through here.

A write goes to a temporary file in the same folder, is flushed and fsynced, then renamed over the
target, so a crash leaves either the old file or the new one, never a torn one. A process killed
mid-write leaves a hidden ``.<name>.*.tmp`` beside the target, which ``remove_stale_temporaries`` clears.
"""
from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Callable, IO

import yaml

from harness.errors import UsageError
from harness.faults import kill_point


def atomic_write(path: str | os.PathLike, write: Callable[[IO], None], binary: bool = True) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.fchmod(fd, 0o666 & ~current_umask())  # mkstemp makes 0600; a result is as readable as any file
    try:
        with os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8"})) as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        kill_point(f"write:{path.name}")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def current_umask() -> int:
    mask = os.umask(0o022)  # reading the umask means setting it: set it straight back
    os.umask(mask)
    return mask


def write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write(path, lambda f: f.write(text), binary=False)


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    atomic_write(path, lambda f: f.write(data))


def write_json(path: str | os.PathLike, obj) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def write_yaml(path: str | os.PathLike, obj) -> None:
    write_text(path, yaml.safe_dump(obj, sort_keys=False))


def check_writable(folder: str | os.PathLike, option: str) -> None:
    """Refuse, before anything is written, a folder that cannot be created or written; creates nothing.

    ``option`` is the command-line option that chose the folder, for the message (e.g. ``results-dir``).
    """
    folder = Path(folder)
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"--{option}={folder} cannot be created because {existing} is a file: "
                         f"choose another --{option}")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"--{option}={folder} is not writable ({existing} refuses writes): "
                         f"fix its permissions or choose another --{option}")


def remove_stale_temporaries(folder: str | os.PathLike) -> None:
    """Delete the temporary files of writes that a killed process never finished (call it only on folders
    that no other live process writes to)."""
    for tmp in Path(folder).glob(".*.tmp"):
        tmp.unlink(missing_ok=True)


def safe_filename(name: str) -> str:
    """``name`` as a file-name part valid on every system: characters other than letters, digits, '.', '_'
    and '-' (the ':' of tv:/timm: models, '/' of paths) become '-'."""
    return re.sub(r"[^A-Za-z0-9._-]", "-", name)
