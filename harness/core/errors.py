"""Errors the harness reports to the user as one line, naming what is wrong."""

from __future__ import annotations

import sys

USER_ERROR = 2  # every entry point's exit code for a mistake in its input, as argparse's for a bad command line
INTERRUPTED = 130  # the shell's code for SIGINT: a run or a pool of runs stopped by Ctrl-C


class HarnessError(Exception):
    """A problem with the user's input (config, data, model path), not a bug in the harness."""


class ConfigError(HarnessError):
    """A config key has a value the harness cannot run with."""


class DataError(HarnessError):
    """A data set is missing, truncated or shaped differently from what the task expects."""


def print_user_error(err: Exception) -> int:
    """Print ``err`` as the one line the user sees, without a traceback; return ``USER_ERROR`` for
    the entry point's ``main`` to exit with."""
    print(f"error: {err}", file=sys.stderr)
    return USER_ERROR
