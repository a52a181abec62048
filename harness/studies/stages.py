"""A study stage's runs, seed-major: the command lines ``harness.study`` hands its pool.

A stage (``conf/study/*.yaml``) names its tasks and either a learning-rate grid (``lr``: method ->
rates) or ``methods``; every run gets the study's model and ``overrides``, and the stage's
``runs_dir`` when it has one.
"""

from __future__ import annotations

from collections.abc import Mapping

from omegaconf import DictConfig

from harness.studies.pool import Run


def _run(study_overrides: tuple[str, ...], model: str, task: str, method: str, seed: int, *extra: str) -> Run:
    return Run((f"task={task}", f"model={model}", f"method={method}", f"seed={seed}", *study_overrides, *extra))


def grid_rates(stage: DictConfig, extended: Mapping[str, list[float]] | None = None) -> dict[str, list[float]]:
    """Each method's rates: the stage's, plus those an edge extension added (harness/studies/rate_choice.py)."""
    extended = extended or {}
    return {m: sorted({*map(float, rates), *extended.get(m, [])}) for m, rates in stage.lr.items()}


def stage_runs(
    name: str,
    stage: DictConfig,
    model: str,
    default_seeds: list[int],
    study_overrides: tuple[str, ...] = (),
    rates: Mapping[str, list[float]] | None = None,
    fallback: Mapping[tuple[str, str], float] | None = None,
) -> list[Run]:
    """The runs of one stage, seed-major: seed 1 of every (task, method[, lr]) before seed 2.

    A stage's ``runs_dir`` (if any) and the study's ``overrides`` go on every run's command line; a
    learning-rate grid (``lr``) gives each value its own ``train.lr=<value>/`` folder, and so does
    a (method, task) the fallback rule moved to another rate (``fallback``, see harness/studies/table_rates.py).
    """
    fallback = fallback or {}
    seeds = list(stage.get("seeds") or default_seeds)
    extra = (*study_overrides, *(stage.get("overrides") or ()))
    where = (f"runs_dir={stage.runs_dir}",) if stage.get("runs_dir") else ()
    runs = []
    for seed in seeds:
        for task in stage.tasks:
            if "lr" in stage:
                for method, values in (rates or grid_rates(stage)).items():
                    runs += [_run(extra, model, task, method, seed, f"train.lr={lr}", *where) for lr in values]
            else:
                for method in stage.methods:
                    moved = (f"train.lr={fallback[method, task]}",) if (method, task) in fallback else ()
                    runs.append(_run(extra, model, task, method, seed, *moved, *where))
    return runs
