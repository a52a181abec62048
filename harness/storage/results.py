"""result.json on disk: the one file a run leaves for the report (its format: harness/storage/result_schema.py).

Written atomically (temporary file in the same directory, fsync, rename), so a crash while
writing leaves the previous good file and never a half-written one; always strict JSON (a
non-finite number is written as null).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from harness.core.errors import HarnessError
from harness.storage.result_schema import COMPLETED, FAILED, RunResult
from harness.storage.typed_json import FieldError

RESULT_FILE = "result.json"


def write_result(run_dir: Path, result: RunResult) -> None:
    write_json_atomic(Path(run_dir) / RESULT_FILE, result.to_json())


def write_json_atomic(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(strict_json(payload), f, indent=2, sort_keys=False, default=_jsonable, allow_nan=False)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; results are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def strict_json(value: Any) -> Any:
    """``value`` with every NaN or infinite number as null: JSON has no NaN, and readers of a bare
    ``NaN`` (json.loads aside) fail or, worse, take it for a missing run."""
    if isinstance(value, dict):
        return {k: strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(v) for v in value]
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:  # numpy / torch scalars
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy / torch scalars
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"result.json cannot hold a {type(value).__name__}: {value!r}")


class ResultFileError(HarnessError):
    """A result.json that cannot be read or does not follow harness/storage/result_schema.py: one line
    naming the file and the dotted field, instead of a KeyError or a pandas traceback downstream."""

    def __init__(self, path: Path | str, field_name: str, problem: str) -> None:
        self.path = Path(path)
        self.field = field_name
        super().__init__(f"{path}: field '{field_name}' {problem}")


def read_result_file(path: Path) -> dict[str, Any]:
    """The file parsed: a JSON object whose ``status`` is a string (a run still training may have
    written no more than its identity); ResultFileError otherwise."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ResultFileError(path, "<file>", f"cannot be read ({exc.strerror})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ResultFileError(
            path, "<json>", f"is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
        ) from None
    if not isinstance(data, dict):
        raise ResultFileError(path, "<root>", f"has type {type(data).__name__} (expected object)")
    status = data.get("status")
    if not isinstance(status, str):
        problem = "is missing" if "status" not in data else f"has type {type(status).__name__}"
        raise ResultFileError(path, "status", f"{problem} (expected string)")
    return data


@contextmanager
def fields_of(path: Path) -> Iterator[None]:
    """Checks of ``path``'s RunResult inside the block fail as a ResultFileError naming the file."""
    try:
        yield
    except FieldError as err:
        raise ResultFileError(path, err.field, err.problem) from None


def load_result(path: Path) -> RunResult:
    """A finished (completed or failed) run's result.json, read and checked: the one way to read
    the file as data. ResultFileError names the file and field of any problem."""
    data = read_result_file(path)
    if data["status"] not in (COMPLETED, FAILED):
        raise ResultFileError(path, "status", f"is {data['status']!r} (expected {COMPLETED!r} or {FAILED!r})")
    with fields_of(path):
        return RunResult.from_json(data)


def is_completed(run_dir: Path) -> bool:
    path = Path(run_dir) / RESULT_FILE
    try:
        return path.exists() and read_result_file(path)["status"] == COMPLETED
    except ResultFileError:
        return False
