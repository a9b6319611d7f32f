"""The command-line shell of the entry points after training (harness.evaluate, harness.predict).

Bad input is one line on stderr and exit code 2 (``--debug`` shows the traceback instead), as main.py does;
options take dashes or underscores (``--batch-size`` = ``--batch_size``), ``--key=value`` or ``--key value``.
"""
from __future__ import annotations

import argparse
import sys
from typing import Callable

from harness.errors import Terminated, UsageError, sigterm_interrupts
from zoo.model_info import ModelConfigError
from zoo.saved import AMP_CHOICES


class OneLineParser(argparse.ArgumentParser):
    """argparse whose mistakes are a UsageError (one line, exit 2) instead of usage text; every command it
    parses takes ``--debug``, which ``run_command`` reads."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.add_argument("--debug", action="store_true", help="on bad input, show the traceback, not one line")

    def error(self, message: str):
        raise UsageError(f"{message} (see {self.prog} --help)")

    def option(self, name: str, **kwargs) -> None:
        """``--a-b`` with its ``--a_b`` spelling."""
        spellings = [name] + ([name.replace("-", "_").replace("__", "--", 1)] if "-" in name[2:] else [])
        self.add_argument(*spellings, **kwargs)

    def running_options(self) -> None:
        """Where and how a saved model runs: --device, and --amp / --channels-last ("run": as it trained)."""
        self.option("--device", default="auto")
        self.option("--amp", choices=("run", *AMP_CHOICES), default="run")
        self.option("--channels-last", choices=("run", "true", "false"), default="run")


def run_command(body: Callable[[list[str]], int], argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        with sigterm_interrupts():
            return body(argv)
    except (UsageError, ModelConfigError) as err:
        if "--debug" in argv:
            raise
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:
        print("interrupted", file=sys.stderr)
        return 143 if isinstance(err, Terminated) else 130
