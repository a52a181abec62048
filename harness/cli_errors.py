"""What ``run.py`` prints for an error raised outside a run: one line and exit code 2.

Hydra refuses a command line (an unknown key or option, a malformed override) or a run directory
(``harness.identity`` refuses names and '+' keys while Hydra resolves it) before any run starts.
Its own messages span several lines and exit 1; these are turned into one line and exit 2.
"""

from __future__ import annotations

import errno
import re

from hydra.errors import HydraException
from omegaconf.errors import OmegaConfBaseException

from harness.errors import HarnessError

USER_ERROR = 2
# A file that cannot be written: a read-only or full runs_dir, a quota, ``ulimit -f``.
WRITE_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


class SweepRunFailed(Exception):
    """A run of a multirun failed; Hydra re-raises the first one after the sweep has finished."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message, code)
        self.message, self.code = message, code

    def __str__(self) -> str:
        return self.message


def one_line(text: str) -> str:
    """Hydra's multi-line message as one line: a list after a colon becomes comma-separated."""
    parts: list[str] = []
    in_list = False
    for line in (raw.strip() for raw in text.splitlines()):
        if line.startswith("Config search path"):
            break  # Hydra's internals, not the user's input
        if not line or line.startswith(("full_key:", "object_type=", "reference_type=")):
            continue
        if in_list and " " not in line:
            parts[-1] += (", " if not parts[-1].endswith(":") else " ") + line
            continue
        parts.append(line)
        in_list = line.endswith(":")
    return " ".join(parts)


def _chain(err: BaseException):
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        yield err
        err = err.__cause__ or err.__context__


def exit_code_and_line(err: Exception, failed_runs: list[str]) -> tuple[int | None, str]:
    """(exit code, the line to print) for an error that reached run.py; (None, '') for a bug."""
    if isinstance(err, SweepRunFailed):
        runs = failed_runs or [err.message]
        return err.code, f"{len(runs)} run(s) of the sweep failed: {'; '.join(runs)}"
    for cause in _chain(err):
        if isinstance(cause, HarnessError):
            return USER_ERROR, str(cause)
    if isinstance(err, HydraException):
        cause = err.__cause__
        unknown = re.match(r"Could not override '([^']+)'", str(err))
        if unknown and cause is not None and "not in struct" in str(cause):
            return USER_ERROR, f"unknown key '{unknown.group(1)}' (python run.py --help lists every key)"
        text = one_line(str(err))
        if isinstance(cause, OmegaConfBaseException):
            text += ": " + one_line(str(cause))
        return USER_ERROR, text
    if isinstance(err, OmegaConfBaseException):
        return USER_ERROR, one_line(str(err))
    if isinstance(err, OSError) and err.errno in WRITE_ERRNOS:
        return USER_ERROR, f"cannot write {err.filename or 'a file'}: {err.strerror}"
    return None, ""
