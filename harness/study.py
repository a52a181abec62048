"""A study: an ordered list of runs of ``run.py``, N at a time, each with cores / N torch threads.

    python -m harness.study conf/study/minilm.yaml [--stage grid] [--jobs 2] [--dry-run]

Runs are started in the study's order (stage by stage, seed 1 of every cell first), so a study
cut short still has whole seeds. ``run.py`` skips a run whose
result is complete and resumes one with a checkpoint, so rerunning the same command continues
where it stopped. Each run's output goes to ``<logs>/<run>.log``; the exit code is 1 when any run
failed, and the failed runs are listed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from harness.pool import REPO, Run, run_all


def stage_runs(name: str, stage: DictConfig, model: str, default_seeds: list[int]) -> list[Run]:
    """The runs of one stage, seed-major: seed 1 of every (task, method[, lr]) before seed 2."""
    seeds = list(stage.get("seeds") or default_seeds)
    runs = []
    for seed in seeds:
        for task in stage.tasks:
            if "lr" in stage:  # a learning-rate grid: each value gets its own train.lr=<value>/ folder
                for method, values in stage.lr.items():
                    for lr in values:
                        runs.append(
                            Run(
                                (
                                    f"task={task}",
                                    f"model={model}",
                                    f"method={method}",
                                    f"seed={seed}",
                                    f"train.lr={lr}",
                                    f"runs_dir={stage.runs_dir}",
                                )
                            )
                        )
            else:
                for method in stage.methods:
                    extra = tuple(stage.get("overrides") or ())
                    runs.append(Run((f"task={task}", f"model={model}", f"method={method}", f"seed={seed}", *extra)))
    return runs


def study_runs(study: DictConfig, only: str | None = None) -> list[Run]:
    if only is not None and only not in study.stages:
        raise SystemExit(f"--stage {only!r} is not a stage of this study (stages: {', '.join(study.stages)})")
    names = [only] if only else list(study.stages)
    return [run for name in names for run in stage_runs(name, study.stages[name], study.model, list(study.seeds))]


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
    args = parser.parse_args(argv)
    if not args.study.is_file():
        parser.error(f"no study file {args.study}")
    if args.jobs < 1:
        parser.error(f"--jobs must be at least 1, got {args.jobs}")
    if args.threads is not None and args.threads < 1:
        parser.error(f"--threads must be at least 1, got {args.threads}")
    runs = study_runs(OmegaConf.load(args.study), args.stage)
    if args.methods:
        runs = [run for run in runs if run.value("method") in args.methods.split(",")]
    if args.tasks:
        runs = [run for run in runs if run.value("task") in args.tasks.split(",")]
    if args.dry_run:
        print("\n".join(" ".join(run.overrides) for run in runs))
        return 0
    return 1 if run_all(runs, args.jobs, args.logs / args.study.stem, args.threads) else 0


if __name__ == "__main__":
    sys.exit(main())
