"""A study's stages other than a self-extending grid, as the finished runs stand: a stage with
``methods`` at its grid's rates with the fallback rule's moves (``table_rates``), or a stage with
``of:`` that adds seeds to one (``more_seeds``). ``harness.study`` and the study's report both list
a stage's runs here, so they cannot disagree.
"""

from __future__ import annotations

from collections.abc import Callable

from omegaconf import DictConfig

from harness.studies.more_seeds import more_seed_runs
from harness.studies.pool import Run
from harness.studies.table_rates import Cell, ready_runs, runs_after_fallback


def planned_runs(name: str, stage: DictConfig, study: DictConfig) -> tuple[list[Run], dict[Cell, float]]:
    """Every run the stage trains as things stand (a held-back seed at its grid's rate), and the
    fallback rule's moves."""
    if stage.get("of"):
        return more_seed_runs(name, stage, study)[0], {}
    runs, moved, _ = runs_after_fallback(name, stage, study)
    return runs, moved


def startable_runs(
    name: str, stage: DictConfig, study: DictConfig, keep: Callable[[Run], bool]
) -> tuple[list[Run], dict[Cell, float], list[Run]]:
    """The stage's runs (those ``keep`` keeps) that may start now, the fallback rule's moves, and
    the unfinished runs that others wait for."""
    if stage.get("of"):
        runs, waiting_on = more_seed_runs(name, stage, study, keep)
        return runs, {}, waiting_on
    return ready_runs(name, stage, study, keep)
