"""The one exception type for bad input: main.py prints its message on one line and exits with 2."""


class UsageError(ValueError):
    """Input the user can fix: the message says what is wrong and how to fix it."""
