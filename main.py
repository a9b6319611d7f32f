"""Train one model of the zoo: python main.py --model=resnet --dataset=digits [--key=value ...]

Every config key (listed below with its default; declared once in harness/config.py) can be set as
--key=value or --key value (dashes or underscores), each once; booleans take true/false/1/0/yes/no or stand
bare for true. --config=FILE adds a YAML layer, --list-models lists
the registry (--list-models=PATTERN: a wildcard like 'resnet*', or a word the names contain), --debug shows
tracebacks. After training: python -m harness.evaluate and python -m harness.predict (see their --help).

Exit codes: 0 done; 1 the training diverged (NaN/inf loss: the run's summary says "failed", its last good
checkpoint is untouched); 2 bad input (one line on stderr says what and how to fix it; nothing written);
130 interrupted by Ctrl-C, 143 by SIGTERM (the run's summary says "interrupted"; when it has a checkpoint,
stderr gives the exact command that resumes it).
"""
from __future__ import annotations

import os
import shlex
import sys

import zoo
from harness.config import build_config, help_text, parse_command_line
from harness.errors import Terminated, TrainingDiverged, UsageError, sigterm_interrupts


def list_models_table(pattern: str = "*") -> str:
    """The registered models whose name or alias matches PATTERN (a shell wildcard; a plain word matches
    names containing it)."""
    names = zoo.list_models(pattern if any(c in pattern for c in "*?[") else f"*{pattern}*")
    if not names:
        raise UsageError(f"no registered model matches {pattern!r}: try a shorter word or a wildcard "
                         f"(--list-models='resnet*'), or --list-models for all")
    lines = [f"{'model':32} {'family':12} {'aliases':24} {'native':>6} {'min':>4}  paper"]
    for name in names:
        info = zoo.get_model_info(name)
        lines.append(f"{name:32} {info.family:12} {','.join(info.aliases):24} {info.native_size:>6} "
                     f"{info.min_size:>4}  {info.paper} ({info.year})")
    return "\n".join(lines)


def resume_command(argv: list[str]) -> str:
    """The command that continues this run: the same arguments, --resume=auto instead of any --resume."""
    kept, i = [], 0
    while i < len(argv):
        token = argv[i]
        if token.startswith("--") and token[2:].partition("=")[0].replace("-", "_") == "resume":
            takes_next = "=" not in token and i + 1 < len(argv) and not argv[i + 1].startswith("--")
            i += 2 if takes_next else 1
            continue
        kept.append(token)
        i += 1
    return shlex.join(["python", "main.py", *kept, "--resume=auto"])


def interrupted_message(argv: list[str], cfg) -> str:
    if cfg is not None:
        from harness.checkpoint import LAST, checkpoint_folder
        if (checkpoint_folder(cfg) / LAST).is_file():
            return f"interrupted; resume with: {resume_command(argv)}"
    return "interrupted (no checkpoint to resume from: --checkpoint=True makes a run resumable)"


def print_output(text: str) -> None:
    """Print to stdout; a reader that stops early (``| head``) ends the output quietly."""
    try:
        print(text, flush=True)
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python exits


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    debug = "--debug" in argv
    cfg = None
    try:
        with sigterm_interrupts():
            keys, flags = parse_command_line(argv)
            if flags["help"]:
                print_output(f"{__doc__.strip()}\n\nConfig keys (--key=default  what it does [domain]):{help_text()}")
                return 0
            if flags["list_models"]:
                print_output(list_models_table(flags["list_models"]))
                return 0
            cfg = build_config(keys, flags["config"])
            from harness.train import run  # the heavy imports wait until the input is known to be good
            run(cfg)
            return 0
    except (UsageError, zoo.ModelConfigError) as err:
        if debug:
            raise
        print(f"error: {err}", file=sys.stderr)
        return 2
    except TrainingDiverged as err:
        if debug:
            raise
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as err:
        print(interrupted_message(argv, cfg), file=sys.stderr)
        return 143 if isinstance(err, Terminated) else 130


if __name__ == "__main__":
    sys.exit(main())
