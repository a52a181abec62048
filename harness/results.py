"""result.json on disk: the one file a run leaves for the report (its format: harness/result_schema.py).

Written atomically (temporary file in the same directory, fsync, rename), so a crash while
writing leaves the previous good file and never a half-written one; always strict JSON (a
non-finite number is written as null).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

from harness.result_schema import COMPLETED, RunResult

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


def read_result(run_dir: Path) -> dict[str, Any] | None:
    """The file as parsed, unchecked: enough to tell a completed run (``RunResult.from_json``
    checks it, as the report does)."""
    path = Path(run_dir) / RESULT_FILE
    if not path.exists():
        return None
    return json.loads(path.read_text())


def is_completed(run_dir: Path) -> bool:
    try:
        result = read_result(run_dir)
    except json.JSONDecodeError:
        return False
    return bool(result) and result.get("status") == COMPLETED
