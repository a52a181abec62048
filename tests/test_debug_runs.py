"""A debug run on tiny fixture data completes and is complete: every method on one task, and every
task config on one method (a method's code does not depend on the task, nor a task's on the method)."""

from __future__ import annotations

import json

import pytest

from harness.core.paths import CONF_DIR
from harness.execution import lifecycle
from harness.inputs.tasks import TaskSpec
from tests.conftest import compose

TASKS = sorted(p.stem for p in (CONF_DIR / "task").glob("*.yaml"))
METHODS = sorted(p.stem for p in (CONF_DIR / "method").glob("*.yaml"))
# STS-B: regression, two text fields, two metrics; lora: a plain PEFT method.
METHOD_TASK, TASK_METHOD = "stsb", "lora"
COVERING = sorted({(METHOD_TASK, m) for m in METHODS} | {(t, TASK_METHOD) for t in TASKS})


@pytest.mark.parametrize(("task", "method"), COVERING)
def test_debug_run_completes(tmp_path, glue_dir, task, method):
    cfg = compose(
        [
            f"task={task}",
            f"method={method}",
            "model=tiny-bert",
            "debug=default",
            f"data.dir={glue_dir}",
            "train.logging_steps=4",
        ]
    )
    assert lifecycle.run(cfg, tmp_path) == 0
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["status"] == "completed", result["error"]
    assert [r["epoch"] for r in result["metrics"]["per_epoch"]] == [1, 2]
    spec = TaskSpec.from_config(cfg.task)
    best = result["metrics"]["best"]
    assert all(best[key] is not None for key in spec.metric_keys())  # e.g. MNLI's accuracy_mm, STS-B's spearmanr
    params = result["params"]
    assert params["trainable_end"] <= params["trainable_avg"] <= params["trainable_start"]
    assert 0 < params["head"] < params["total"]
