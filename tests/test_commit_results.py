"""tools/commit_results.sh: a study worktree's new result.json files, with their kept predictions,
become one commit each here, and nothing else does (checkpoints, older results, what is staged)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from harness.core.paths import REPO

SCRIPT = REPO / "tools" / "commit_results.sh"
IGNORE = "runs/**\n!runs/**/\n!runs/**/result.json\n!runs/**/epoch_predictions/**\n"


IDENTITY = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}


def git(repo: Path, *args: str) -> str:
    env = {**os.environ, **IDENTITY}
    return subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True, text=True).stdout


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.mark.integration
def test_each_new_result_lands_as_its_own_commit_and_nothing_else_does(tmp_path):
    here, worktree = tmp_path / "here", tmp_path / "worktree"
    for repo in (here, worktree):
        repo.mkdir()
        git(repo, "init", "-q")
    write(here / ".gitignore", IGNORE)
    git(here, "add", ".gitignore")
    git(here, "commit", "-qm", "ignore")
    write(here / "notes.txt", "staged, not a result")
    git(here, "add", "notes.txt")

    write(worktree / "runs" / "old" / "result.json", "{}")  # landed before the worktree was pinned
    old = time.time() - 60
    os.utime(worktree / "runs" / "old" / "result.json", (old, old))
    (worktree / ".sync-start").touch()
    for run in ("a", "b"):
        write(worktree / "runs" / run / "seed1" / "result.json", f'{{"run": "{run}"}}')
        write(worktree / "runs" / run / "seed1" / "checkpoint-6" / "model.bin", "weights")
    write(worktree / "runs" / "a" / "seed1" / "epoch_predictions" / "validation" / "epoch01.npy", "p")

    env = {**os.environ, **IDENTITY}
    for _ in range(2):  # the second pass finds both committed with the same bytes: no new commit
        done = subprocess.run(
            [str(SCRIPT), str(worktree), "runs", "--once"], cwd=here, env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr

    commits = [  # newest first: [subject, *files]
        [git(here, "log", "-1", "--format=%s", c).strip(), *git(here, "show", "--name-only", "--format=", c).split()]
        for c in git(here, "rev-list", "HEAD").split()
    ]
    assert commits == [
        ["Study results: 1 result.json (b/seed1)", "runs/b/seed1/result.json"],
        [
            "Study results: 1 result.json (a/seed1)",
            "runs/a/seed1/epoch_predictions/validation/epoch01.npy",
            "runs/a/seed1/result.json",
        ],
        ["ignore", ".gitignore"],
    ]
    assert git(here, "status", "--porcelain").splitlines() == ["A  notes.txt"]  # still staged, uncommitted


@pytest.mark.integration
def test_a_worktree_not_marked_is_refused(tmp_path):
    done = subprocess.run([str(SCRIPT), str(tmp_path), "runs", "--once"], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 2 and ".sync-start is missing" in done.stderr
