"""Find result.json files and read them as checked RunResults; nothing else is read by the report.

The format and its checks are harness/storage/result_schema.py's, the reading harness/storage/results.py's. They
run here, at the boundary, so that a malformed or old-schema file fails with one line naming the
file and the dotted field instead of a pandas traceback deep inside a table.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.core.errors import HarnessError
from harness.report.paper import Column, column_for
from harness.storage import identity
from harness.storage.result_schema import COMPLETED, FAILED, RunResult
from harness.storage.results import RESULT_FILE, fields_of, read_result_file

log = logging.getLogger(__name__)


class ReportError(HarnessError):
    """An error the CLI reports as one line (no traceback)."""


@dataclass
class RunRecord:
    """One result.json as the report sees it: its identity, and the checked file (``result``) of a
    completed or failed run; None for one still in progress, whose file is only listed."""

    path: Path
    status: str
    task: str
    model: str
    method: str  # with the variant in brackets when there is one: another config is another row
    seed: int | None
    error: str | None = None
    result: RunResult | None = field(default=None, repr=False)
    variant: str = ""  # the overrides outside the standard axes ('' = the config groups' own)

    @property
    def column(self) -> Column:
        return column_for(self.task, self.result.metrics.selection_metric)


def _variant(path: Path, recorded: str | None) -> str:
    """The run's variant: as recorded, else the folders below ``seed<n>/`` (harness/storage/identity.py),
    with its values in their one spelling (``train.lr=1e-3`` is ``train.lr=0.001``)."""
    if recorded is not None:
        return identity.canonical_variant(recorded)
    parts = path.parent.parts
    seeds = [i for i, part in enumerate(parts) if part.startswith("seed") and part[4:].isdigit()]
    return "/".join(identity.canonical_variant(part) for part in parts[seeds[-1] + 1 :]) if seeds else ""


def _with_variant(run: RunRecord, recorded: str | None) -> RunRecord:
    """Runs of another config are another row: the method is labelled with the variant. The names
    pass run.py's own check first: the report names its folders and files after them."""
    for key in ("model", "task", "method"):
        try:
            identity.folder_name(key, getattr(run, key), inside="the report's --out")
        except HarnessError as err:
            raise ReportError(f"{run.path}: {err}") from None
    run.variant = _variant(run.path, recorded)
    if run.variant:
        run.method = f"{run.method} [{run.variant}]"
    return run


def _incomplete_run(path: Path, status: str, data: dict[str, Any]) -> RunRecord:
    """A run still in progress (or killed) has nothing to report yet; it is only listed. Its
    identity may be partial, so fall back on the path layout <model>/<task>/<method>/seed<n>/."""
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
    run = RunRecord(path, status, ident["task"], ident["model"], ident["method"], seed)
    return _with_variant(run, data["variant"] if isinstance(data.get("variant"), str) else None)


def parse_result(path: Path) -> RunRecord:
    """Read and validate one result.json; raise ResultFileError naming the file and field."""
    data = read_result_file(path)
    status = data["status"]
    if status not in (COMPLETED, FAILED):
        return _incomplete_run(path, status, data)
    with fields_of(path):
        result = RunResult.from_json(data)
        if status == COMPLETED:  # what the tables need besides the format: the column's scores
            result.check_scores(column_for(result.task, result.metrics.selection_metric).metrics)
    run = RunRecord(path, status, result.task, result.model, result.method, result.seed, result.error, result)
    return _with_variant(run, result.variant)


def find_results(runs_dir: Path) -> list[Path]:
    """Every result.json below runs_dir (layout runs/<model>/<task>/<method>/seed<seed>[/<variant>]/)."""
    if not runs_dir.is_dir():
        raise ReportError(f"{runs_dir}: runs directory does not exist")
    return sorted(runs_dir.rglob(RESULT_FILE))


def refuse_doubles(runs: list[RunRecord]) -> None:
    """Refuse two result files of one (config, seed), naming both folders: two of one (model, task,
    method and variant, seed), or two whose configs have one fingerprint (harness/storage/identity.py),
    however their folders are spelled. Counting a seed twice would silently move a mean and shrink
    a std; the user must pick one."""
    seen: dict[str, Path] = {}
    for run in runs:
        if run.status not in (COMPLETED, FAILED) or run.seed is None:
            continue
        keys = {f"model={run.model} task={run.task} method={run.method} seed={run.seed}"}
        if run.result is not None and isinstance(run.result.config, dict):  # the axes too: a config names them
            r = run.result
            fingerprint = identity.digest(identity.content(r.config))
            keys.add(f"model={r.model} task={r.task} method={r.method} seed={r.seed} fingerprint {fingerprint}")
        for key in sorted(keys):
            if key in seen:
                raise ReportError(
                    f"{run.path.parent} and {seen[key].parent} hold the same config and seed ({key}): "
                    "keep one, or the report counts it twice"
                )
            seen[key] = run.path


def load_runs(runs_dir: Path) -> list[RunRecord]:
    """Parse every result.json; refuse two files of one (config, seed) (``refuse_doubles``)."""
    paths = find_results(runs_dir)
    if not paths:
        raise ReportError(f"{runs_dir}: no {RESULT_FILE} found")
    runs = [parse_result(p) for p in paths]
    refuse_doubles(runs)
    log.info("loaded %d result files from %s", len(runs), runs_dir)
    return runs
