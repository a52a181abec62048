"""``python run.py --help``: the main keys each with a description, and only the groups a user picks."""

from __future__ import annotations

import re

import pytest

from harness.core.paths import CONF_DIR
from tests.conftest import run_cli

MAIN_KEYS = ("train.epochs", "train.lr", "train.batch_size", "model.path", "data.dir", "runs_dir", "force")


@pytest.mark.integration
def test_help_describes_the_main_keys_and_offers_only_the_groups_a_user_chooses():
    done = run_cli(["--help"], None, timeout=120)
    assert done.returncode == 0, done.stderr
    overview = done.stdout.split("== This run's config", 1)[0]
    for group in ("task", "model", "method"):
        (line,) = [line for line in overview.splitlines() if line.startswith(f"{group}=NAME")]
        for option in (p.stem for p in (CONF_DIR / group).glob("*.yaml")):
            assert re.search(rf"[ ,]{re.escape(option)}(,|$)", line), (group, option)
    for key in MAIN_KEYS:
        (line,) = [line for line in overview.splitlines() if line.split(" ", 1)[0] == key]
        assert len(line.split()) >= 4, f"{key} has no description: {line!r}"
    # Selected by the harness from the model, method and task: never offered as a choice.
    assert not re.search(r"^(recipe|protocol|tuning|study)\b", overview, re.MULTILINE)
    assert "$CONFIG" not in done.stdout and "train:" in done.stdout  # the composed config follows
