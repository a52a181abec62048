"""A study: an ordered list of runs of ``run.py``, N at a time, each with cores / N torch threads.

    python -m harness.study conf/study/minilm.yaml [--stage grid] [--jobs 2] [--dry-run | --status]

Runs are started in the study's order (stage by stage, seed 1 of every cell first), so a study
cut short still has whole seeds. ``run.py`` skips a run whose
result is complete and resumes one with a checkpoint, so rerunning the same command continues
where it stopped. Each run's output goes to ``<logs>/<run>.log``; the exit code is 1 when any run
failed, and the failed runs are listed. ``--status`` says where each run stands, while it trains.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from harness.config.compose import run_config
from harness.studies.finished_runs import is_finished, run_dir_of
from harness.studies.grids import describe, grid_outcome, grid_runs
from harness.studies.pool import REPO, Run, RunSource, run_all
from harness.studies.progress import status_lines
from harness.studies.stages import stage_runs
from harness.studies.table_rates import Cell, check_rates_chosen
from harness.studies.table_stages import planned_runs, startable_runs


def study_runs(study: DictConfig, only: str | None = None) -> list[Run]:
    """Every stage's runs in order, as the finished runs stand: a grid that extends itself (``extend:
    true``) with every rate they call for so far and none a collapse has made moot, a table stage's
    cells where the fallback rule has moved them so far, and the seeds a stage with ``of:`` adds so far."""
    if only is not None and only not in study.stages:
        raise SystemExit(f"--stage {only!r} is not a stage of this study (stages: {', '.join(study.stages)})")
    runs = []
    for name in [only] if only else list(study.stages):
        stage = study.stages[name]
        if stage.get("extend"):
            runs += grid_runs(name, stage, study)
        else:
            runs += planned_runs(name, stage, study)[0]
    return runs


def run_grid(
    name: str, stage: DictConfig, study: DictConfig, keep: Callable[[Run], bool], pool: Callable[[RunSource], list[Run]]
) -> list[Run]:
    """Run a learning-rate grid; with ``extend: true``, grow it past any chosen rate at its edge
    until every choice is interior (conf/protocol/minilm-paper/README.md). The pool asks for the
    grid's runs again as each one ends, so a rate the finished runs call for starts in the next free
    slot, and a run a collapse has made moot is dropped before it starts. A failed run leaves its
    method unjudged; the others go on. Returns the failed runs."""

    def runs_as_they_stand() -> list[Run]:
        return [r for r in grid_runs(name, stage, study) if keep(r)]

    failed = pool(runs_as_they_stand)
    if not failed:  # every choice the finished runs allow is made
        _, choices = grid_outcome(name, stage, study)
        print(
            f"grid {name!r}, by the rule of the study's protocol:",
            *(describe(m, c) for m, c in choices.items()),
            sep="\n",
            flush=True,
        )
    return failed


def emulated_bf16_runs(runs: list[Run]) -> list[Run]:
    """The runs not finished yet that would train in bf16 on this CPU where it has no bf16
    instructions (harness/execution/cpu_bf16.py): a study of them would take days instead of hours.
    The precision is read from the composition the finished-run check keeps; a run's device (not
    part of that record) is composed again only on such a CPU."""

    def in_bf16(run: Run) -> bool:
        found = run_dir_of(run.overrides)
        return found is not None and found[1].get("train.precision") == "bf16"

    bf16 = [r for r in runs if in_bf16(r) and not is_finished(r.overrides)]
    if not bf16:
        return []
    import torch  # only now: the study tool otherwise never imports torch

    from harness.execution.cpu_bf16 import emulated_bf16

    if not emulated_bf16():
        return []
    on_cpu = ("cpu", "auto") if not torch.cuda.is_available() else ("cpu",)
    return [r for r in bf16 if run_config(r.overrides).train.device in on_cpu]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("study", type=Path, help="a study file, e.g. conf/study/minilm.yaml")
    parser.add_argument("--stage", default=None, help="run only this stage (default: all, in order)")
    parser.add_argument("--jobs", type=int, default=2, help="runs at once (default 2); each gets cores // jobs threads")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads per run (default: cores // jobs; lower it when another study shares the machine)",
    )
    parser.add_argument("--logs", type=Path, default=REPO / "logs" / "study", help="one log file per run here")
    parser.add_argument(
        "--methods", default=None, help="comma-separated: only these methods' runs (e.g. the ones whose rates are set)"
    )
    parser.add_argument("--tasks", default=None, help="comma-separated: only these tasks' runs")
    parser.add_argument("--dry-run", action="store_true", help="list the runs in order and exit")
    parser.add_argument(
        "--status",
        action="store_true",
        help="list the runs in order with where each stands (finished, epochs saved, failed, refused, not started)"
        " and exit",
    )
    parser.add_argument(
        "--allow-emulated-bf16",
        action="store_true",
        help="start bf16 runs on a CPU without bf16 instructions, where PyTorch emulates it (tens of times slower)",
    )
    args = parser.parse_args(argv)
    if not args.study.is_file():
        parser.error(f"no study file {args.study}")
    if args.jobs < 1:
        parser.error(f"--jobs must be at least 1, got {args.jobs}")
    if args.threads is not None and args.threads < 1:
        parser.error(f"--threads must be at least 1, got {args.threads}")
    study = OmegaConf.load(args.study)

    def keep(run: Run) -> bool:
        return (not args.methods or run.value("method") in args.methods.split(",")) and (
            not args.tasks or run.value("task") in args.tasks.split(",")
        )

    if args.dry_run:
        print("\n".join(" ".join(run.overrides) for run in study_runs(study, args.stage) if keep(run)))
        return 0
    if args.status:
        print("\n".join(status_lines([run for run in study_runs(study, args.stage) if keep(run)])))
        return 0

    def pool(runs: RunSource) -> list[Run]:
        listed = runs() if callable(runs) else runs
        if not args.allow_emulated_bf16 and (slow := emulated_bf16_runs(listed)):
            from harness.execution.cpu_bf16 import EMULATED_BF16

            parser.exit(
                2, f"error: {len(slow)} runs to train would use {EMULATED_BF16}; --allow-emulated-bf16 starts them\n"
            )
        return run_all(runs, args.jobs, args.logs / args.study.stem, args.threads)

    failed = run_study(study, args.stage, keep, pool)
    return 1 if failed else 0


def run_study(
    study: DictConfig, only: str | None, keep: Callable[[Run], bool], pool: Callable[[RunSource], list[Run]]
) -> list[Run]:
    """Every stage in order. A self-extending grid runs alone, since the stages after it need its
    choices; the stages between grids share one pool, which asks for their runs again as each run
    ends. So a stage with a ``fallback`` hands out a cell's later seeds as soon as the cell's first
    seed (and the probe's) has decided their rate, beside the first seed's last runs, and a stage
    with ``of:`` its extra seeds as soon as the table's seeds of a pair have finished."""
    if only is not None and only not in study.stages:
        raise SystemExit(f"--stage {only!r} is not a stage of this study (stages: {', '.join(study.stages)})")
    overrides = tuple(study.get("overrides") or ())
    failed: list[Run] = []
    sharing: list[str] = []  # the stages since the last grid, for one pool
    announced: set[tuple[str, Cell]] = set()

    def runs_as_they_stand() -> list[Run]:
        listed = []
        for name in sharing:
            ready, moved, _ = startable_runs(name, study.stages[name], study, keep)
            for (method, task), rate in moved.items():
                if (name, (method, task)) not in announced:
                    announced.add((name, (method, task)))
                    print(f"fallback: {method} collapsed on {task} at the grid's rate: every seed trains at {rate:g}")
            listed += ready
        return listed

    def run_shared() -> list[Run]:
        failed_here = pool(runs_as_they_stand) if sharing else []
        waiting_on = [r for name in sharing for r in startable_runs(name, study.stages[name], study, keep)[2]]
        sharing.clear()
        if waiting_on and not failed_here:  # --methods, --tasks or --stage left out a run the rules read
            needed = " ".join(waiting_on[0].overrides)
            raise SystemExit(f"error: the study's rules need the finished run {needed}: run it first")
        if waiting_on:
            print("runs held back until these runs finish:", *(r.label for r in waiting_on))
        return failed_here

    for name in [only] if only else list(study.stages):
        stage = study.stages[name]
        if stage.get("extend"):
            failed += run_shared()
            failed += run_grid(name, stage, study, keep, pool)
            if failed:  # the stages after a grid need its choice
                return failed
            continue
        if not stage.get("of"):  # a more-seeds stage repeats its table's runs, checked when they ran
            check_rates_chosen(
                stage, study, [r for r in stage_runs(name, stage, study.model, list(study.seeds), overrides) if keep(r)]
            )
        sharing.append(name)
    return failed + run_shared()


if __name__ == "__main__":
    sys.exit(main())
