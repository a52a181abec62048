"""A learning-rate grid as its finished runs stand: each method's rates, its choice by the
protocol's rule (harness/studies/rate_choice.py), the rates an edge extension adds
(``extend: true``) and the runs a collapse makes moot. The study tool runs a grid with it, and a
table stage and the study's report take their rates from it.
"""

from __future__ import annotations

from collections.abc import Mapping

from omegaconf import DictConfig

from harness.studies.grid_scores import ScoreMetrics, grid_scores
from harness.studies.pool import Run
from harness.studies.rate_choice import RateChoice, choose_rate
from harness.studies.stages import grid_rates, stage_runs


def grid_choices(
    stage: DictConfig, runs: list[Run], rates: Mapping[str, list[float]], score_metrics: ScoreMetrics | None = None
) -> dict[str, RateChoice]:
    """Each method's choice by the rule (harness/studies/rate_choice.py). With a ``probe``, the probe is judged
    first and alone; the others wait for its choice, which is their collapse floor."""
    tasks = list(stage.tasks)
    scores = grid_scores(runs, score_metrics)
    full = {m: {r: scores.get(m, {}).get(r, {}) for r in rates[m]} for m in rates}
    probe = stage.get("probe")
    choices = {}
    if probe:
        choices[probe] = choose_rate(full[probe], tasks)
        if choices[probe].chosen is None or choices[probe].extend_to is not None:
            return choices
    floor = dict(full[probe][choices[probe].chosen]) if probe else None
    for method in rates:
        if method != probe:
            choices[method] = choose_rate(full[method], tasks, floor)
    return choices


def describe(method: str, choice: RateChoice) -> str:
    scores = ", ".join(
        f"{rate:g}: "
        + (f"{choice.mean_scores[rate]:.2f}" if rate in choice.mean_scores else "—")
        + (f" (collapsed on {'/'.join(choice.collapsed[rate])})" if rate in choice.collapsed else "")
        + (f" ({'/'.join(choice.unneeded[rate])} not run)" if rate in choice.unneeded else "")
        for rate in sorted({*choice.mean_scores, *choice.collapsed})
    )
    if choice.extend_to is not None:
        verdict = (
            f"at an edge: extending to {choice.extend_to:g}"
            if choice.chosen
            else f"none eligible: extending to {choice.extend_to:g}"
        )
    elif choice.chosen is None:
        verdict = "not judged yet"
    else:
        verdict = f"chose {choice.chosen:g}"
    return f"  {method}: {verdict} [{scores}]"


def grid_outcome(
    name: str, stage: DictConfig, study: DictConfig
) -> tuple[dict[str, list[float]], dict[str, RateChoice]]:
    """A grid's rates and each method's choice as its finished runs stand, with every extension
    those runs call for (``extend: true``); a method whose newest rates have not finished is not
    judged yet."""
    overrides = tuple(study.get("overrides") or ())
    extended: dict[str, list[float]] = {}
    while True:
        rates = grid_rates(stage, extended)
        runs = stage_runs(name, stage, study.model, list(study.seeds), overrides, rates)
        choices = grid_choices(stage, runs, rates, study.get("score_metric"))
        more = {m: c.extend_to for m, c in choices.items() if c.extend_to is not None}
        if not more or not stage.get("extend"):
            return rates, choices
        for method, rate in more.items():
            extended.setdefault(method, []).append(rate)


def grid_runs(name: str, stage: DictConfig, study: DictConfig) -> list[Run]:
    """A grid's runs as its finished runs stand: every rate they call for, less the runs of a rate
    that has collapsed on another task (moot: the rate stays ineligible whatever they score)."""
    rates, choices = grid_outcome(name, stage, study)
    runs = stage_runs(name, stage, study.model, list(study.seeds), tuple(study.get("overrides") or ()), rates)
    return [r for r in runs if not _moot(r, choices)]


def _moot(run: Run, choices: Mapping[str, RateChoice]) -> bool:
    choice = choices.get(run.value("method"))
    return choice is not None and run.value("task") in choice.unneeded.get(float(run.value("train.lr")), [])
