"""Validated runs -> pandas frames of the numbers every table and figure shows.

Conventions (documented in the generated README as well):
- a task's score is the paper's metric at the run's best epoch (``metrics.best``), as a percent;
- mean and std are over seeds; std is the sample std (ddof=1), undefined for one seed;
- a task score for Avg averages the column's metrics first (MNLI m/mm, QQP acc/F1), as the paper;
- Avg is the mean of a method's task scores over the paper's tasks it has completed runs for.
"""

from __future__ import annotations

import math

import pandas as pd

from harness.report.load import RunRecord
from harness.report.paper import PAPER_COLUMNS, PAPER_TASKS, Column, method_sort_key


def completed(runs: list[RunRecord]) -> list[RunRecord]:
    return [r for r in runs if r.status == "completed"]


def machine(run: RunRecord) -> str:
    """Where the run trained: runtime.device (or env.device) on env.hostname."""
    env = run.result.env
    device = run.result.runtime.device or env.device or "unknown device"
    host = env.hostname
    return f"{device} on {host}" if host else device


def _float(x: float | None) -> float:
    return math.nan if x is None else float(x)


def runs_frame(runs: list[RunRecord]) -> pd.DataFrame:
    """One row per completed run with the scalar fields the tables use."""
    rows = []
    for r in completed(runs):
        p, rt = r.result.params, r.result.runtime
        rows.append(
            {
                "task": r.task,
                "method": r.method,
                "seed": r.seed,
                "path": str(r.path),
                "total": p.total,
                "head": p.head,
                "trainable_start": p.trainable_start,
                "trainable_end": p.trainable_end,
                "trainable_avg": float(p.trainable_avg),
                "train_seconds": float(rt.train_seconds),
                "seconds_per_epoch": _float(rt.seconds_per_epoch),
                "train_samples_per_second": _float(rt.train_samples_per_second),
                "train_cpu_seconds": _float(rt.train_cpu_seconds),
                "cpu_seconds_per_epoch": _float(rt.cpu_seconds_per_epoch),
                "machine": machine(r),
            }
        )
    cols = [
        "task",
        "method",
        "seed",
        "path",
        "total",
        "head",
        "trainable_start",
        "trainable_end",
        "trainable_avg",
        "train_seconds",
        "seconds_per_epoch",
        "train_samples_per_second",
        "train_cpu_seconds",
        "cpu_seconds_per_epoch",
        "machine",
    ]
    return pd.DataFrame(rows, columns=cols)


def scores_frame(runs: list[RunRecord]) -> pd.DataFrame:
    """Long frame: one row per (run, reported metric), value in percent at the best epoch."""
    rows = []
    for r in completed(runs):
        best = r.result.metrics.best.numbers
        for metric in r.column.metrics:
            rows.append(
                {
                    "task": r.task,
                    "method": r.method,
                    "seed": r.seed,
                    "metric": metric,
                    "value": 100.0 * float(best[metric]),
                }
            )
    return pd.DataFrame(rows, columns=["task", "method", "seed", "metric", "value"])


def score_stats(scores: pd.DataFrame) -> pd.DataFrame:
    """Mean, sample std (ddof=1; NaN for one seed) and seed count per (method, task, metric)."""
    grouped = scores.groupby(["method", "task", "metric"])["value"]
    out = pd.DataFrame({"mean": grouped.mean(), "std": grouped.std(ddof=1), "n": grouped.count()})
    return out


def failure_counts(runs: list[RunRecord]) -> dict[tuple[str, str], int]:
    """Number of failed seeds per (method, task), shown in the table cells."""
    counts: dict[tuple[str, str], int] = {}
    for r in runs:
        if r.status == "failed":
            counts[(r.method, r.task)] = counts.get((r.method, r.task), 0) + 1
    return counts


def task_score(stats: pd.DataFrame, method: str, column: Column) -> float:
    """The column's single number for Avg: mean of its metrics' seed means (NaN if missing)."""
    values = []
    for metric in column.metrics:
        key = (method, column.task, metric)
        if key not in stats.index:
            return math.nan
        values.append(float(stats.loc[key, "mean"]))
    return sum(values) / len(values)


def averages(stats: pd.DataFrame, methods: list[str]) -> pd.DataFrame:
    """Avg over the paper's tasks a method has results for, and how many tasks that is."""
    rows = {}
    for method in methods:
        present = {c.task: task_score(stats, method, c) for c in PAPER_COLUMNS}
        present = {t: v for t, v in present.items() if not math.isnan(v)}
        avg = sum(present.values()) / len(present) if present else math.nan
        rows[method] = {"avg": avg, "n_tasks": len(present), "tasks": tuple(present)}
    return pd.DataFrame.from_dict(rows, orient="index", columns=["avg", "n_tasks", "tasks"])


def sorted_methods(methods: object) -> list[str]:
    return sorted(set(methods), key=method_sort_key)  # type: ignore[call-overload]


def params_by_method(frame: pd.DataFrame) -> pd.DataFrame:
    """Trainable parameters (head excluded) per method: seed means per task, then task means."""
    per_task = frame.groupby(["method", "task"])[["trainable_start", "trainable_end", "trainable_avg", "head"]].mean()
    grouped = per_task.groupby(level="method")
    out = grouped.mean()
    out["head_min"] = grouped["head"].min()
    out["head_max"] = grouped["head"].max()
    out["n_tasks"] = grouped.size()
    out["n_runs"] = frame.groupby("method").size()
    return out.loc[sorted_methods(out.index)]


def runtime_clock(frame: pd.DataFrame) -> tuple[pd.DataFrame, str, str]:
    """``frame`` with seconds/epoch and samples/s on one clock for every run, the clock, and why.

    CPU runs are compared on the process CPU time of training when every run recorded it: on a
    shared machine wall time also measures the neighbours. GPU runs keep wall time (the host
    process's CPU time says little about the device's work), as does any mix with runs that lack
    CPU time.
    """
    on_gpu = frame["machine"].str.startswith("cuda")
    if len(frame) and not on_gpu.any() and frame["cpu_seconds_per_epoch"].notna().all():
        out = frame.copy()
        out["seconds_per_epoch"] = out["cpu_seconds_per_epoch"]
        out["train_samples_per_second"] = (
            out["train_samples_per_second"] * out["train_seconds"] / out["train_cpu_seconds"]
        )
        why = (
            "process CPU time of training (runtime.cpu_seconds_per_epoch); "
            "wall time on a shared CPU measures the neighbours too"
        )
        return out, "CPU time", why
    if on_gpu.all():
        return frame, "wall time", "wall time, the GPU runs' clock"
    if on_gpu.any():
        return frame, "wall time", "wall time: the runs mix CPU and GPU machines"
    return (
        frame,
        "wall time",
        "wall time: some CPU runs recorded no CPU time (result.json before runtime.train_cpu_seconds)",
    )


def runtime_by_task(frame: pd.DataFrame) -> pd.DataFrame:
    """Seed means of seconds/epoch and samples/s per (task, method), with the machines used."""
    grouped = frame.groupby(["task", "method"])
    out = grouped[["seconds_per_epoch", "train_samples_per_second"]].mean()
    out["n"] = grouped.size()
    out["machines"] = grouped["machine"].agg(lambda s: "; ".join(sorted(set(s))))
    return out


def paper_task_order(tasks: object) -> list[str]:
    """The paper's task order, then any other task alphabetically."""
    tasks = set(tasks)  # type: ignore[call-overload]
    return [t for t in PAPER_TASKS if t in tasks] + sorted(tasks - set(PAPER_TASKS))
