"""tests/gpu_dry_run.py under pytest-xdist: the dry run starts once per session whichever workers
ask, any worker reads its outcome from the folder, and the session's end kills what is left of it.
A stand-in command replaces the GPU check (the real one runs in tests/test_gpu_check.py)."""

from __future__ import annotations

import pytest

from tests import gpu_dry_run
from tests.conftest import wait_for


@pytest.fixture
def stand_in(tmp_path, monkeypatch):
    """A session of its own, whose dry run is ``sh -c <script>``; the real dry run's process, if this
    worker started it, stays out of the way. Yields the function that sets the script."""
    monkeypatch.setenv(gpu_dry_run.FOLDER_ENV, str(tmp_path / "dry-run"))
    monkeypatch.setattr(gpu_dry_run, "_started", {})
    started = gpu_dry_run._started
    yield lambda script: monkeypatch.setattr(gpu_dry_run, "_command", lambda work: ["sh", "-c", script])
    if (process := started.get("process")) is not None:  # reap it: another worker's view forgot it
        process.kill()
        process.wait()


def other_worker(monkeypatch) -> None:
    """What another process of the session knows: the folder, not the process this one started."""
    monkeypatch.setattr(gpu_dry_run, "_started", {})


@pytest.mark.integration
def test_started_once_and_read_by_any_worker(stand_in, tmp_path, monkeypatch):
    starts = tmp_path / "starts"
    stand_in(f"echo started >> {starts}; echo out; echo err >&2; exit 3")
    gpu_dry_run.start()
    other_worker(monkeypatch)
    gpu_dry_run.start()  # a second worker whose collection needs it too: nothing more starts
    work, done = gpu_dry_run.result()  # waits on the folder, not on a child of its own
    assert work == tmp_path / "dry-run"
    assert (done.returncode, done.stdout, done.stderr) == (3, "out\n", "err\n")
    assert starts.read_text() == "started\n"
    gpu_dry_run.stop()
    assert not work.exists()


@pytest.mark.integration
def test_the_session_end_kills_a_dry_run_still_going(stand_in, tmp_path, monkeypatch):
    child = tmp_path / "child"
    stand_in(f"sleep 60 & echo $! > {child}.part; mv {child}.part {child}; wait")
    gpu_dry_run.start()
    work = tmp_path / "dry-run"
    wait_for(child.exists, seconds=60)
    wrapper = int((work / "pid").read_text())
    other_worker(monkeypatch)  # the controller stops it, though a worker started it
    gpu_dry_run.stop()
    assert not work.exists()
    assert gpu_dry_run._gone(wrapper) and gpu_dry_run._gone(int(child.read_text()))  # and what it started
