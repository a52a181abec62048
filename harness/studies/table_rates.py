"""The rates a table stage (``rates_from: <grid stage>``) trains at: each method's grid choice, or,
where the fallback rule moved a cell (``fallback: {tasks: [...], probe: <method>}``), the grid's next
lower rate; and which of its runs may start while the first seed has not decided every cell.
"""

from __future__ import annotations

from collections.abc import Callable

from omegaconf import DictConfig

from harness.config.compose import run_config
from harness.studies.grid_scores import selection_score
from harness.studies.grids import grid_outcome
from harness.studies.pool import Run
from harness.studies.rate_choice import fallback_rate
from harness.studies.stages import stage_runs

Cell = tuple[str, str]  # (method, task): one row of a table stage, its seeds alike


def first_seed(stage: DictConfig, study: DictConfig) -> str:
    """The seed whose runs decide the fallback rule: the lowest the stage (or else the study) runs."""
    return str(min(stage.get("seeds") or study.seeds))


def fallback_rates(
    stage: DictConfig, study: DictConfig, runs: list[Run]
) -> tuple[dict[Cell, float], dict[Cell, list[Run]]]:
    """(method, task) -> the rate the fallback rule moves that cell to, for a stage with
    ``fallback: {tasks: [...], probe: <method>}``: a method whose first-seed run at the grid's choice
    collapsed on one of those tasks (at or below the probe's first-seed run there) trains there at
    the grid's next lower rate, every seed (conf/protocol/minilm-paper/README.md, "Fallback").
    ``runs`` are the stage's runs at the grid's choices. Returns the moves, and the cells not decided
    yet, each with the first-seed runs (the method's or the probe's) it waits for."""
    rule = stage.get("fallback")
    if not rule:
        return {}, {}
    rates, choices = grid_outcome(stage.rates_from, study.stages[stage.rates_from], study)
    deciding, metrics = first_seed(stage, study), study.get("score_metric")
    moved, undecided = {}, {}
    for run in runs:
        method, task = run.value("method"), run.value("task")
        if run.value("seed") != deciding or task not in rule.tasks or method == rule.probe or method not in rates:
            continue
        # The probe's run on the same command line: the same task, seed, budget and runs_dir.
        probe = run.with_value("method", rule.probe)
        score, floor = selection_score(run, metrics), selection_score(probe, metrics)
        if score is None or floor is None or choices[method].chosen is None or choices[method].extend_to is not None:
            undecided[method, task] = [r for r, got in ((run, score), (probe, floor)) if got is None]
            continue
        lower = fallback_rate(score, floor, choices[method].chosen, rates[method])
        if lower is not None:
            moved[method, task] = lower
    return moved, undecided


def runs_after_fallback(
    name: str, stage: DictConfig, study: DictConfig
) -> tuple[list[Run], dict[Cell, float], dict[Cell, list[Run]]]:
    """A table stage's runs as its finished first-seed runs stand: every seed of every cell, each at
    the rate the fallback rule gives it so far (a cell it has not decided yet at the grid's choice);
    the moves; and the undecided cells, as ``fallback_rates`` returns them. Without a ``fallback``,
    the stage's runs, no moves, nothing undecided."""
    overrides, seeds = tuple(study.get("overrides") or ()), list(study.seeds)
    planned = stage_runs(name, stage, study.model, seeds, overrides)
    moved, undecided = fallback_rates(stage, study, planned)
    return stage_runs(name, stage, study.model, seeds, overrides, fallback=moved), moved, undecided


def check_rates_chosen(stage: DictConfig, study: DictConfig, runs: list[Run]) -> None:
    """A stage with ``rates_from: <grid stage>`` trains each method at its grid's choice, or not at
    all; ``runs`` are the stage's runs as written (the fallback rule moves a cell from that choice only
    once its first seed has run there)."""
    grid_name = stage.get("rates_from")
    if not grid_name:
        return
    rates, choices = grid_outcome(grid_name, study.stages[grid_name], study)
    for run in runs:
        method = run.value("method")
        if method not in rates:
            continue  # not a grid method (an ablation trains at its base method's rate)
        choice = choices.get(method)
        if choice is None or choice.chosen is None or choice.extend_to is not None:
            raise SystemExit(
                f"error: the grid {grid_name!r} has not chosen {method}'s rate yet: run --stage {grid_name} first"
            )
        lr = run_config(run.overrides).train.lr
        if float(lr) != choice.chosen:
            raise SystemExit(
                f"error: {method} would train at train.lr={lr} but the grid {grid_name!r} chose {choice.chosen:g}: "
                "set it in the method's tuning file"
            )


def ready_runs(
    name: str, stage: DictConfig, study: DictConfig, keep: Callable[[Run], bool]
) -> tuple[list[Run], dict[Cell, float], list[Run]]:
    """The stage's runs (those ``keep`` keeps) that may start as its finished runs stand: every
    first-seed run, and a cell's later seeds once the fallback rule has decided their rate. Also the
    moves, and the unfinished first-seed runs that held-back seeds wait for."""
    runs, moved, undecided = runs_after_fallback(name, stage, study)
    deciding = first_seed(stage, study)
    ready, waiting_on = [], []
    for run in filter(keep, runs):
        waits = undecided.get((run.value("method"), run.value("task")))
        if run.value("seed") == deciding or waits is None:
            ready.append(run)
        else:
            waiting_on += [r for r in waits if r not in waiting_on]
    return ready, moved, waiting_on
