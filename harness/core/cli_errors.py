"""What ``run.py`` prints for an error raised outside a run: one line and exit code 2.

Hydra refuses a command line (an unknown key or option, a malformed override) or a run directory
(``harness.storage.identity`` refuses names and '+' keys while Hydra resolves it) before any run starts.
Its own messages span several lines and exit 1; these are turned into one line and exit 2.
"""

from __future__ import annotations

import errno
import os
import re

from hydra.errors import HydraException
from omegaconf.errors import OmegaConfBaseException

from harness.core.errors import USER_ERROR, HarnessError

# A file that cannot be written: a read-only or full runs_dir, a quota, ``ulimit -f``.
WRITE_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


# The same errors as some libraries word them without an OSError (tokenizers: "(os error 27)").
_WRITE_MESSAGES = {
    "No space left on device": errno.ENOSPC,
    "Not enough disk space": errno.ENOSPC,
    "Disk quota exceeded": errno.EDQUOT,
    "File too large": errno.EFBIG,
    "Read-only file system": errno.EROFS,
}


def write_error(err: BaseException) -> OSError | None:
    """The failed write behind ``err`` (a full disk, a quota, ``ulimit -f``, a read-only folder),
    however a library wrapped or worded it; None when ``err`` is something else."""
    for cause in _chain(err):
        if isinstance(cause, OSError) and cause.errno in WRITE_ERRNOS:
            return cause
        text = str(cause)
        code = re.search(r"os error (\d+)", text)
        if code and int(code.group(1)) in WRITE_ERRNOS:
            return OSError(int(code.group(1)), os.strerror(int(code.group(1))))
        for words, number in _WRITE_MESSAGES.items():
            if words in text:
                return OSError(number, os.strerror(number))
    return None


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


# The former spellings of a schedule length: method.t_i_frac, method.tinit_frac, method.t_f_epochs...
_FORMER_LENGTH = re.compile(r"^(method\.(?:t_i|t_f|tinit|tfinal))_(?:steps|epochs|frac)$")


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
        if unknown and cause is not None and re.search(r"not in struct|Key '[^']+' not in '", str(cause)):
            key = unknown.group(1)
            if former := _FORMER_LENGTH.match(key):  # harness/config/lengths.py: before 2026-12-06
                return USER_ERROR, (
                    f"unknown key '{key}': a schedule length is one key with its unit now, "
                    f"e.g. {former.group(1)}=30% or {former.group(1)}=1epoch or {former.group(1)}=600steps"
                )
            return USER_ERROR, f"unknown key '{key}' (python run.py --help lists every key)"
        text = one_line(str(err))
        if isinstance(cause, OmegaConfBaseException):
            text += ": " + one_line(str(cause))
        return USER_ERROR, text
    if isinstance(err, OmegaConfBaseException):
        return USER_ERROR, one_line(str(err))
    if (failed := write_error(err)) is not None:
        return USER_ERROR, f"cannot write {failed.filename or 'a file'}: {failed.strerror}"
    return None, ""
