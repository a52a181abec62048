"""The scores a study's finished runs wrote: a learning-rate grid's, for harness/studies/rate_choice.py,
and a table's, for harness/studies/more_seeds.py.

A run's selection score is its best epoch's selection-half metric in percent (``<metric>_select`` of
``metrics.best`` in result.json: ``data.protocol=heldout`` chose that epoch on that half); its
reported score is the same epoch's metric on the other half. The
metric is the task's selection metric, unless the study names another for that task
(``score_metric: {mrpc: accuracy}``): the epoch is still the one the run chose. A grid
stage lists, per method, the rates it runs; the runs are found where run.py put them
(harness/studies/finished_runs.py, ``run_dir_of``), never by parsing folder names.
"""

from __future__ import annotations

from collections.abc import Mapping
from statistics import mean

from harness.core.errors import ConfigError
from harness.inputs.tasks import SELECTION_SUFFIX
from harness.storage.results import RESULT_FILE, is_completed, read_result_file
from harness.studies.finished_runs import run_dir_of
from harness.studies.pool import Run

MethodScores = dict[float, dict[str, float]]  # rate -> task -> mean selection score over the stage's seeds


ScoreMetrics = Mapping[str, str]  # task -> the metric a rate is scored on, where not the task's selection metric


def selection_score(run: Run, score_metrics: ScoreMetrics | None = None) -> float | None:
    """``run``'s selection score in percent; None while it has not completed."""
    return _best_epoch_score(run, score_metrics, SELECTION_SUFFIX)


def reported_score(run: Run, score_metrics: ScoreMetrics | None = None) -> float | None:
    """The same metric at the same epoch on the other half, the one the held-out table reports."""
    return _best_epoch_score(run, score_metrics, "")


def _best_epoch_score(run: Run, score_metrics: ScoreMetrics | None, suffix: str) -> float | None:
    found = run_dir_of(run.overrides)
    if found is None or not is_completed(found[0]):
        return None
    result = read_result_file(found[0] / RESULT_FILE)
    metric = (score_metrics or {}).get(run.value("task"), result["metrics"]["selection_metric"])
    key = metric + suffix
    best = result["metrics"]["best"]
    if key not in best:
        raise ConfigError(
            f"{found[0]}: no {key} in its best epoch: a study that scores its runs needs data.protocol=heldout"
        )
    return 100 * best[key]


def grid_scores(runs: list[Run], score_metrics: ScoreMetrics | None = None) -> dict[str, MethodScores]:
    """method -> rate -> task -> score, over the finished ``runs`` of a grid (mean over their seeds)."""
    collected: dict[str, dict[float, dict[str, list[float]]]] = {}
    for run in runs:
        score = selection_score(run, score_metrics)
        if score is None:
            continue
        rate, task = float(run.value("train.lr")), run.value("task")
        collected.setdefault(run.value("method"), {}).setdefault(rate, {}).setdefault(task, []).append(score)
    return {
        m: {r: {t: mean(v) for t, v in by_task.items()} for r, by_task in by_rate.items()}
        for m, by_rate in collected.items()
    }
