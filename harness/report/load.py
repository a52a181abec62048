"""Find and validate result.json files; nothing else is read by the report.

Validation happens here, at the boundary, so that a malformed or old-schema file fails with one
line naming the file and the field instead of a pandas traceback deep inside a table.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.report.paper import Column, column_for
from harness.results import RESULT_FILE

log = logging.getLogger(__name__)


class ReportError(HarnessError):
    """An error the CLI reports as one line (no traceback)."""


class ResultSchemaError(ReportError):
    """A result.json that does not follow the schema of docs/design.md."""

    def __init__(self, path: Path | str, field_name: str, problem: str) -> None:
        self.path = Path(path)
        self.field = field_name
        super().__init__(f"{path}: field '{field_name}' {problem}")


@dataclass
class Run:
    """One result.json. ``data`` is the parsed file; for completed runs it passed validation."""

    path: Path
    status: str
    task: str
    model: str
    method: str
    seed: int | None
    error: str | None = None
    data: dict[str, Any] = field(default_factory=dict, repr=False)
    variant: str = ""  # the overrides outside the standard axes ('' = the config groups' own)

    @property
    def column(self) -> Column:
        return column_for(self.task, self.data["metrics"]["selection_metric"])


def _type_name(expected: type | tuple[type, ...]) -> str:
    names = {int: "integer", float: "number", str: "string", dict: "object", list: "list", type(None): "null"}
    kinds = expected if isinstance(expected, tuple) else (expected,)
    return " or ".join(names.get(k, k.__name__) for k in kinds)


class _Checker:
    """Walks one parsed file; every failure names the file and the dotted field path."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, name: str, problem: str) -> ResultSchemaError:
        return ResultSchemaError(self.path, name, problem)

    def get(
        self, obj: dict[str, Any], key: str, prefix: str, expected: type | tuple[type, ...], required: bool = True
    ) -> Any:
        name = f"{prefix}.{key}" if prefix else key
        if key not in obj:
            if required:
                raise self.fail(name, f"is missing (expected {_type_name(expected)})")
            return None
        value = obj[key]
        kinds = expected if isinstance(expected, tuple) else (expected,)
        # bool is an int subclass in Python, but `true` is never a valid count or metric.
        ok = not isinstance(value, bool) and isinstance(value, kinds)
        if float in kinds and isinstance(value, int) and not isinstance(value, bool):
            ok = True
        if not ok:
            raise self.fail(name, f"has type {type(value).__name__} (expected {_type_name(expected)})")
        return value

    def number(self, obj: dict[str, Any], key: str, prefix: str, required: bool = True) -> Any:
        return self.get(obj, key, prefix, (int, float), required)


def _check_metric_dict(c: _Checker, d: dict[str, Any], prefix: str, column: Column) -> None:
    c.number(d, "epoch", prefix)
    for metric in column.metrics:
        value = c.number(d, metric, prefix)
        # Fractions are expected; a value like 71.0 means someone wrote percentages.
        if not math.isnan(value) and not -1.0 <= value <= 1.0:
            raise c.fail(f"{prefix}.{metric}", f"is {value}, outside [-1, 1] (expected a fraction)")


def _check_completed(c: _Checker, data: dict[str, Any], task: str) -> None:
    metrics = c.get(data, "metrics", "", dict)
    selection = c.get(metrics, "selection_metric", "metrics", str)
    column = column_for(task, selection)
    _check_metric_dict(c, c.get(metrics, "best", "metrics", dict), "metrics.best", column)
    per_epoch = c.get(metrics, "per_epoch", "metrics", list)
    for i, entry in enumerate(per_epoch):
        name = f"metrics.per_epoch[{i}]"
        if not isinstance(entry, dict):
            raise c.fail(name, f"has type {type(entry).__name__} (expected object)")
        c.number(entry, "epoch", name)
        c.number(entry, "step", name, required=False)
        for metric in column.metrics:  # optional per entry (null when an evaluation lacked it)
            c.get(entry, metric, name, (int, float, type(None)), required=False)

    params = c.get(data, "params", "", dict)
    for key in ("total", "head", "trainable_start", "trainable_end"):
        c.get(params, key, "params", int)
    c.number(params, "trainable_avg", "params")
    history = c.get(params, "trainable_history", "params", list)
    if not history:
        raise c.fail("params.trainable_history", "is empty (expected [[step, count], ...])")
    for i, pair in enumerate(history):
        if (
            not isinstance(pair, list)
            or len(pair) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in pair)
        ):
            raise c.fail(f"params.trainable_history[{i}]", f"is {pair!r} (expected [step, count] integers)")

    runtime = c.get(data, "runtime", "", dict)
    c.number(runtime, "train_seconds", "runtime")
    for key in ("seconds_per_epoch", "train_samples_per_second"):
        # null when the timer saw no complete epoch; shown as missing, never as zero
        c.get(runtime, key, "runtime", (int, float, type(None)))
    c.get(runtime, "steps", "runtime", (int, type(None)), required=False)
    c.get(runtime, "device", "runtime", str, required=False)

    freezing = c.get(data, "freezing", "", (dict, type(None)), required=False)
    for module in freezing or {}:
        # null = the matrix never froze during training.
        c.get(freezing, module, "freezing", (int, type(None)))
    env = c.get(data, "env", "", dict)
    c.get(env, "hostname", "env", str, required=False)
    c.get(env, "device", "env", str, required=False)


def _variant(path: Path, data: dict[str, Any]) -> str:
    """The run's variant: as recorded, else the folders below ``seed<n>/`` (harness/identity.py)."""
    if isinstance(data.get("variant"), str):
        return data["variant"]
    parts = path.parent.parts
    seeds = [i for i, part in enumerate(parts) if part.startswith("seed") and part[4:].isdigit()]
    return "/".join(parts[seeds[-1] + 1 :]) if seeds else ""


def _with_variant(run: Run) -> Run:
    """Runs of another config are another row: the method is labelled with the variant."""
    run.variant = _variant(run.path, run.data)
    if run.variant:
        run.method = f"{run.method} [{run.variant}]"
    return run


def _incomplete_run(path: Path, status: str, data: dict[str, Any]) -> Run:
    parts = path.parent.parts
    seeds = [i for i, part in enumerate(parts) if part.startswith("seed") and part[4:].isdigit()]
    parts = parts[max(seeds[-1] - 3, 0) : seeds[-1] + 1] if seeds else parts[-4:]
    from_path = dict(zip(("model", "task", "method"), parts[:3], strict=False)) if len(parts) == 4 else {}
    seed_dir = parts[-1] if parts else ""
    ident = {
        k: data.get(k) if isinstance(data.get(k), str) else from_path.get(k, "?") for k in ("model", "task", "method")
    }
    seed = data.get("seed")
    if not isinstance(seed, int) or isinstance(seed, bool):
        seed = int(seed_dir[4:]) if seed_dir.startswith("seed") and seed_dir[4:].isdigit() else None
    return Run(path, status, ident["task"], ident["model"], ident["method"], seed, data=data)


def parse_result(path: Path) -> Run:
    """Read and validate one result.json; raise ResultSchemaError naming the file and field."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ResultSchemaError(path, "<file>", f"cannot be read ({exc.strerror})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ResultSchemaError(
            path, "<json>", f"is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
        ) from None
    c = _Checker(path)
    if not isinstance(data, dict):
        raise c.fail("<root>", f"has type {type(data).__name__} (expected object)")
    status = c.get(data, "status", "", str)
    if status not in ("completed", "failed"):
        # A run still in progress (or killed) has nothing to report yet; only list it. Its
        # identity may be partial, so fall back on the path layout <model>/<task>/<method>/seed<n>/.
        return _with_variant(_incomplete_run(path, status, data))
    task = c.get(data, "task", "", str)
    model = c.get(data, "model", "", str)
    method = c.get(data, "method", "", str)
    seed = c.get(data, "seed", "", int)
    error = c.get(data, "error", "", (str, type(None)))
    if status == "completed":
        _check_completed(c, data, task)
    return _with_variant(Run(path, status, task, model, method, seed, error, data))


def find_results(runs_dir: Path) -> list[Path]:
    """Every result.json below runs_dir (layout runs/<model>/<task>/<method>/seed<seed>[/<variant>]/)."""
    if not runs_dir.is_dir():
        raise ReportError(f"{runs_dir}: runs directory does not exist")
    return sorted(runs_dir.rglob(RESULT_FILE))


def load_runs(runs_dir: Path) -> list[Run]:
    """Parse every result.json; refuse two files claiming the same (model, task, method, seed)."""
    paths = find_results(runs_dir)
    if not paths:
        raise ReportError(f"{runs_dir}: no {RESULT_FILE} found")
    runs = [parse_result(p) for p in paths]
    seen: dict[tuple[str, str, str, int], Path] = {}
    for run in runs:
        if run.status not in ("completed", "failed") or run.seed is None:
            continue
        key = (run.model, run.task, run.method, run.seed)
        if key in seen:
            # Counting a seed twice would silently shrink the std; make the user pick one.
            raise ReportError(
                f"{run.path}: duplicate of {seen[key]} (model={key[0]} task={key[1]} method={key[2]} seed={key[3]})"
            )
        seen[key] = run.path
    log.info("loaded %d result files from %s", len(runs), runs_dir)
    return runs
