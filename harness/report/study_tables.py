"""The study's reading aids: does every method beat the linear probe, paired method differences,
and AFLoRA's ablations.

Every number is a task score at each run's best epoch, in percent (the GLUE table's), per seed.
"""

from __future__ import annotations

import math

import pandas as pd

from harness.report import render
from harness.report.aggregate import completed, paper_task_order, runs_frame, sorted_methods
from harness.report.efficiency import geomean, ratio_cell, runtime
from harness.report.load import RunRecord
from harness.report.paper import REFERENCE_OPTIMIZER, method_label, task_title
from harness.report.render import MISSING, Table
from harness.studies.paired_interval import CONFIDENCE, paired_difference

FLOOR = "head"  # the linear probe: what the frozen features give
ABLATIONS = ("aflora-nofreeze", "aflora-frozen", "aflora-all")  # AFLoRA's variants (ablation table only)
# AFLoRA's other configs: rows of the ablation table, beside AFLoRA, and not methods of the method tables.
AFLORA_VARIANTS = (*ABLATIONS, REFERENCE_OPTIMIZER)
# The paper's two headline comparisons, then each variant against AFLoRA: the ablations' claims
# and the optimizer's effect are differences from AFLoRA, seed by seed.
PAIRS = (("aflora", "lora"), ("aflora", "elora"), *((variant, "aflora") for variant in AFLORA_VARIANTS))


def task_scores(runs: list[RunRecord]) -> pd.DataFrame:
    """One row per completed run: its task score (the mean of the task column's metrics), in percent."""
    rows = []
    for r in completed(runs):
        best = r.result.metrics.best.numbers
        score = sum(100.0 * float(best[m]) for m in r.column.metrics) / len(r.column.metrics)
        rows.append({"task": r.task, "method": r.method, "seed": r.seed, "score": score})
    return pd.DataFrame(rows, columns=["task", "method", "seed", "score"])


def _mean_std_n(values: pd.Series) -> tuple[float, float, int]:
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else math.nan, len(values)


def _cell(mean: float, std: float, n: int, fmt: str) -> str:
    return f"{render.mean_std(mean, std, fmt)} (n={n})" if n else MISSING[fmt]


def floor_check_table(runs: list[RunRecord], model: str) -> Table:
    """Per task and method: does the method's mean beat the probe's by more than their two seed stds?"""
    scores = task_scores(runs)
    cells: dict[str, list[dict[str, str]]] = {"md": [], "tex": []}
    csv = []
    for task in paper_task_order(scores["task"]):
        of_task = scores[scores["task"] == task]
        floor = of_task[of_task["method"] == FLOOR]["score"]
        if floor.empty:
            continue
        f_mean, f_std, f_n = _mean_std_n(floor)
        for method in _methods(of_task, exclude=(FLOOR,)):
            m_mean, m_std, m_n = _mean_std_n(of_task[of_task["method"] == method]["score"])
            margin, needed = m_mean - f_mean, _zero_if_nan(m_std) + _zero_if_nan(f_std)
            if min(m_n, f_n) < 2:
                verdict = "one seed: cannot tell"
            else:
                verdict = "beats the probe" if margin > needed else "DOES NOT beat the probe"
            for fmt in ("md", "tex"):
                cells[fmt].append(
                    {
                        "Task": task_title(task),
                        "Method": render.escape(method_label(method), fmt),
                        "Method score": _cell(m_mean, m_std, m_n, fmt),
                        "Probe score": _cell(f_mean, f_std, f_n, fmt),
                        "Margin": render.num(margin, fmt),
                        "Needed": render.num(needed, fmt),
                        "Verdict": verdict,
                    }
                )
            csv.append(
                {
                    "task": task,
                    "method": method,
                    "mean": m_mean,
                    "std": m_std,
                    "n": m_n,
                    "probe_mean": f_mean,
                    "probe_std": f_std,
                    "probe_n": f_n,
                    "margin": margin,
                    "needed": needed,
                    "beats_probe": margin > needed,
                }
            )
    failing = [f"{method_label(c['method'])} on {task_title(c['task'])}" for c in csv if not c["beats_probe"]]
    notes = [
        f"Model: `{model}`. The probe (`{FLOOR}`) trains the classifier alone on the frozen backbone: "
        "the floor any adapter method must beat.",
        "A method beats the probe when its mean exceeds the probe's by more than the sum of the two "
        "seed standard deviations (Margin > Needed); with one seed of either there is no verdict.",
        "Cells that do not beat it: " + (", ".join(failing) if failing else "none") + ".",
    ]
    return Table.from_rows("floor_check", f"Does every method beat the linear probe? ({model})", cells, csv, notes)


def paired_table(runs: list[RunRecord], model: str) -> Table:
    """AFLoRA against LoRA and ELoRA, and each of AFLoRA's variants against AFLoRA, per task:
    seed-paired mean difference with a 95 % t interval."""
    scores = task_scores(runs)
    cells: dict[str, list[dict[str, str]]] = {"md": [], "tex": []}
    csv = []
    for ours, other in PAIRS:
        for task in paper_task_order(scores["task"]):
            of_task = scores[scores["task"] == task].set_index("seed")
            a = of_task[of_task["method"] == ours]["score"]
            b = of_task[of_task["method"] == other]["score"]
            mean, low, high, n = paired_difference(a, b)
            if n == 0:
                continue
            for fmt in ("md", "tex"):
                interval = MISSING[fmt] if math.isnan(low) else f"[{render.num(low, fmt)}, {render.num(high, fmt)}]"
                cells[fmt].append(
                    {
                        "Comparison": render.escape(f"{method_label(ours)} − {method_label(other)}", fmt),
                        "Task": task_title(task),
                        "Mean difference": render.num(mean, fmt),
                        f"{CONFIDENCE:.0%} interval": interval,
                        "Seeds": str(n),
                    }
                )
            csv.append(
                {"method": ours, "other": other, "task": task, "mean_diff": mean, "low": low, "high": high, "n": n}
            )
    notes = [
        f"Model: `{model}`. Differences in percentage points of the task score, paired by seed (the same "
        "seed gives both methods the same data order and head initialisation).",
        f"{method_label(REFERENCE_OPTIMIZER)} is AFLoRA trained with transformers 4.31's AdamW (the reference "
        "code's; `train.optimizer=adamw_reference`), every other row with torch's AdamW (`adamw_torch`). "
        "The other variants are described under the ablation table.",
        f"Interval: Student's t over the per-seed differences ({CONFIDENCE:.0%}, n−1 degrees of freedom); "
        "it spans 0 when the seeds cannot tell the two methods apart. No interval with one seed.",
    ]
    title = f"Paired by seed: AFLoRA against LoRA and ELoRA, its variants against AFLoRA ({model})"
    return Table.from_rows("paired_comparisons", title, cells, csv, notes)


def ablation_table(runs: list[RunRecord], model: str) -> Table:
    """AFLoRA and its variants side by side: score per task, trainable parameters, and training
    time per epoch relative to AFLoRA's (freezing is meant to save both)."""
    variants = ("aflora", *AFLORA_VARIANTS)
    runs = [r for r in runs if r.method in variants]
    scores = task_scores(runs)
    frame = runs_frame(runs)
    rt, _, why = runtime(completed(runs), references=("aflora",))
    tasks = paper_task_order(scores["task"])
    cells: dict[str, list[dict[str, str]]] = {"md": [], "tex": []}
    csv = []
    for method in [v for v in variants if v in set(scores["method"])]:
        params = frame[frame["method"] == method]["trainable_avg"].mean()
        # (mean, std, n) per task; an empty selection gives (nan, nan, 0), which _cell shows as missing
        stats = {t: _mean_std_n(scores[(scores["method"] == method) & (scores["task"] == t)]["score"]) for t in tasks}
        timing = rt.xs(method, level="method") if len(rt) and method in rt.index.get_level_values("method") else None
        # Over the tasks where AFLoRA ran too (a missing reference gives nan, which geomean leaves out).
        slower = geomean(timing["seconds_per_epoch_over_aflora"]) if timing is not None else math.nan
        flagged = timing is not None and bool(timing["machine_differs_aflora"].any())
        for fmt in ("md", "tex"):
            row = {"Variant": render.escape(method_label(method), fmt), "#Params": render.params_short(params, fmt)}
            row["s/epoch ÷ AFLoRA"] = ratio_cell(slower, flagged, fmt)
            row.update({task_title(t): _cell(*stats[t], fmt) for t in tasks})
            cells[fmt].append(row)
        row_csv: dict[str, object] = {
            "method": method,
            "params_avg": float(params),
            "seconds_per_epoch_over_aflora": slower,
        }
        for t in tasks:
            row_csv[t], row_csv[f"{t}_std"], row_csv[f"{t}_n"] = stats[t]
        csv.append(row_csv)
    notes = [
        f"Model: `{model}`. Task score at the best epoch, mean ± sample std over seeds, in percent; "
        "#Params: time-weighted trainable parameters without the head.",
        f"s/epoch ÷ AFLoRA: training time per epoch over AFLoRA's on the same task, geometric mean over "
        f"the tasks both ran; clock: {why}.",
        "Variants (conf/method/): `aflora-nofreeze` never freezes (the FFN projections train to the end); "
        "`aflora-frozen` freezes every projection from step 0 (ELoRA at r = 4); `aflora-all` starts with "
        "the projections of all six layer types trainable, then freezes them on AFLoRA's schedule; "
        f"{method_label(REFERENCE_OPTIMIZER)} is AFLoRA with the reference code's optimizer, transformers "
        "4.31's AdamW (`train.optimizer=adamw_reference`).",
        "The paired comparisons set each variant against AFLoRA seed by seed.",
    ]
    return Table.from_rows("ablations", f"AFLoRA's ablations ({model})", cells, csv, notes)


def _methods(scores: pd.DataFrame, exclude: tuple[str, ...]) -> list[str]:
    return [m for m in sorted_methods(scores["method"]) if m not in exclude]


def _zero_if_nan(x: float) -> float:
    return 0.0 if math.isnan(x) else x
