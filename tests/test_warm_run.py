"""tests/warm_run.py: a run forked from the starter is a process of its own; a starter that runs a
thread (a fork would not copy it) is not forked, and each run starts a fresh interpreter instead."""

from __future__ import annotations

import os

import pytest

from tests import warm_run

WHO = "import os; open({path!r}, 'w').write(f'{{os.getpid()}} {{os.getppid()}}')"


@pytest.mark.integration
def test_a_run_is_a_child_of_the_starter_with_the_exit_status_run_py_gives(tmp_path):
    starter = warm_run.Starter()
    try:
        done = starter.run(["task=rtee"], None, prelude=WHO.format(path=str(tmp_path / "who")))
        pid, parent = map(int, (tmp_path / "who").read_text().split())
        assert parent == starter._process.pid and pid not in (os.getpid(), parent)
        assert done.returncode != 0 and "rtee" in done.stdout + done.stderr  # run.py's own refusal
    finally:
        starter.close()


@pytest.mark.integration
def test_a_starter_running_a_thread_falls_back_to_a_fresh_interpreter(tmp_path, monkeypatch):
    monkeypatch.setattr(warm_run, "PRELOAD", (*warm_run.PRELOAD, "tests.thread_at_import"))
    starter = warm_run.Starter()
    with pytest.warns(UserWarning, match="runs threads"):
        done = starter.run(["task=rtee"], None, prelude=WHO.format(path=str(tmp_path / "who")))
    pid, parent = map(int, (tmp_path / "who").read_text().split())
    assert starter.unsafe and starter._process is None
    assert parent == os.getpid()  # started by this process, not forked from the starter
    assert done.returncode != 0 and "rtee" in done.stdout + done.stderr
