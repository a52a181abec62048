"""The GLUE table (paper layout), its comparison with the published numbers, and the runs list.

Parameter and runtime tables live in efficiency.py. Every builder returns a render.Table whose
Markdown/LaTeX cells and numeric CSV come from the same frames (aggregate.py).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import pandas as pd

from harness.report import render
from harness.report.aggregate import (
    averages,
    completed,
    failure_counts,
    params_by_method,
    runs_frame,
    score_stats,
    scores_frame,
    sorted_methods,
)
from harness.report.load import RunRecord
from harness.report.paper import (
    PAPER_COLUMNS,
    PAPER_MODEL,
    PAPER_MODEL_LABEL,
    PAPER_TABLE,
    PAPER_TASKS,
    Column,
    column_for,
    method_label,
)
from harness.report.render import MISSING, Table, cell

N_PAPER = len(PAPER_COLUMNS)
STD_NOTE = (
    "Cells: mean ± sample std (ddof=1) over seeds at each run's best epoch, in percent; "
    "(n=k) = completed seeds; one seed shows no std. — = no completed run (never zero)."
)
AVG_NOTE = (
    f"Avg: mean over the paper's tasks with results (MNLI m/mm and QQP acc/F1 averaged "
    f"first, as the paper does); '(k/{N_PAPER} tasks)' marks an Avg over fewer than "
    f"the paper's {N_PAPER} tasks, which is not comparable with the paper's Avg nor with "
    "rows covering other tasks."
)


def table_columns(runs: list[RunRecord]) -> list[Column]:
    """The paper's eight columns always (missing ones show as missing), then extra tasks."""
    extra: dict[str, Column] = {}
    for r in runs:
        if r.status == "completed" and r.task not in PAPER_TASKS:
            extra[r.task] = r.column
    for r in runs:  # a task with only failed runs still gets a column to show the failure in
        if r.status == "failed" and r.task not in PAPER_TASKS and r.task not in extra:
            extra[r.task] = column_for(r.task, "score")
    return list(PAPER_COLUMNS) + [extra[t] for t in sorted(extra)]


def reported_methods(runs: list[RunRecord]) -> list[str]:
    return sorted_methods(r.method for r in runs if r.status in ("completed", "failed"))


def _best(stats: pd.DataFrame, columns: list[Column]) -> set[tuple[str, str, str]]:
    """(method, task, metric) holding the column's highest mean (ties at 2 decimals all count)."""
    best = set()
    for col in columns:
        for metric in col.metrics:
            sel = [
                k
                for k in stats.index
                if k[1] == col.task and k[2] == metric and not math.isnan(stats.loc[k, "mean"])  # NaN never wins
            ]
            if not sel:
                continue
            top = max(round(float(stats.loc[k, "mean"]), 2) for k in sel)
            best |= {k for k in sel if round(float(stats.loc[k, "mean"]), 2) == top}
    return best


def _seed_stats(stats: pd.DataFrame, key: tuple[str, str, str]) -> tuple[float, float, int]:
    """(mean, std, n) of one (method, task, metric) for the CSVs; (NaN, NaN, 0) without a run."""
    if key not in stats.index:
        return math.nan, math.nan, 0
    row = stats.loc[key]
    return float(row["mean"]), float(row["std"]), int(row["n"])


def score_cell(
    stats: pd.DataFrame,
    fails: dict[tuple[str, str], int],
    method: str,
    col: Column,
    fmt: str,
    best: set[tuple[str, str, str]] | None = None,
) -> str:
    """'72.01 ± 0.53 (n=3)', two metrics joined by ' / ', failed seeds counted in the brackets."""
    parts, n = [], 0
    for metric in col.metrics:
        key = (method, col.task, metric)
        if key in stats.index:
            row = stats.loc[key]
            parts.append(
                render.mean_std(float(row["mean"]), float(row["std"]), fmt, is_best=best is not None and key in best)
            )
            n = int(row["n"])
    failed = fails.get((method, col.task), 0)
    info = [f"n={n}"] if n else []
    info += [f"{failed} failed"] if failed else []
    text = " / ".join(parts) if n else MISSING[fmt]
    return text + (f" ({', '.join(info)})" if info else "")


def avg_cell(avg: float, n_tasks: int, fmt: str, is_best: bool = False) -> str:
    text = render.num(avg, fmt, is_best=is_best)
    return text if n_tasks in (0, N_PAPER) else f"{text} ({n_tasks}/{N_PAPER} tasks)"


def _params_avg(runs: list[RunRecord]) -> pd.Series:
    """Per method: the time-weighted average of trainable parameters (head excluded)."""
    frame = runs_frame(runs)
    return params_by_method(frame)["trainable_avg"] if len(frame) else pd.Series(dtype=float)


def glue_table(runs: list[RunRecord], model: str) -> Table:
    """Table 1 layout: rows = methods, columns = #Params, tasks, Avg; best per column marked."""
    stats = score_stats(scores_frame(runs))
    fails = failure_counts(runs)
    methods = reported_methods(runs)
    columns = table_columns(runs)
    avgs = averages(stats, methods)
    params = _params_avg(runs)
    best = _best(stats, columns)
    covered = {c.task for c in PAPER_COLUMNS if any(k[1] == c.task for k in stats.index)}
    eligible = [m for m in methods if covered and set(avgs.loc[m, "tasks"]) == covered]
    best_avg = max((round(avgs.loc[m, "avg"], 2) for m in eligible), default=None)

    rows, csv_rows = [], []
    for m in methods:
        p = float(params[m]) if m in params.index else math.nan
        avg, n_tasks = float(avgs.loc[m, "avg"]), int(avgs.loc[m, "n_tasks"])
        row = {"Method": render.text(method_label(m)), "#Params": cell(render.params_short, p)}
        for col in columns:
            row[col.label] = cell(score_cell, stats, fails, m, col, best=best)
        row["Avg"] = cell(avg_cell, avg, n_tasks, is_best=m in eligible and round(avg, 2) == best_avg)
        rows.append(row)
        csv = {"method": m, "method_label": method_label(m), "params_avg": p}
        for col in columns:
            for metric in col.metrics:
                key = (m, col.task, metric)
                name = f"{col.task}_{metric}"
                csv[name], csv[f"{name}_std"], csv[f"{name}_n"] = _seed_stats(stats, key)
                csv[f"{name}_best"] = key in best
            csv[f"{col.task}_failed"] = fails.get((m, col.task), 0)
        csv.update({"avg": avg, "avg_n_tasks": n_tasks})
        csv_rows.append(csv)
    notes = [
        f"Model: `{model}`.",
        STD_NOTE,
        "Best mean per column in bold; best Avg only among rows covering the same tasks.",
        AVG_NOTE,
        "#Params: trainable parameters without the classifier head, time-weighted "
        "average over training (params.trainable_avg), mean over tasks.",
        "Metrics: CoLA Matthews corr., STS-B Pearson, MRPC accuracy, MNLI matched/"
        "mismatched accuracy, QQP accuracy/F1, others accuracy.",
    ]
    if set(c.task for c in columns) - set(PAPER_TASKS):
        notes.append("Columns after QQP are tasks outside the paper's table; they are not in Avg.")
    return Table.of("glue_table", f"GLUE validation results ({model})", rows, csv_rows, notes)


def _paper_avg(method: str, tasks: tuple[str, ...]) -> float:
    """The published Avg when all eight tasks are compared, else the paper's mean over `tasks`."""
    row = PAPER_TABLE[method]
    if set(tasks) == set(PAPER_TASKS):
        return row.avg
    vals = [sum(row.scores[t]) / len(row.scores[t]) for t in tasks]
    return sum(vals) / len(vals) if vals else math.nan


def comparison_table(runs: list[RunRecord], model: str) -> Table:
    """Per method three rows: reproduced, published, and their difference, in Table 1 layout."""
    stats = score_stats(scores_frame(runs))
    fails = failure_counts(runs)
    methods = reported_methods(runs)
    avgs = averages(stats, methods)
    params = _params_avg(runs)
    ours_src, paper_src = f"reproduced ({model})", f"paper ({PAPER_MODEL_LABEL})"
    rows, csv_rows = [], []
    for m in methods:
        pub = PAPER_TABLE.get(m)
        tasks = tuple(avgs.loc[m, "tasks"])
        ours_avg = float(avgs.loc[m, "avg"])
        paper_avg = _paper_avg(m, tasks) if pub else math.nan
        p = float(params[m]) if m in params.index else math.nan
        ours = {
            "Method": render.text(method_label(m)),
            "Source": render.text(ours_src),
            "#Params": cell(render.params_short, p),
        }
        paper = {
            "Method": render.plain(""),
            "Source": render.text(paper_src),
            "#Params": cell(render.params_short, pub.params if pub else None),
        }
        delta = {"Method": render.plain(""), "Source": render.text("Δ reproduced − paper"), "#Params": render.plain("")}
        for col in PAPER_COLUMNS:
            published = pub.scores[col.task] if pub else ()
            diffs = [
                stats.loc[(m, col.task, met), "mean"] - v
                for met, v in zip(col.metrics, published, strict=False)
                if (m, col.task, met) in stats.index
            ]
            ours[col.label] = cell(score_cell, stats, fails, m, col)
            paper[col.label] = _joined(f"{v:.2f}" for v in published)
            delta[col.label] = _joined(f"{d:+.2f}" for d in diffs)
        ours["Avg"] = cell(avg_cell, ours_avg, len(tasks))
        paper["Avg"] = cell(avg_cell, paper_avg, len(tasks))
        delta["Avg"] = render.plain(f"{ours_avg - paper_avg:+.2f}") if tasks and pub else render.missing()
        # A method the paper does not report gets only its reproduced row (named in notes).
        rows += [ours, paper, delta] if pub else [ours]
        for col in PAPER_COLUMNS:
            for i, met in enumerate(col.metrics):
                key = (m, col.task, met)
                pv = pub.scores[col.task][i] if pub else math.nan
                mean, std, n = _seed_stats(stats, key)
                csv_rows.append(
                    {
                        "method": m,
                        "task": col.task,
                        "metric": met,
                        "reproduced_mean": mean,
                        "reproduced_std": std,
                        "reproduced_n": n,
                        "paper": pv,
                        "delta": mean - pv,
                    }
                )
        csv_rows.append(
            {
                "method": m,
                "task": "avg",
                "metric": f"avg_{len(tasks)}_tasks",
                "reproduced_mean": ours_avg,
                "reproduced_std": math.nan,
                "reproduced_n": len(tasks),
                "paper": paper_avg,
                "delta": ours_avg - paper_avg,
            }
        )
    title = f"Reproduced ({model}) vs published (DeBERTaV3-base)"
    return Table.of("paper_comparison", title, rows, csv_rows, comparison_notes(model, methods))


def _joined(texts: Iterable[str]) -> render.Cell:
    """Two metrics' numbers as 'a / b' in both formats; none: the missing mark."""
    joined = " / ".join(texts)
    return render.plain(joined) if joined else render.missing()


def comparison_notes(model: str, methods: list[str]) -> list[str]:
    if model == PAPER_MODEL:
        notes = [f"Reproduced and published numbers are both {PAPER_MODEL_LABEL} runs."]
    else:
        notes = [
            f"**The reproduced numbers come from model `{model}`, not {PAPER_MODEL_LABEL}.** "
            f"The published numbers are {PAPER_MODEL_LABEL} (Liu et al. 2024, Table 1), so "
            "Δ mixes the difference between the models with the reproduction gap."
        ]
    notes.append(STD_NOTE)
    notes.append(
        "Paper Avg: the published Avg when all 8 tasks are compared; otherwise the "
        "paper's own mean over the same tasks as the reproduced Avg, so Δ Avg compares "
        "like with like."
    )
    unpublished = [method_label(m) for m in methods if m not in PAPER_TABLE]
    if unpublished:
        notes.append(f"Not in the paper's table: {', '.join(unpublished)}.")
    paper_only = [method_label(m) for m in PAPER_TABLE if m not in methods]
    if paper_only:
        notes.append(f"Published but without runs here: {', '.join(paper_only)}.")
    return notes


def runs_table(runs: list[RunRecord], model: str) -> Table:
    """Failed runs with their error, and incomplete ones (e.g. still running), which are skipped."""
    rows = [r for r in runs if r.status != "completed"]
    rows.sort(key=lambda r: (r.status, r.task, r.method, r.seed if r.seed is not None else -1))
    data = [
        {
            "Status": r.status,
            "Task": r.task,
            "Method": r.method,
            "Seed": "" if r.seed is None else str(r.seed),
            "Error": r.error or ("(no message)" if r.status == "failed" else "not finished"),
            "File": str(r.path),
        }
        for r in rows
    ]
    columns = ["Status", "Task", "Method", "Seed", "Error", "File"]
    csv = pd.DataFrame(data, columns=columns)
    cells = [
        {key: render.text(value) for key, value in row.items()} | {"Error": _error_cell(row["Error"])} for row in data
    ]
    n_done = len(completed(runs))
    notes = [f"{n_done} completed runs are in the tables; the runs listed here are not."]
    title = f"Failed and incomplete runs ({model})"
    return Table.of("failed_runs", title, cells, csv.rename(columns=str.lower), notes, columns)


def _error_cell(error: str) -> render.Cell:
    """An error message on one Markdown line, cut at 300 characters; in LaTeX whole."""
    return lambda fmt: render.md_escape(error)[:300] if fmt == "md" else render.tex_escape(error)
