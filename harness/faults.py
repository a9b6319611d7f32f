"""A test-only fault injector: ``HARNESS_KILL_AT=<phase>:<n>`` makes the process SIGKILL itself.

The crash-safety test (tests/test_crash_safety.py) kills real runs at chosen moments with it. Phases:
``step`` (after an optimizer step), ``eval`` (after an evaluation batch) and ``write:<file name>`` (a file's
new content is in its temporary file but not yet renamed into place, e.g. ``write:last.pt``); ``<n>``
counts occurrences of that phase in this process, from 1. ``<phase>:<n>@<rank>`` kills only that rank
of a torchrun job. Unset (always, outside those tests), a kill point costs one dictionary look-up.
"""
from __future__ import annotations

import os
import signal

ENV_VAR = "HARNESS_KILL_AT"
_seen: dict[str, int] = {}


def kill_point(phase: str) -> None:
    target = os.environ.get(ENV_VAR)
    if not target:
        return
    target, _, rank = target.partition("@")
    name, _, count = target.rpartition(":")
    if name != phase or (rank and rank != os.environ.get("RANK", "0")):
        return
    _seen[phase] = _seen.get(phase, 0) + 1
    if _seen[phase] == int(count):
        os.kill(os.getpid(), signal.SIGKILL)
