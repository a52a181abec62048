"""A study: an ordered list of runs of ``run.py``, N at a time, each with cores / N torch threads.

    python -m harness.study conf/study/minilm.yaml [--stage grid] [--jobs 2] [--dry-run]

Every torch process starts one thread per core by default, so two trainings at once on a 2-core
machine would each run on 2 threads and slow each other down; here each of the N jobs gets
``train.threads = cores // N``. Runs are started in the study's order (stage by stage, seed 1 of
every cell first), so a study cut short still has whole seeds. ``run.py`` skips a run whose
result is complete and resumes one with a checkpoint, so rerunning the same command continues
where it stopped. Each run's output goes to ``<logs>/<run>.log``; the exit code is 1 when any run
failed, and the failed runs are listed.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Run:
    overrides: tuple[str, ...]  # run.py's command line, e.g. ("task=rte", "model=minilm", ...)

    @property
    def label(self) -> str:
        return "_".join(o.split("=", 1)[1].replace("/", "-") for o in self.overrides)


def _runs_dir_for_lr(stage: DictConfig, lr: object) -> str:
    return f"{stage.runs_dir}/lr{lr}"  # "=" would need quoting on a Hydra command line


def stage_runs(name: str, stage: DictConfig, model: str, default_seeds: list[int]) -> list[Run]:
    """The runs of one stage, seed-major: seed 1 of every (task, method[, lr]) before seed 2."""
    seeds = list(stage.get("seeds") or default_seeds)
    runs = []
    for seed in seeds:
        for task in stage.tasks:
            if "lr" in stage:  # a learning-rate grid: one runs_dir per value
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
                                    f"runs_dir={_runs_dir_for_lr(stage, lr)}",
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


def threads_per_job(jobs: int, cores: int | None = None) -> int:
    return max((cores or os.cpu_count() or 1) // jobs, 1)


def _run_one(run: Run, threads: int, logs: Path) -> tuple[Run, int, float]:
    command = [sys.executable, str(REPO / "run.py"), *run.overrides, f"train.threads={threads}"]
    start = time.monotonic()
    with open(logs / f"{run.label}.log", "a") as log:
        log.write(f"$ {' '.join(command[1:])}\n")
        log.flush()
        code = subprocess.call(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    return run, code, time.monotonic() - start


def run_all(runs: list[Run], jobs: int, logs: Path) -> list[Run]:
    """Run everything, ``jobs`` at a time in list order; return the runs that failed."""
    logs.mkdir(parents=True, exist_ok=True)
    threads = threads_per_job(jobs)
    print(f"{len(runs)} runs, {jobs} at a time with {threads} thread(s) each; logs in {logs}/", flush=True)
    failed = []
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(_run_one, run, threads, logs) for run in runs]
        for done, future in enumerate(futures, 1):
            run, code, seconds = future.result()
            status = "ok" if code == 0 else f"FAILED (exit {code})"
            print(f"[{done}/{len(runs)}] {run.label}: {status}, {seconds:.0f} s", flush=True)
            if code:
                failed.append(run)
    return failed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("study", type=Path, help="a study file, e.g. conf/study/minilm.yaml")
    parser.add_argument("--stage", default=None, help="run only this stage (default: all, in order)")
    parser.add_argument("--jobs", type=int, default=2, help="runs at once (default 2); each gets cores // jobs threads")
    parser.add_argument("--logs", type=Path, default=REPO / "logs" / "study", help="one log file per run here")
    parser.add_argument("--dry-run", action="store_true", help="list the runs in order and exit")
    args = parser.parse_args(argv)
    if not args.study.is_file():
        parser.error(f"no study file {args.study}")
    if args.jobs < 1:
        parser.error(f"--jobs must be at least 1, got {args.jobs}")
    runs = study_runs(OmegaConf.load(args.study), args.stage)
    if args.dry_run:
        print("\n".join(" ".join(run.overrides) for run in runs))
        return 0
    failed = run_all(runs, args.jobs, args.logs / args.study.stem)
    if failed:
        print(f"{len(failed)} run(s) failed (see their logs):", *(f"  {r.label}" for r in failed), sep="\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
