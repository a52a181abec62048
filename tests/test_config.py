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


def covering_compositions() -> list[tuple[str, str, str]]:
    """(task, model, method) triples that compose every file of conf/ in every combination it can
    meet, in a third of all the triples: conf/protocol/ is keyed by (model, task) and
    conf/tuning/ by (model, method), so a model without per-task recipes needs each task and each
    method once; conf/recipe/<model>/<method>/<task>.yaml is keyed by all three, so a model with
    recipes composes every pair of the other two (which also covers every (task, method) pair)."""
    with_recipes = [m for m in MODELS if (CONF_DIR / "recipe" / m).is_dir()] or MODELS[:1]
    triples = [(t, m, meth) for m in with_recipes for t in TASKS for meth in METHODS]
    for model in (m for m in MODELS if m not in with_recipes):
        width = max(len(TASKS), len(METHODS))
        triples += [(TASKS[i % len(TASKS)], model, METHODS[i % len(METHODS)]) for i in range(width)]
    return triples


def test_the_covering_set_meets_every_pair_of_values():
    triples = covering_compositions()
    for first, second in ((0, 1), (0, 2), (1, 2)):
        axes = (TASKS, MODELS, METHODS)
        assert {(t[first], t[second]) for t in triples} == {(a, b) for a in axes[first] for b in axes[second]}
    recipe_models = {p.name for p in (CONF_DIR / "recipe").iterdir() if p.is_dir()}
    assert recipe_models and recipe_models <= set(MODELS)  # the triples below exist
    assert {t for t in triples if t[1] in recipe_models} == {
        (t, m, meth) for m in recipe_models for t in TASKS for meth in METHODS
    }


@pytest.mark.parametrize(("task", "model", "method"), covering_compositions())
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
