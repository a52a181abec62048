"""The learning-rate grid of a study: one table of validation scores, method by rate.

The grid's runs live in their own runs_dir (conf/study/*.yaml), so they never mix with the table's
runs, each rate in the folder its override gives it: ``<grid_dir>/<model>/<task>/<method>/seed<seed>/
train.lr=<value>/``. Each result's rate is read from its recorded config, and a run whose config
disagrees with its folder is refused: a grid point must be the rate it claims.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from harness.report import render
from harness.report.load import ReportError, parse_result
from harness.report.paper import method_label, method_sort_key, task_title
from harness.report.render import MISSING, Table
from harness.result_schema import COMPLETED
from harness.results import RESULT_FILE

LR_FOLDER = "train.lr="  # the folder a train.lr override gets (harness/identity.py)


def grid_frame(grid_dir: Path) -> pd.DataFrame:
    """One row per completed grid run: model, task, method, seed, lr, score (selection metric, %)."""
    rows = []
    for path in sorted(grid_dir.glob(f"**/{LR_FOLDER}*/{RESULT_FILE}")):
        result = parse_result(path).result  # checked as the table's runs are
        if result is None or result.status != COMPLETED:
            continue
        lr = float(result.config["train"]["lr"])
        folder = path.parent.name
        if not math.isclose(lr, float(folder.removeprefix(LR_FOLDER)), rel_tol=1e-9):
            raise ReportError(f"{path}: trained with train.lr={lr}, but its grid folder is {folder}")
        metric = result.metrics.selection_metric
        rows.append(
            {
                "model": result.model,
                "task": result.task,
                "method": result.method,
                "seed": result.seed,
                "lr": lr,
                "score": 100.0 * float(result.metrics.best.numbers[metric]),
                "metric": metric,
            }
        )
    return pd.DataFrame(rows, columns=["model", "task", "method", "seed", "lr", "score", "metric"])


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


def _choice_cell(mean: float, complete: bool, eligible: bool, chosen: bool, fmt: str) -> str:
    if not complete:
        return "not on every task yet"
    return render.num(mean, fmt, is_best=chosen) if eligible else "below the probe"


def grid_choice_table(frame: pd.DataFrame, model: str, probe: str = "head") -> Table:
    """Each method's rate by the study's rule (conf/protocol/minilm/README.md), over every task the
    grid ran: the best mean score over the tasks, among the rates whose run beats the probe's best
    grid score on each task. A rate missing on some task is not eligible either."""
    frame = frame[frame["model"] == model]
    scores = frame.groupby(["method", "lr", "task"])["score"].mean().unstack("task")  # rows (method, lr)
    tasks = list(scores.columns)
    floor = scores.loc[probe].max() if probe in scores.index.get_level_values("method") else None
    cells: dict[str, list[dict[str, str]]] = {"md": [], "tex": []}
    csv = []
    for method in sorted(scores.index.get_level_values("method").unique(), key=method_sort_key):
        rates = scores.loc[method]
        complete = rates.notna().all(axis=1)
        beats_probe = (rates > floor).all(axis=1) if floor is not None and method != probe else complete
        eligible = complete & beats_probe
        means = rates.mean(axis=1)
        chosen = float(means[eligible].idxmax()) if eligible.any() else None
        for fmt in ("md", "tex"):
            values = [
                f"{lr:g}: {_choice_cell(means[lr], complete[lr], eligible[lr], lr == chosen, fmt)}"
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
        "grid score on each. The chosen rate in bold.",
    ]
    return Table.from_rows("lr_choice", f"Learning rates chosen over the grid's tasks ({model})", cells, csv, notes)
