"""The learning-rate grid of a study: one table of validation scores, method by rate.

The grid's runs live in their own runs_dir (conf/study/*.yaml), so they never mix with the table's
runs, each rate in the folder its override gives it: ``<grid_dir>/<model>/<task>/<method>/seed<seed>/
train.lr=<value>/``. Each result's rate is read from its recorded config, and a run whose config
disagrees with its folder is refused: a grid point must be the rate it claims.

The study's rule also reads every other run it is given (the table's, the archived ones) as
evidence against a rate: one that trained the grid point's exact config but another seed, and
fell below the probe, makes that rate ineligible (conf/protocol/minilm/README.md, "A rate must not
collapse"). "Exact config" is the run-identity content (harness/storage/identity.py) with the seed left out.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from harness.report import render
from harness.report.load import ReportError, RunRecord, parse_result, refuse_doubles
from harness.report.paper import method_label, method_sort_key, task_title
from harness.report.render import MISSING, Table
from harness.storage import identity
from harness.storage.result_schema import COMPLETED
from harness.storage.results import RESULT_FILE

LR_FOLDER = "train.lr="  # the folder a train.lr override gets (harness/storage/identity.py)


COLUMNS = ["model", "task", "method", "seed", "lr", "score", "metric", "content"]
POINT = ["model", "task", "method", "lr"]


def _content(config: dict) -> dict:
    """What the run trained, seed aside (harness/storage/identity.py): two seeds of one grid point agree."""
    content = identity.content(config)
    content.pop("seed", None)
    return content


def _row(result) -> dict:
    metric = result.metrics.selection_metric
    return {
        "model": result.model,
        "task": result.task,
        "method": result.method,
        "seed": result.seed,
        "lr": float(result.config["train"]["lr"]),
        "score": 100.0 * float(result.metrics.best.numbers[metric]),
        "metric": metric,
        "content": _content(result.config),
    }


def _completed(path: Path):
    """The run's result when it completed, else None; checked as the table's runs are."""
    result = parse_result(path).result
    return result if result is not None and result.status == COMPLETED else None


def grid_frame(grid_dir: Path) -> pd.DataFrame:
    """One row per completed grid run: model, task, method, seed, lr, score (selection metric, %), content.
    Folders are read in run.py's one spelling of a value (``train.lr=1e-3`` is ``train.lr=0.001``), and
    two runs of one (config, seed) are refused, as for the table's runs."""
    runs = [parse_result(path) for path in sorted(grid_dir.glob(f"**/{LR_FOLDER}*/{RESULT_FILE}"))]
    refuse_doubles(runs)
    rows = []
    for run in runs:
        if run.status != COMPLETED:
            continue
        row, folder = _row(run.result), run.path.parent.name
        trained = f"{LR_FOLDER}{run.result.config['train']['lr']}"
        if identity.canonical_variant(folder) != identity.canonical_variant(trained):
            raise ReportError(f"{run.path}: trained with train.lr={row['lr']}, but its grid folder is {folder}")
        rows.append(row)
    return pd.DataFrame(rows, columns=COLUMNS)


def evidence_frame(dirs: list[Path], loaded: dict[Path, list[RunRecord]] | None = None) -> pd.DataFrame:
    """Every completed run under ``dirs``, in grid_frame's columns: the runs that can rule a rate out.
    ``loaded``: runs already read, by their directory, which are not read again (the table's)."""
    loaded = {Path(d).resolve(): runs for d, runs in (loaded or {}).items()}
    results = []
    for directory in dict.fromkeys(Path(d).resolve() for d in dirs):
        if directory in loaded:
            results += [run.result for run in loaded[directory] if run.status == COMPLETED]
        else:
            results += [r for r in map(_completed, sorted(directory.glob(f"**/{RESULT_FILE}"))) if r is not None]
    return pd.DataFrame([_row(r) for r in results], columns=COLUMNS)


def grid_table(frame: pd.DataFrame, model: str) -> Table:
    """Rows: (task, method); cells: each rate's score, the best in bold; the chosen rate."""
    frame = frame[frame["model"] == model]
    cells: dict[str, list[dict[str, str]]] = {"md": [], "tex": []}
    csv = []
    keys = sorted(
        {(t, m) for t, m in zip(frame["task"], frame["method"], strict=True)},
        key=lambda k: (k[0], method_sort_key(k[1])),
    )
    for task, method in keys:
        points = frame[(frame["task"] == task) & (frame["method"] == method)].groupby("lr")["score"].mean()
        best = float(points.idxmax())
        for fmt in ("md", "tex"):
            values = [f"{lr:g}: {render.num(score, fmt, is_best=lr == best)}" for lr, score in points.items()]
            cells[fmt].append(
                {
                    "Task": task_title(task),
                    "Method": render.escape(method_label(method), fmt),
                    "train.lr: score": ", ".join(values) or MISSING[fmt],
                    "Best rate": f"{best:g}",
                    "At the grid's edge": "yes" if best in (points.index.min(), points.index.max()) else "no",
                }
            )
        csv += [{"task": task, "method": method, "lr": lr, "score": s, "best": lr == best} for lr, s in points.items()]
    notes = [
        f"Model: `{model}`. The selection metric at each run's best epoch, in percent, mean over the grid's "
        "seeds; the best rate in bold. A best rate at the grid's edge may not be the best rate.",
    ]
    return Table.from_rows("lr_grid", f"Learning-rate grid ({model})", cells, csv, notes)


def _same_config(grid: pd.DataFrame, evidence: pd.DataFrame) -> pd.DataFrame:
    """The evidence runs that trained some grid point's config with another seed (a key only one
    side records is no difference, as for run identity)."""
    points = grid.groupby(POINT)["content"].apply(list).to_dict()
    keep = [
        any(
            not identity.differences(seen, row.content)
            for seen in points.get(tuple(getattr(row, c) for c in POINT), [])
        )
        for row in evidence.itertuples()
    ]
    return evidence[keep]


def _choice_cell(mean: float, complete: bool, beats: bool, stable: bool, chosen: bool, fmt: str) -> str:
    if not complete:
        return "not on every task yet"
    if not beats:
        return "below the probe"
    return render.num(mean, fmt, is_best=chosen) if stable else "a run at it fell below the probe"


def grid_choice_table(
    frame: pd.DataFrame, model: str, probe: str = "head", evidence: pd.DataFrame | None = None
) -> Table:
    """Each method's rate by the study's rule (conf/protocol/minilm/README.md), over every task the
    grid ran: the best mean score over the tasks, among the rates whose grid run beats the probe's
    best grid score on each task, and none of whose other runs (``evidence``: the grid point's exact
    config with another seed) fell below it. A rate missing on some task is not eligible either."""
    frame = frame[frame["model"] == model]
    scores = frame.groupby(["method", "lr", "task"])["score"].mean().unstack("task")  # rows (method, lr)
    tasks = list(scores.columns)
    same_points = frame if evidence is None else pd.concat([frame, _same_config(frame, evidence)])
    worst = same_points.groupby(["method", "lr", "task"])["score"].min().unstack("task").reindex(scores.index)
    floor = scores.loc[probe].max() if probe in scores.index.get_level_values("method") else None
    cells: dict[str, list[dict[str, str]]] = {"md": [], "tex": []}
    csv = []
    for method in sorted(scores.index.get_level_values("method").unique(), key=method_sort_key):
        rates = scores.loc[method]
        complete = rates.notna().all(axis=1)
        is_probe = floor is None or method == probe
        beats = complete if is_probe else (rates > floor).all(axis=1)
        stable = complete if is_probe else (worst.loc[method] > floor).all(axis=1)
        eligible = complete & beats & stable
        means = rates.mean(axis=1)
        chosen = float(means[eligible].idxmax()) if eligible.any() else None
        for fmt in ("md", "tex"):
            values = [
                f"{lr:g}: {_choice_cell(means[lr], complete[lr], beats[lr], stable[lr], lr == chosen, fmt)}"
                for lr in rates.index
            ]
            cells[fmt].append(
                {
                    "Method": render.escape(method_label(method), fmt),
                    "train.lr: mean over tasks": ", ".join(values),
                    "Chosen rate": MISSING[fmt] if chosen is None else f"{chosen:g}",
                }
            )
        csv += [
            {"method": method, "lr": lr, "mean": means[lr], "eligible": bool(eligible[lr]), "chosen": lr == chosen}
            for lr in rates.index
        ]
    notes = [
        f"Model: `{model}`. Tasks: {', '.join(task_title(t) for t in tasks)}. Mean of the grid scores over "
        f"these tasks; a rate is eligible when it ran on every task and beat the probe's (`{probe}`) best "
        "grid score on each, and no other run of the same config (another seed: a table run, an archived "
        "one) fell below that score. The chosen rate in bold.",
    ]
    return Table.from_rows("lr_choice", f"Learning rates chosen over the grid's tasks ({model})", cells, csv, notes)
