"""Seeds past a table stage's, where its seeds cannot tell two methods apart
(conf/protocol/minilm-paper/README.md, "Methods": budget permitting, seeds 4 and 5 for each AFLoRA
comparison whose 95 % interval holds zero, in both of its methods alike).

A stage ``{of: <table stage>, seeds: [4, 5], pairs: [[aflora, lora], [aflora, elora]]}`` decides each
pair on each task of that table once every seed of both methods there has finished: the t interval
of their paired difference over those seeds (harness/studies/paired_interval.py, the report's), on
the held-out protocol's reported half (the primary table's number; harness/studies/grid_scores.py,
``reported_score``). Where it holds zero, both methods run the new seeds on that task. Each such run
is its table cell's command line with another seed: the same rate, the fallback's move included,
and the same runs_dir.
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
from omegaconf import DictConfig

from harness.studies.grid_scores import reported_score
from harness.studies.paired_interval import paired_difference
from harness.studies.pool import Run
from harness.studies.table_rates import Cell, runs_after_fallback


def check_more_seeds_stage(name: str, stage: DictConfig, study: DictConfig) -> None:
    """One line naming what is wrong: the stage it adds to, its pairs' methods, or its seeds."""
    table = study.stages.get(stage.of)
    if table is None or "methods" not in table:
        raise SystemExit(f"error: stage {name!r}: of: {stage.of!r} must name a table stage (one with methods)")
    if unknown := sorted({m for pair in stage.pairs for m in pair} - set(table.methods)):
        raise SystemExit(f"error: stage {name!r}: pairs name {unknown[0]!r}, which stage {stage.of!r} does not run")
    if overlap := set(stage.seeds) & set(table.get("seeds") or study.seeds):
        raise SystemExit(f"error: stage {name!r}: seeds {sorted(overlap)} are already stage {stage.of!r}'s")


def more_seed_runs(
    name: str, stage: DictConfig, study: DictConfig, keep: Callable[[Run], bool] = lambda run: True
) -> tuple[list[Run], list[Run]]:
    """The stage's runs as the table's finished runs stand, seed-major, those ``keep`` keeps; and the
    table's unfinished runs that a comparison waits for (only where it could add a kept run)."""
    check_more_seeds_stage(name, stage, study)
    table = study.stages[stage.of]
    by_cell: dict[Cell, list[Run]] = {}
    for run in runs_after_fallback(stage.of, table, study)[0]:
        by_cell.setdefault((run.value("method"), run.value("task")), []).append(run)
    score_metrics = study.get("score_metric")
    undecided: set[Cell] = set()
    waiting: list[Run] = []
    for task in table.tasks:
        for pair in stage.pairs:
            runs = [run for method in pair for run in by_cell[method, task]]
            if not any(keep(run.with_value("seed", seed)) for run in runs for seed in stage.seeds):
                continue
            scores = {run: reported_score(run, score_metrics) for run in runs}
            if unfinished := [run for run, score in scores.items() if score is None]:
                waiting += [run for run in unfinished if run not in waiting]
                continue
            a, b = (pd.Series({int(r.value("seed")): scores[r] for r in by_cell[m, task]}) for m in pair)
            _, low, high, _ = paired_difference(a, b)
            if low <= 0 <= high:
                undecided |= {(method, task) for method in pair}
    runs = [
        cell_runs[0].with_value("seed", seed)
        for seed in stage.seeds
        for cell, cell_runs in by_cell.items()
        if cell in undecided
    ]
    return [run for run in runs if keep(run)], waiting
