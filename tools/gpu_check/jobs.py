"""Run commands a few at a time, in order, until a deadline; stop the rest when it comes.

The GPU check's study runs several trainings at once on one GPU (MiniLM alone is far too small to
fill it). Each command runs in its own process group with its output in its own log, so a
stopped training takes its children with it and leaves the others alone.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

STOPPED = "stopped at the time limit"
NOT_STARTED = "not started: no time left"
GRACE_SECONDS = 5.0  # between SIGTERM and SIGKILL


@dataclass
class Job:
    name: str
    argv: list[str]
    log: Path
    env: dict[str, str] | None = None
    cwd: Path | None = None
    outcome: str = NOT_STARTED  # "exit 0", "exit 1", STOPPED or NOT_STARTED
    seconds: float | None = None
    _process: subprocess.Popen | None = field(default=None, repr=False)
    _started: float = 0.0

    def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("wb") as out:  # the child keeps its own copy of the descriptor
            self._process = subprocess.Popen(
                self.argv, cwd=self.cwd, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        self._started = time.monotonic()

    def poll(self) -> bool:
        """Whether the job has ended (and its outcome is recorded)."""
        assert self._process is not None
        code = self._process.poll()
        if code is None:
            return False
        self.outcome, self.seconds = f"exit {code}", time.monotonic() - self._started
        return True

    def stop(self) -> None:
        """SIGTERM to the job's process group, SIGKILL after a grace period."""
        assert self._process is not None
        for sig, wait in ((signal.SIGTERM, GRACE_SECONDS), (signal.SIGKILL, None)):
            try:
                os.killpg(self._process.pid, sig)
            except ProcessLookupError:
                break
            try:
                self._process.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
        self.outcome, self.seconds = STOPPED, time.monotonic() - self._started


def run_pool(jobs: list[Job], workers: int, deadline: float, poll_seconds: float = 0.5) -> list[Job]:
    """Run ``jobs`` in order, at most ``workers`` at once, until ``deadline`` (``time.monotonic``).

    At the deadline the running jobs are stopped and the rest never start. Returns ``jobs`` with
    each one's outcome and seconds."""
    waiting, running = list(jobs), []
    while waiting or running:
        running = [job for job in running if not job.poll()]
        if time.monotonic() >= deadline:
            for job in running:
                job.stop()
            break
        while waiting and len(running) < workers:
            job = waiting.pop(0)
            job.start()
            running.append(job)
        time.sleep(poll_seconds)
    return jobs
