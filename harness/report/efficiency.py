"""Trainable-parameter and runtime tables (the paper's efficiency claims).

Ratios compare a method with a reference method on the same task; a missing reference gives a
missing ratio, never 1 or 0. Runtime ratios are only meaningful on one machine, so each row names
the machines its runs recorded and a ratio across machines is flagged.
"""

from __future__ import annotations

import math

import pandas as pd

from harness.report import render
from harness.report.aggregate import (
    paper_task_order,
    params_by_method,
    runs_frame,
    runtime_by_task,
    runtime_clock,
    sorted_methods,
)
from harness.report.load import RunRecord
from harness.report.paper import PAPER_RUNTIME_VS_ELORA, PAPER_TABLE, method_label, task_title
from harness.report.render import FLAG, MISSING, Table, cell

REFERENCES = ("elora", "lora")  # runtime is normalised to both (paper: ELoRA = 1.0)


def params_table(runs: list[RunRecord], model: str) -> Table:
    """Per method: start / end / time-weighted average trainable parameters, ratio to LoRA r=8."""
    frame = runs_frame(runs)
    pm = params_by_method(frame) if len(frame) else pd.DataFrame()
    lora = float(pm.loc["lora", "trainable_avg"]) if "lora" in pm.index else math.nan
    rows, csv_rows = [], []
    for m, row in pm.iterrows():
        share = row["trainable_avg"] / lora  # NaN without LoRA runs
        fewer = lora / row["trainable_avg"] if row["trainable_avg"] else math.nan
        head = (
            render.count(row["head_min"])
            if row["head_min"] == row["head_max"]
            else f"{render.count(row['head_min'])}–{render.count(row['head_max'])}"
        )
        pub = PAPER_TABLE.get(str(m))
        rows.append(
            {
                "Method": render.text(method_label(str(m))),
                "Tasks": render.plain(str(int(row["n_tasks"]))),
                "Runs": render.plain(str(int(row["n_runs"]))),
                "Start": cell(render.count, row["trainable_start"]),
                "End": cell(render.count, row["trainable_end"]),
                "Avg (time-weighted)": cell(render.count, row["trainable_avg"]),
                "#Params": cell(render.params_short, row["trainable_avg"]),
                "Avg ÷ LoRA r=8": cell(render.ratio, share),
                "Fewer than LoRA r=8": cell(render.times, fewer),
                "Head (excluded)": render.text(head),
                "Paper #Params": cell(render.params_short, pub.params if pub else None),
            }
        )
        csv_rows.append(
            {
                "method": m,
                "n_tasks": int(row["n_tasks"]),
                "n_runs": int(row["n_runs"]),
                "trainable_start": row["trainable_start"],
                "trainable_end": row["trainable_end"],
                "trainable_avg": row["trainable_avg"],
                "head_min": row["head_min"],
                "head_max": row["head_max"],
                "avg_over_lora": share,
                "lora_over_avg": fewer,
            }
        )
    notes = [
        f"Model: `{model}`. Counts exclude the classifier head (the paper's convention), "
        "mean over seeds per task, then over tasks.",
        "Avg (time-weighted): params.trainable_avg, the count averaged over optimizer steps; "
        "for AFLoRA it falls as projections freeze (start = before any freezing).",
        "Fewer than LoRA r=8 = LoRA's average ÷ the method's (the paper: 1.33M / 0.14M ≈ "
        "9.5×); — when there are no LoRA runs. Paper #Params are DeBERTaV3-base counts.",
    ]
    return Table.of("params_table", f"Trainable parameters ({model})", rows, csv_rows, notes)


def runtime_ratios(frame: pd.DataFrame, references: tuple[str, ...] = REFERENCES) -> pd.DataFrame:
    """Per (task, method): seed means plus both quantities divided by each reference's."""
    rt = runtime_by_task(frame)
    for ref in references:
        for q in ("seconds_per_epoch", "train_samples_per_second"):
            col = f"{q}_over_{ref}"
            rt[col] = [v / rt.loc[(t, ref), q] if (t, ref) in rt.index else math.nan for (t, _), v in rt[q].items()]
        rt[f"machine_differs_{ref}"] = [
            (t, ref) in rt.index and rt.loc[(t, ref), "machines"] != machines
            for (t, _), machines in rt["machines"].items()
        ]
    return rt


def runtime(runs: list[RunRecord], references: tuple[str, ...] = REFERENCES) -> tuple[pd.DataFrame, str, str]:
    """The ratios on one clock (aggregate.runtime_clock), the clock's name and the reason for it."""
    frame, clock, why = runtime_clock(runs_frame(runs))
    return (runtime_ratios(frame, references) if len(frame) else pd.DataFrame()), clock, why


def ratio_cell(x: float, flagged: bool, fmt: str) -> str:
    """A ratio, flagged when its reference ran on another machine."""
    text = render.ratio(x, fmt)
    return text + FLAG[fmt] if flagged and text != MISSING[fmt] else text


def runtime_table(runs: list[RunRecord], model: str) -> Table:
    """Seconds per epoch and training samples/s per task and method, normalised to ELoRA, LoRA."""
    rt, clock, why = runtime(runs)
    rows = []
    order = [
        (t, m)
        for t in paper_task_order({k[0] for k in rt.index})
        for m in sorted_methods({k[1] for k in rt.index if k[0] == t})
    ]
    for t, m in order:
        row = rt.loc[(t, m)]
        cells = {
            "Task": render.text(task_title(t)),
            "Method": render.text(method_label(m)),
            "Runs": render.plain(str(int(row["n"]))),
            "s/epoch": cell(render.num, row["seconds_per_epoch"], digits=1),
            "samples/s": cell(render.num, row["train_samples_per_second"], digits=1),
        }
        for q, short in (("seconds_per_epoch", "s/epoch"), ("train_samples_per_second", "samples/s")):
            for ref in REFERENCES:
                flagged = bool(row[f"machine_differs_{ref}"])
                cells[f"{short} ÷ {method_label(ref)}"] = cell(ratio_cell, row[f"{q}_over_{ref}"], flagged)
        cells["Machine"] = render.text(row["machines"])
        rows.append(cells)
    csv = rt.reset_index().assign(clock=clock) if len(rt) else pd.DataFrame()
    notes = [
        f"Clock: {why}.",
        f"Model: `{model}`. Mean over seeds; ratios divide by the reference method's mean "
        "on the same task; — when the reference has no completed run for that task.",
        "s/epoch ÷ ELoRA is the paper's normalised runtime (AFLoRA 0.539, LoRA 0.652); "
        "samples/s ÷ ELoRA is the speed-up (paper: AFLoRA 1.86×).",
        "* the reference's runs recorded a different machine: that ratio mixes hardware.",
    ]
    return Table.of("runtime_table", f"Training runtime per task ({model}, {clock})", rows, csv, notes)


def geomean(values: pd.Series) -> float:
    """The geometric mean of the positive numbers (ratios average in log space); nan when none."""
    vals = [float(v) for v in values if not math.isnan(v) and v > 0]
    return math.exp(sum(math.log(v) for v in vals) / len(vals)) if vals else math.nan


def runtime_summary_table(runs: list[RunRecord], model: str) -> Table:
    """Per method: geometric mean over tasks of each runtime ratio (ratios average in log space)."""
    rt, clock, why = runtime(runs)
    ratio_cols = [f"{q}_over_{ref}" for q in ("seconds_per_epoch", "train_samples_per_second") for ref in REFERENCES]
    rows, csv_rows = [], []
    methods = sorted_methods({k[1] for k in rt.index}) if len(rt) else []
    for m in methods:
        sub = rt.xs(m, level="method")
        means = {c: geomean(sub[c]) for c in ratio_cols}
        flagged = {ref: bool(sub[f"machine_differs_{ref}"].any()) for ref in REFERENCES}
        paper = PAPER_RUNTIME_VS_ELORA.get(m)
        cells = {"Method": render.text(method_label(m)), "Tasks": render.plain(str(len(sub)))}
        for c in ratio_cols:
            ref = c.rsplit("_over_", 1)[1]
            short = "s/epoch" if c.startswith("seconds") else "samples/s"
            cells[f"{short} ÷ {method_label(ref)}"] = cell(ratio_cell, means[c], flagged[ref])
        cells["Paper runtime ÷ ELoRA"] = cell(render.ratio, paper)
        rows.append(cells)
        csv_rows.append(
            {
                "method": m,
                "n_tasks": len(sub),
                **means,
                "paper_runtime_over_elora": paper if paper is not None else math.nan,
                "clock": clock,
            }
        )
    notes = [
        f"Clock: {why}.",
        f"Model: `{model}`. Geometric mean over tasks of the per-task ratios of the runtime "
        "table (tasks without the reference are left out).",
        "Paper runtime ÷ ELoRA: the paper's efficiency figure (DeBERTaV3-base, its GPU).",
        "* at least one task's reference ran on a different machine.",
    ]
    title = f"Runtime relative to ELoRA and LoRA ({model}, {clock})"
    return Table.of("runtime_summary", title, rows, csv_rows, notes)
