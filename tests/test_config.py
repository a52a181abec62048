"""Every task x model x method composes, recipes land where they should, bad names are refused."""

from __future__ import annotations

import pytest

from harness.core.paths import CONF_DIR
from harness.execution.methods import method_builder
from harness.inputs.tasks import TaskSpec
from harness.report.paper import PAPER_TASKS
from tests.conftest import compose

TASKS = sorted(p.stem for p in (CONF_DIR / "task").glob("*.yaml"))
MODELS = sorted(p.stem for p in (CONF_DIR / "model").glob("*.yaml"))
METHODS = sorted(p.stem for p in (CONF_DIR / "method").glob("*.yaml"))


def test_every_paper_task_and_wnli_has_a_config():
    assert {*PAPER_TASKS, "wnli"} <= set(TASKS)
    assert {"lora", "full"} <= set(METHODS)
    assert {"minilm", "deberta-v3-base", "tiny-bert", "tiny-deberta"} <= set(MODELS)


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("task", TASKS)
def test_composes(task, model, method):
    cfg = compose([f"task={task}", f"model={model}", f"method={method}"])
    assert (cfg.task.name, cfg.model.name, cfg.method.name) == (task, model, method)
    spec = TaskSpec.from_config(cfg.task)  # validates metrics and splits
    assert spec.selection_metric in spec.metrics
    assert cfg.train.epochs > 0 and cfg.train.lr > 0
    assert len(cfg.model.target_modules) == 6


@pytest.mark.parametrize("method", METHODS)
def test_method_yaml_names_a_registered_builder(method):
    cfg = compose([f"method={method}"])
    assert callable(method_builder(cfg.method))


def test_mnli_evaluates_matched_and_mismatched():
    spec = TaskSpec.from_config(compose(["task=mnli"]).task)
    assert list(spec.eval_splits) == ["validation_matched", "validation_mismatched"]
    assert spec.metric_keys() == ["accuracy", "accuracy_mm"]


def test_debug_overrides_recipe_and_defaults():
    cfg = compose(["debug=default"])
    assert cfg.train.max_train_samples == 32 and cfg.data.max_seq_length == 64


def test_command_line_beats_debug():
    cfg = compose(["debug=default", "train.epochs=5"])
    assert cfg.train.epochs == 5


def test_head_lr_follows_lr_unless_set():
    # tiny-bert: no tuning file sets a head rate (MiniLM's adapter methods train theirs at 4e-2)
    assert compose(["model=tiny-bert", "train.lr=0.003"]).train.head_lr == 0.003
    assert compose(["model=tiny-bert", "train.lr=0.003", "train.head_lr=0.05"]).train.head_lr == 0.05
    assert compose(["model=minilm", "method=lora", "train.lr=0.003"]).train.head_lr == 0.04
