"""The GPU check's dry run for tests/test_gpu_check.py, started in the background as soon as
collection shows a test needs it (``pytest_collection_finish`` in conftest.py).

The dry run is a few minutes of one process that mostly waits on its own subprocesses (run.py,
the bench, the report): started first, it runs on the second core while the rest of the suite runs
on the first, instead of after it. Its output goes to files: a pipe nobody reads would fill and
stall it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from harness.core.paths import REPO
from tests.glue_fixture import write_glue

TIMEOUT_S = 900
_running: dict[str, object] = {}


def start() -> None:
    """Start ``python -m tools.gpu_check --dry-run`` once, as `make gpu-check DRY_RUN=1 GLUE_DIR=...`
    starts it on a fresh clone: GLUE_DIR alone, no --glue, nothing carried (tests/test_makefile.py
    checks the recipe)."""
    if _running:
        return
    work = Path(tempfile.mkdtemp(prefix="gpu-check-dry-run-"))
    env = {**os.environ, "GLUE_DIR": str(write_glue(work / "glue"))}
    command = [sys.executable, "-m", "tools.gpu_check", "--dry-run", "--carry", str(work / "no-carry")]
    command += ["--work", str(work), "--bundle", str(work / "bundle.tgz")]
    with (work / "stdout.txt").open("w") as out, (work / "stderr.txt").open("w") as err:
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=out, stderr=err, text=True)
    _running.update(work=work, process=process, command=command)


def result() -> tuple[Path, subprocess.CompletedProcess]:
    """The dry run's folder and its completed process, waiting for it (starting it if need be)."""
    start()
    work, process = _running["work"], _running["process"]
    returncode = process.wait(timeout=TIMEOUT_S)
    stdout, stderr = ((work / name).read_text() for name in ("stdout.txt", "stderr.txt"))
    return work, subprocess.CompletedProcess(_running["command"], returncode, stdout, stderr)


def stop() -> None:
    """At the session's end: kill a dry run still going (an interrupted session) and remove its folder."""
    if not _running:
        return
    process = _running["process"]
    if process.poll() is None:
        process.kill()
        process.wait()
    shutil.rmtree(_running["work"], ignore_errors=True)
    _running.clear()
