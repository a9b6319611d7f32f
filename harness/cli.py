"""The command-line shell of the entry points after training (harness.evaluate, harness.predict).

Bad input is one line on stderr and exit code 2 (``--debug`` shows the traceback instead), as main.py does;
options take dashes or underscores (``--batch-size`` = ``--batch_size``), ``--key=value`` or ``--key value``.
"""
from __future__ import annotations

import argparse
import sys
from typing import Callable

from harness.errors import UsageError
from zoo.model_info import ModelConfigError


class OneLineParser(argparse.ArgumentParser):
    """argparse whose mistakes are a UsageError (one line, exit 2) instead of usage text."""

    def error(self, message: str):
        raise UsageError(f"{message} (see {self.prog} --help)")

    def option(self, name: str, **kwargs) -> None:
        """``--a-b`` with its ``--a_b`` spelling."""
        spellings = [name] + ([name.replace("-", "_").replace("__", "--", 1)] if "-" in name[2:] else [])
        self.add_argument(*spellings, **kwargs)


def run_command(body: Callable[[list[str]], int], argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    debug = "--debug" in argv
    try:
        return body([a for a in argv if a != "--debug"])
    except (UsageError, ModelConfigError) as err:
        if debug:
            raise
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
