"""tools/resume_across.py, the check that a change of the code changes no number, on the smallest
case it has: the commit checked out is this one, one method. Slow (four run.py processes and a
worktree, about a CPU minute): `make test-all` or `pytest -m slow tests/test_resume_across.py`."""

from __future__ import annotations

import subprocess
import sys

import pytest

from harness.core.paths import REPO


@pytest.mark.slow
@pytest.mark.integration
def test_a_run_killed_at_head_resumes_in_the_working_tree_identically(glue_dir):
    done = subprocess.run(
        [sys.executable, "-m", "tools.resume_across", "HEAD", "--methods", "aflora", "--glue", str(glue_dir)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    (line,) = done.stdout.splitlines()
    assert line.startswith("aflora: identical (4 epochs, last {'step': 24, ")
