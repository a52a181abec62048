"""Many ``run.py`` runs on this machine, N at a time, each with cores / N torch threads.

Every torch process starts one thread per core by default, so two trainings at once on a 2-core
machine would each run on 2 threads and slow each other down (measured: each step 2.3x slower
than with one thread each). Here each of the N jobs gets ``train.threads = cores // N``. Runs start
in list order and are reported as they end; each one's output goes to ``<logs>/<run>.log``.

The runs may be a function instead of a list: the pool asks it again each time a run ends, and a
run it lists then for the first time joins the queue at its place in that listing, so it starts
before the runs listed after it. A learning-rate grid that grows past an edge (harness/study.py) is
one: a rate its finished runs call for starts at once, beside a long run of another method, instead
of after it. A table stage whose first seed decides its later seeds' rates is another. A queued run
the function no longer lists is dropped before it starts (a grid's run that a collapse made moot);
a running one finishes.

Ctrl-C (or SIGTERM, SIGHUP) stops the pool: no queued run starts, each running one gets one SIGINT
and stops as ``run.py`` does on its own (its log says what it kept), and the pool exits 130 with one
line; a second Ctrl-C kills the runs that have not stopped yet. Each run has its own process group,
so a terminal's Ctrl-C reaches the runs only through the pool, exactly once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from harness.core.errors import INTERRUPTED
from harness.core.paths import REPO, RUN_PY
from harness.studies.finished_runs import is_finished

POLL_SECONDS = 0.5  # how often the pool looks for ended runs; a training run lasts minutes
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

RunSource = Sequence["Run"] | Callable[[], Sequence["Run"]]  # the runs, or a function that lists them as things stand


@dataclass(frozen=True)
class Run:
    overrides: tuple[str, ...]  # run.py's command line, e.g. ("task=rte", "model=minilm", ...)

    def value(self, key: str) -> str | None:
        """The value this run sets for ``key`` on its command line (None when it sets none)."""
        return next((o.split("=", 1)[1] for o in self.overrides if o.startswith(f"{key}=")), None)

    def with_value(self, key: str, value: object) -> Run:
        """This run's command line with ``key`` set to ``value`` where it sets ``key``."""
        return Run(tuple(f"{key}={value}" if o.startswith(f"{key}=") else o for o in self.overrides))

    @property
    def label(self) -> str:
        return "_".join(o.split("=", 1)[1].replace("/", "-") for o in self.overrides)


@dataclass
class _Started:
    process: subprocess.Popen
    start: float


def threads_per_job(jobs: int, cores: int | None = None) -> int:
    return max((cores or os.cpu_count() or 1) // jobs, 1)


def _overrides(run: Run, threads: int) -> list[str]:
    return [*run.overrides, f"train.threads={threads}"]


def _start(run: Run, threads: int, logs: Path) -> _Started:
    command = [sys.executable, str(RUN_PY), *_overrides(run, threads)]
    with open(logs / f"{run.label}.log", "a") as log:
        log.write(f"$ {' '.join(command[1:])}\n")
        log.flush()
        process = subprocess.Popen(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    return _Started(process, time.monotonic())


def plan_line(total: int, todo: int, jobs: int, threads: int, logs: Path) -> str:
    """What a (re)started pool is about to do, in one line."""
    if todo == 0:
        return f"{total} runs, all finished earlier: nothing to run."
    thread_s = "thread" if threads == 1 else "threads"
    return (
        f"{total} runs, {total - todo} finished earlier; running the other {todo}, {jobs} at a time "
        f"with {threads} {thread_s} each; logs in {logs}/"
    )


class _StopRequests:
    """Ctrl-C, SIGTERM and SIGHUP while the pool runs, counted. The handler only counts, so no signal
    can fall between starting a run and keeping its process."""

    def __init__(self) -> None:
        self.count, self.event = 0, threading.Event()

    def __call__(self, *_: object) -> None:
        self.count += 1
        self.event.set()


@contextmanager
def _stop_requests() -> Iterator[_StopRequests]:
    requests = _StopRequests()
    previous = {sig: signal.signal(sig, requests) for sig in STOP_SIGNALS}
    try:
        yield requests
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _signal_each(running: list[_Started], sig: signal.Signals) -> None:
    for started in running:
        try:
            os.killpg(started.process.pid, sig)
        except ProcessLookupError:  # it ended in between
            pass


def _interrupt(running: dict[Run, _Started], not_started: int, requests: _StopRequests) -> None:
    """Ctrl-C's way out: one SIGINT to each running run, wait for them, one line, exit 130. A second
    Ctrl-C while they stop kills those still running (SIGKILL; their last checkpoint is kept)."""
    _signal_each(list(running.values()), signal.SIGINT)
    presses, killed = requests.count, []
    while alive := [s for s in running.values() if s.process.poll() is None]:
        if requests.count > presses and not killed:
            killed = alive
            _signal_each(killed, signal.SIGKILL)
        requests.event.clear()
        requests.event.wait(POLL_SECONDS)
    how = f", {len(killed)} killed by a second Ctrl-C" if killed else ""
    print(
        f"interrupted: stopped {len(running)} running run(s){how} (each log says what it kept), {not_started} not "
        "started; rerun the same command to resume",
        file=sys.stderr,
        flush=True,
    )
    raise SystemExit(INTERRUPTED)


def run_all(runs: RunSource, jobs: int, logs: Path, threads: int | None = None) -> list[Run]:
    """Run everything not finished yet, ``jobs`` at a time in list order, each with ``threads`` torch
    threads (default: its share of the cores); list and return the runs that failed. A finished run
    (harness/studies/finished_runs.py) is stepped over here, without starting run.py for it. With a
    function for ``runs``, it is asked again as each run ends, and the runs it adds join the queue
    (the module's docstring). Ctrl-C: see the module's docstring (SystemExit 130)."""
    logs.mkdir(parents=True, exist_ok=True)
    threads = threads or threads_per_job(jobs)
    listed: set[Run] = set()  # every run the source has listed so far: each is judged and started once
    todo: list[Run] = []  # the runs to start, in the order they were listed

    order: dict[Run, int] = {}  # each run's place in the source's latest listing

    def newly_listed() -> tuple[list[Run], list[Run]]:
        """The runs the source lists for the first time, and those of them not finished yet."""
        latest = list(runs() if callable(runs) else runs)
        order.clear()
        order.update((run, place) for place, run in enumerate(latest))
        new = [run for run in latest if run not in listed]
        listed.update(new)
        return new, [run for run in new if not is_finished(_overrides(run, threads))]  # here: Hydra's state is global

    new, queue = newly_listed()
    todo += queue
    print(plan_line(len(new), len(queue), jobs, threads, logs), flush=True)
    failed, running, done = [], {}, 0
    with _stop_requests() as requests:
        while queue or running:
            if requests.count:
                _interrupt(running, len(queue), requests)
            while queue and len(running) < jobs and not requests.count:
                run = queue.pop(0)
                running[run] = _start(run, threads, logs)
            # Reported as each one ends: a short run's line should not wait behind a long one's.
            for run in [r for r, s in running.items() if s.process.poll() is not None]:
                started, done = running.pop(run), done + 1
                code = started.process.returncode
                status = "ok" if code == 0 else f"FAILED (exit {code})"
                print(
                    f"[{done}/{len(todo)}] {run.label}: {status}, {time.monotonic() - started.start:.0f} s", flush=True
                )
                if code:
                    failed.append(run)
                if not callable(runs):
                    continue
                added = newly_listed()[1]
                if dropped := [r for r in queue if r not in order]:
                    todo = [r for r in todo if r not in dropped]
                    print(
                        f"the finished runs make {len(dropped)} moot: {', '.join(r.label for r in dropped)}", flush=True
                    )
                if added:
                    todo += added
                    print(
                        f"the finished runs call for {len(added)} more: {', '.join(r.label for r in added)}", flush=True
                    )
                queue = sorted((r for r in queue + added if r in order), key=order.__getitem__)  # seed 2 before 3
            if running:
                requests.event.wait(POLL_SECONDS)
    failed.sort(key=todo.index)
    if failed:
        print(f"{len(failed)} run(s) failed (see their logs):", *(f"  {r.label}" for r in failed), sep="\n")
    return failed
