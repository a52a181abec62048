"""bf16 against fp32 on the same protocol: is the faster precision safe for a study's numbers?

The runs of ``conf/study/minilm-bf16.yaml`` repeat study cells at ``train.precision=bf16``; each is
paired with the fp32 run of the same cell and seed (the same data order and initialisation). A cell
passes when its bf16 mean lies within its fp32 seed standard deviation of the fp32 mean: the
precision then moves the cell by less than the seeds already do (conf/protocol/minilm-paper/README.md,
"Precision").
"""

from __future__ import annotations

import math
from statistics import mean

import pandas as pd

from harness.report import render
from harness.report.aggregate import completed, paper_task_order
from harness.report.load import RunRecord
from harness.report.paper import method_label, task_title
from harness.report.render import MISSING, Table
from harness.report.study_tables import task_scores
from harness.studies.paired_interval import CONFIDENCE, paired_difference

BF16_VARIANT = "train.precision=bf16"


def is_bf16_variant(run: RunRecord) -> bool:
    return run.variant == BF16_VARIANT


def base_method(run: RunRecord) -> str:
    return run.method.removesuffix(f" [{BF16_VARIANT}]")


def _freezing_steps(run: RunRecord) -> dict[str, int | None]:
    return dict(run.result.freezing or {})


def freezing_agreement(fp32: list[RunRecord], bf16: list[RunRecord]) -> tuple[float, float, int, int]:
    """AFLoRA, seed by seed: the mean step at which its trained projections froze under each
    precision, and how many of them froze at the same step (mean fp32, mean bf16, same, compared)."""
    by_seed = {r.seed: _freezing_steps(r) for r in bf16}
    means32, means16, same, compared = [], [], 0, 0
    for run in fp32:
        if run.seed not in by_seed:
            continue
        a, b = _freezing_steps(run), by_seed[run.seed]
        trained = [k for k in a if (a[k] or 0) > 0 or (b.get(k) or 0) > 0]  # step 0: frozen from the start
        if not trained:
            continue
        means32.append(mean(a[k] if a[k] is not None else math.inf for k in trained))
        means16.append(mean(b[k] if b.get(k) is not None else math.inf for k in trained))
        same += sum(a[k] == b.get(k) for k in trained)
        compared += len(trained)
    if not compared:
        return math.nan, math.nan, 0, 0
    return mean(means32), mean(means16), same, compared


def precision_parity_table(runs: list[RunRecord], model: str) -> Table:
    """Per (method, task) with bf16 runs: fp32 and bf16 means, the paired difference with its t
    interval, whether |difference of means| <= the fp32 seed std, and AFLoRA's freezing steps."""
    done = completed(runs)
    bf16 = [r for r in done if is_bf16_variant(r)]
    cells: dict[str, list[dict[str, str]]] = {"md": [], "tex": []}
    csv = []
    scores = task_scores(done)
    for method in dict.fromkeys(base_method(r) for r in bf16):
        for task in paper_task_order(scores["task"]):
            of_task = scores[scores["task"] == task].set_index("seed")
            a = of_task[of_task["method"] == f"{method} [{BF16_VARIANT}]"]["score"]
            b = of_task[of_task["method"] == method]["score"]
            if a.empty or b.empty:
                continue
            diff, low, high, n = paired_difference(a, b)
            std32 = float(b.std(ddof=1)) if len(b) > 1 else math.nan
            std16 = float(a.std(ddof=1)) if len(a) > 1 else math.nan
            moved = abs(float(a.mean()) - float(b.mean()))
            within = "yes" if moved <= std32 else ("no" if not math.isnan(std32) else "n/a")
            runs32 = [r for r in done if r.method == method and r.task == task]
            runs16 = [r for r in bf16 if base_method(r) == method and r.task == task]
            f32, f16, same, compared = freezing_agreement(runs32, runs16)
            for fmt in ("md", "tex"):
                interval = MISSING[fmt] if math.isnan(low) else f"[{render.num(low, fmt)}, {render.num(high, fmt)}]"
                freezing = (
                    f"{render.num(f32, fmt)} / {render.num(f16, fmt)} ({same} of {compared} same)"
                    if compared
                    else MISSING[fmt]
                )
                cells[fmt].append(
                    {
                        "Method": render.escape(method_label(method), fmt),
                        "Task": task_title(task),
                        "fp32": f"{render.mean_std(float(b.mean()), std32, fmt)} (n={len(b)})",
                        "bf16": f"{render.mean_std(float(a.mean()), std16, fmt)} (n={len(a)})",
                        "bf16 − fp32 (paired)": render.num(diff, fmt),
                        f"{CONFIDENCE:.0%} interval": interval,
                        "Within fp32 seed std": within,
                        "Mean freezing step fp32 / bf16": freezing,
                    }
                )
            csv.append(
                {
                    "method": method,
                    "task": task,
                    "fp32_mean": float(b.mean()),
                    "fp32_std": std32,
                    "bf16_mean": float(a.mean()),
                    "paired_diff": diff,
                    "low": low,
                    "high": high,
                    "n": n,
                    "within_fp32_std": within,
                    "freeze_step_fp32": f32,
                    "freeze_step_bf16": f16,
                    "freeze_same": same,
                    "freeze_compared": compared,
                }
            )
    notes = [
        f"Model: `{model}`. Task scores in percent at each run's best epoch; bf16 runs are the cells' "
        f"`{BF16_VARIANT}` runs (`conf/study/minilm-bf16.yaml`), paired by seed with the study's fp32 runs.",
        "Within fp32 seed std: |bf16 mean − fp32 mean| ≤ the fp32 runs' seed standard deviation, the parity "
        'rule of conf/protocol/minilm-paper/README.md ("Precision").',
        "Mean freezing step: AFLoRA's projections that trained (frozen at a step > 0), averaged over them and "
        "over seeds; 'same': projections that froze at the same step under both precisions, seed by seed.",
        f"Interval: Student's t over the per-seed differences ({CONFIDENCE:.0%}).",
    ]
    title = f"Precision parity: bf16 against fp32 on the study's protocol ({model})"
    return Table.from_rows("precision_parity", title, cells, pd.DataFrame(csv), notes)
