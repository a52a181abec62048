"""The baselines' recipes: known keys only, applied by the run config, AdaLoRA's schedules fit
their runs; and the MiniLM study's composition: one protocol per task that every method gets, and
per-method settings that cannot change it."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from baselines.adalora import resolve_schedule
from harness.training import optimizer_steps
from tests.conftest import compose

CONF = Path(__file__).resolve().parent.parent / "conf"
RECIPES = CONF / "recipe"
TASKS = ["cola", "sst2", "mrpc", "qnli", "stsb", "rte", "mnli", "qqp"]
TRAIN_SIZE = {
    "cola": 8551,
    "sst2": 67349,
    "mrpc": 3668,
    "qnli": 104743,
    "stsb": 5749,
    "rte": 2490,
    "mnli": 392702,
    "qqp": 363846,
}
OURS = {"deberta-v3-base": ["lora", "adalora", "elora", "vera"]}
CASES = [(model, method, task) for model, methods in OURS.items() for method in methods for task in TASKS]


def resolved(model: str, method: str, task: str):
    """What the run config holds after the recipe (the defaults it overrides, then the recipe)."""
    recipe = OmegaConf.load(RECIPES / model / method / f"{task}.yaml")
    base = OmegaConf.create(
        {
            "train": OmegaConf.load(CONF / "train" / "default.yaml"),
            "method": OmegaConf.load(CONF / "method" / f"{method}.yaml"),
            "data": OmegaConf.load(CONF / "config.yaml").data,
        }
    )
    return base, recipe, OmegaConf.merge(base, recipe)


@pytest.mark.parametrize(("model", "method", "task"), CASES)
def test_recipe_sets_known_keys(model, method, task):
    assert (RECIPES / model / method / f"{task}.yaml").read_text().startswith("# @package _global_\n")
    base, recipe, cfg = resolved(model, method, task)
    assert set(recipe) <= {"train", "method", "data"}
    for group in recipe:  # a misspelt key would silently be a new, unused one
        assert set(recipe[group]) <= set(base[group]), (group, set(recipe[group]) - set(base[group]))

    if method == "adalora":
        n_train = min(TRAIN_SIZE[task], cfg.train.max_train_samples or TRAIN_SIZE[task])
        _, total = optimizer_steps(n_train, cfg.train, processes=1)
        tinit, tfinal = resolve_schedule(cfg.method, total)  # raises if there is no budgeting phase
        assert 0 <= tinit < total - tfinal
        if model == "deberta-v3-base":  # Table 8's steps, not fractions
            assert (cfg.method.tinit, cfg.method.tfinal) == (tinit, tfinal)


@pytest.mark.parametrize(("model", "method"), [(m, x) for m, xs in OURS.items() for x in xs])
def test_recipe_is_applied_by_the_run_config(model, method):
    _, recipe, _ = resolved(model, method, "rte")
    cfg = compose([f"model={model}", f"method={method}", "task=rte"])
    for group in recipe:
        for key, value in recipe[group].items():
            assert cfg[group][key] == value, f"{group}.{key}"


# --- the MiniLM study: conf/protocol/minilm/<task>.yaml + conf/tuning/minilm/<method>.yaml ----------

PROTOCOL, TUNING = CONF / "protocol" / "minilm", CONF / "tuning" / "minilm"
PROTOCOL_KEYS = {
    "train": {
        "epochs",
        "batch_size",
        "warmup_ratio",
        "max_train_samples",
        "train_sample_seed",
        "group_by_length",
        "max_steps",
        "lr_scheduler",
    },
    "data": {"max_seq_length"},
}
MINILM_METHODS = sorted(p.stem for p in (CONF / "method").glob("*.yaml"))


def test_every_method_has_minilm_settings_and_they_leave_the_protocol_alone():
    assert sorted(p.stem for p in TUNING.glob("*.yaml")) == MINILM_METHODS
    for path in TUNING.glob("*.yaml"):
        tuning = OmegaConf.load(path)
        train_keys = set(tuning.get("train", {}))
        assert train_keys <= set(OmegaConf.load(CONF / "train" / "default.yaml")), path.name
        assert not train_keys & PROTOCOL_KEYS["train"] and "data" not in tuning, path.name


@pytest.mark.parametrize("task", TASKS)
def test_minilm_protocol_sets_known_keys(task):
    protocol = OmegaConf.load(PROTOCOL / f"{task}.yaml")
    assert set(protocol) == set(PROTOCOL_KEYS)
    for group, keys in PROTOCOL_KEYS.items():
        assert set(protocol[group]) <= keys, (group, set(protocol[group]) - keys)


@pytest.mark.parametrize("task", ["cola", "sst2", "mrpc", "stsb", "rte"])
def test_minilm_protocol_is_shared_by_every_method(task):
    protocol = OmegaConf.load(PROTOCOL / f"{task}.yaml")
    for method in MINILM_METHODS:
        cfg = compose(["model=minilm", f"method={method}", f"task={task}"])
        for group in protocol:
            for key, value in protocol[group].items():
                assert cfg[group][key] == value, (method, f"{group}.{key}")
        if method == "adalora":  # its fractions leave a budgeting phase on this run length
            n_train = min(TRAIN_SIZE[task], cfg.train.max_train_samples or TRAIN_SIZE[task])
            _, total = optimizer_steps(n_train, cfg.train, processes=1)
            tinit, tfinal = resolve_schedule(cfg.method, total)
            assert 0 <= tinit < total - tfinal


def test_an_ablation_trains_with_aflora_settings_and_its_own_method_values():
    aflora = compose(["model=minilm", "method=aflora", "task=mrpc"])
    for variant, key, value in [
        ("aflora-nofreeze", "freezing", False),
        ("aflora-frozen", "trainable_projections", "none"),
        ("aflora-all", "trainable_projections", "all"),
    ]:
        cfg = compose(["model=minilm", f"method={variant}", "task=mrpc"])
        assert cfg.train == aflora.train and cfg.method.builder == "aflora" and cfg.method.name == variant
        assert cfg.method[key] == value and aflora.method[key] != value
        assert {k: v for k, v in cfg.method.items() if k not in ("name", "builder", key)} == {
            k: v for k, v in aflora.method.items() if k not in ("name", key)
        }
