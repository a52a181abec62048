"""The GPU check's dry run for tests/test_gpu_check.py, started in the background as soon as
collection shows a test needs it (``pytest_collection_finish`` in conftest.py).

The dry run is a few minutes of one process that mostly waits on its own subprocesses (run.py,
the bench, the report): started first, it runs beside the rest of the suite instead of after it
(started by the fixture, it would keep the worker that runs its tests idle for those minutes).
Its output goes to files: a pipe nobody reads would fill and stall it.

Under pytest-xdist (``make test`` runs two workers) every worker collects every test but runs only
some, and which worker runs the dry run's tests is decided after collection. So the dry run is not
owned by one process's memory but by a folder every process of the session knows (``FOLDER_ENV``,
set by the session's first process, the xdist controller or the only one, before any worker starts):

- started once: the first process to create the folder starts it (``mkdir`` is atomic: a second
  worker finds the folder there and starts nothing);
- visible to any worker: a small shell wrapper writes the dry run's exit status to ``returncode``
  when it ends, so the worker that runs the tests waits on that file, not on a child it may not have;
- never leaked: the dry run runs in a session of its own, apart from the worker that started it (a
  worker may finish and exit while another still waits on the dry run), and the session's first
  process, which ends after every worker, kills what is left of it and removes the folder.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from harness.core.paths import REPO
from tests.glue_fixture import write_glue

TIMEOUT_S = 900
FOLDER_ENV = "TESTS_GPU_DRY_RUN_FOLDER"
# "$1" "$2" "$3": stdout, stderr, exit status; then the command. The status is written whole (a rename).
WRAPPER = 'out=$1 err=$2 rc=$3; shift 3; "$@" >"$out" 2>"$err"; echo $? >"$rc.part"; mv "$rc.part" "$rc"'
_started: dict[str, object] = {}  # in the process that started it: its Popen (reaped at the end)


def name_folder() -> None:
    """In the session's first process, before any worker starts (they inherit the environment): where
    this session's dry run will be. Nothing is created: ``start`` creates it, once."""
    os.environ[FOLDER_ENV] = str(Path(tempfile.gettempdir()) / f"gpu-check-dry-run-{uuid.uuid4().hex[:12]}")


def _folder() -> Path:
    if FOLDER_ENV not in os.environ:  # this module used outside the suite's conftest.py
        name_folder()
    return Path(os.environ[FOLDER_ENV])


def start() -> None:
    """Start ``python -m tools.gpu_check --dry-run`` unless this session's dry run has been started, as
    `make gpu-check DRY_RUN=1 GLUE_DIR=...` starts it on a fresh clone: GLUE_DIR alone, no --glue,
    nothing carried (tests/test_makefile.py checks the recipe)."""
    work = _folder()
    try:
        work.mkdir()
    except FileExistsError:  # started by this process or another of the session
        return
    try:
        env = {**os.environ, "GLUE_DIR": str(write_glue(work / "glue"))}
        command = _command(work)
        files = [str(work / name) for name in ("stdout.txt", "stderr.txt", "returncode")]
        wrapped = ["sh", "-c", WRAPPER, "sh", *files, *command]
        _started["process"] = process = subprocess.Popen(wrapped, cwd=REPO, env=env, start_new_session=True)
        (work / "command.part").write_text("\0".join(command))
        (work / "command.part").rename(work / "command")
        (work / "pid.part").write_text(str(process.pid))
        (work / "pid.part").rename(work / "pid")  # last: a waiting worker reads the others once this is there
    except BaseException as error:  # a worker waiting on the folder must not wait out TIMEOUT_S for nothing
        (work / "failed").write_text(f"{type(error).__name__}: {error}")
        raise


def _command(work: Path) -> list[str]:
    command = [sys.executable, "-m", "tools.gpu_check", "--dry-run", "--carry", str(work / "no-carry")]
    return command + ["--work", str(work), "--bundle", str(work / "bundle.tgz")]


def _gone(pid: int) -> bool:
    """Whether ``pid`` has exited (a zombie not yet reaped by the worker that started it counts)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] in "ZX"
    except FileNotFoundError:
        return True
    except OSError:  # no /proc: ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False


def result() -> tuple[Path, subprocess.CompletedProcess]:
    """The dry run's folder and its completed process, waiting for it (starting it if need be)."""
    start()
    work, deadline = _folder(), time.monotonic() + TIMEOUT_S
    while not (work / "returncode").exists():
        if (work / "failed").exists():
            raise RuntimeError(f"the GPU check's dry run did not start: {(work / 'failed').read_text()}")
        pid = work / "pid"
        if pid.exists() and _gone(int(pid.read_text())) and not (work / "returncode").exists():
            raise RuntimeError(f"the GPU check's dry run in {work} ended without an exit status (killed?)")
        if time.monotonic() > deadline:
            raise TimeoutError(f"the GPU check's dry run in {work} ran over {TIMEOUT_S} s")
        time.sleep(0.5)
    command = (work / "command").read_text().split("\0")
    stdout, stderr = ((work / name).read_text() for name in ("stdout.txt", "stderr.txt"))
    return work, subprocess.CompletedProcess(command, int((work / "returncode").read_text()), stdout, stderr)


def reap() -> None:
    """At a worker's end: collect the exit of a dry run this process started, if it has ended, and
    leave it running otherwise (another worker may still be waiting on it)."""
    if (process := _started.get("process")) is not None:
        process.poll()


def stop() -> None:
    """At the session's end, in its first process (after every worker has ended): kill the dry run if
    it is still going (an interrupted session) and remove its folder."""
    work = _folder()
    if (work / "pid").exists() and not (work / "returncode").exists():
        pid = int((work / "pid").read_text())
        try:
            os.killpg(pid, signal.SIGKILL)  # its own session: the wrapper and the dry run it started
        except ProcessLookupError:
            pass
        if (process := _started.pop("process", None)) is not None:
            process.wait()
        deadline = time.monotonic() + 30
        while not _gone(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
    elif (process := _started.pop("process", None)) is not None:
        process.wait()
    shutil.rmtree(work, ignore_errors=True)
