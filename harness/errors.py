"""The exception types main.py turns into one line on stderr and an exit code.

UsageError (exit 2): input the user can fix. TrainingDiverged (exit 1): the loss became NaN or infinite;
the run stopped, its last good checkpoint is untouched and its summary says ``"status": "failed"``.
"""


class UsageError(ValueError):
    """Input the user can fix: the message says what is wrong and how to fix it."""


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""
