"""Many ``run.py`` runs on this machine, N at a time, each with cores / N torch threads.

Every torch process starts one thread per core by default, so two trainings at once on a 2-core
machine would each run on 2 threads and slow each other down (measured: each step 2.3x slower
than with one thread each). Here each of the N jobs gets ``train.threads = cores // N``. Runs start
in list order and are reported as they end; each one's output goes to ``<logs>/<run>.log``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from harness.finished_runs import is_finished
from harness.paths import REPO, RUN_PY


@dataclass(frozen=True)
class Run:
    overrides: tuple[str, ...]  # run.py's command line, e.g. ("task=rte", "model=minilm", ...)

    def value(self, key: str) -> str | None:
        """The value this run sets for ``key`` on its command line (None when it sets none)."""
        return next((o.split("=", 1)[1] for o in self.overrides if o.startswith(f"{key}=")), None)

    @property
    def label(self) -> str:
        return "_".join(o.split("=", 1)[1].replace("/", "-") for o in self.overrides)


def threads_per_job(jobs: int, cores: int | None = None) -> int:
    return max((cores or os.cpu_count() or 1) // jobs, 1)


def _overrides(run: Run, threads: int) -> list[str]:
    return [*run.overrides, f"train.threads={threads}"]


def _run_one(run: Run, threads: int, logs: Path) -> tuple[Run, int, float]:
    command = [sys.executable, str(RUN_PY), *_overrides(run, threads)]
    start = time.monotonic()
    with open(logs / f"{run.label}.log", "a") as log:
        log.write(f"$ {' '.join(command[1:])}\n")
        log.flush()
        code = subprocess.call(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    return run, code, time.monotonic() - start


def plan_line(total: int, todo: int, jobs: int, threads: int, logs: Path) -> str:
    """What a (re)started pool is about to do, in one line."""
    if todo == 0:
        return f"{total} runs, all finished earlier: nothing to run."
    thread_s = "thread" if threads == 1 else "threads"
    return (
        f"{total} runs, {total - todo} finished earlier; running the other {todo}, {jobs} at a time "
        f"with {threads} {thread_s} each; logs in {logs}/"
    )


def run_all(runs: list[Run], jobs: int, logs: Path, threads: int | None = None) -> list[Run]:
    """Run everything not finished yet, ``jobs`` at a time in list order, each with ``threads`` torch
    threads (default: its share of the cores); list and return the runs that failed. A finished run
    (harness/finished_runs.py) is stepped over here, without starting run.py for it."""
    logs.mkdir(parents=True, exist_ok=True)
    threads = threads or threads_per_job(jobs)
    todo = [run for run in runs if not is_finished(_overrides(run, threads))]  # here: Hydra's state is global
    print(plan_line(len(runs), len(todo), jobs, threads, logs), flush=True)
    failed = []
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(_run_one, run, threads, logs) for run in todo]
        # Reported as each one ends: a short run's line should not wait behind a long one's.
        for done, future in enumerate(as_completed(futures), 1):
            run, code, seconds = future.result()
            status = "ok" if code == 0 else f"FAILED (exit {code})"
            print(f"[{done}/{len(todo)}] {run.label}: {status}, {seconds:.0f} s", flush=True)
            if code:
                failed.append(run)
    failed.sort(key=todo.index)
    if failed:
        print(f"{len(failed)} run(s) failed (see their logs):", *(f"  {r.label}" for r in failed), sep="\n")
    return failed
