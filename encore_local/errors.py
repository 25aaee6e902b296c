"""Errors the command line reports as one line (and a non-zero exit) instead of a traceback."""


class UsageError(Exception):
    """The user asked for something that cannot be done as asked; the message says what to change."""
