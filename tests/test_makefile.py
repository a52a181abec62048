"""The Makefile's recipes as ``make -n`` prints them (nothing runs): the commands the README's make
targets start, with the variables a user sets."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess

import pytest

from harness.core.paths import REPO

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="no make on this machine")


def recipe(target: str, *variables: str) -> list[list[str]]:
    """The commands ``make <target>`` would run (``setup``'s too, when .venv is older), as words, with
    only ``variables`` set: none of the Makefile's variables from the shell running the tests (its
    GLUE_DIR), nor from a ``make test GLUE_DIR=... PYTEST_ARGS=...`` running them (make exports those too)."""
    makefile = (REPO / "Makefile").read_text()
    inherited = {*re.findall(r"^([A-Z_]+) *[?:]?=", makefile, re.M), "GLUE_DIR", "MAKEFLAGS", "MFLAGS", "MAKELEVEL"}
    done = subprocess.run(
        ["make", "--no-print-directory", "-n", target, *variables],
        cwd=REPO,
        env={k: v for k, v in os.environ.items() if k not in inherited},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    lines = done.stdout.replace("\\\n", "").splitlines()  # a backslash-newline continues the line, as in sh
    return [shlex.split(line) for line in lines if line.strip()]


def command_of(target: str, program: str, *variables: str) -> list[str]:
    """The one command of ``make <target>`` that starts ``program`` (run.py, harness.sweep, ...)."""
    (words,) = [w for w in recipe(target, *variables) if program in w]
    return words


@pytest.mark.integration  # each test starts make
def test_gpu_check_dry_run_takes_glue_dir_from_the_environment_alone():
    # No --glue: the check must find GLUE_DIR itself (tests/test_gpu_check.py's dry run starts it so).
    words = command_of("gpu-check", "tools.gpu_check", "DRY_RUN=1", "GLUE_DIR=../shared/glue")
    assert words == ["HF_HUB_OFFLINE=1", ".venv/bin/python", "-m", "tools.gpu_check", "--dry-run"] + [
        "--carry",
        ".gpu-carry",
    ]


@pytest.mark.integration
@pytest.mark.parametrize(
    ("target", "program"), [("glue", "harness.sweep"), ("demo", "run.py"), ("study", "harness.study")]
)
def test_a_local_glue_copy_keeps_every_run_off_the_hub(target, program):
    assert "HF_HUB_OFFLINE=1" in command_of(target, program, "GLUE_DIR=../shared/glue")
    assert "HF_HUB_OFFLINE=1" not in command_of(target, program)  # without a local copy the data come from the hub


@pytest.mark.integration
def test_paper_tables_only_print():
    words = command_of("paper-tables", "harness.report")
    assert "--paper" in words and not {"--out", "--readme", "--grid"} & set(words)


@pytest.mark.integration
@pytest.mark.parametrize("target", ["test", "test-fast", "test-all"])
def test_the_test_targets_run_on_two_workers_or_in_one_process_when_told(target):
    words = command_of(target, "pytest")
    at = words.index("-n")
    assert words[at : at + 4] == ["-n", "2", "--dist", "loadfile"]  # a file's tests (its module fixtures) on one
    words = command_of(target, "pytest", "TEST_WORKERS=0", "PYTEST_ARGS=--pdb -x")  # pdb needs one process
    assert words[words.index("-n") + 1] == "0" and "--pdb" in words
