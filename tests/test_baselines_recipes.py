"""The baselines' recipes: known keys only, applied by the run config, AdaLoRA's schedules fit
their runs, and the MiniLM CPU protocol gives every method the same epochs, batch and data."""

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
OURS = {"deberta-v3-base": ["lora", "adalora", "elora", "vera"], "minilm": ["full", "lora", "adalora", "elora", "vera"]}
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


SHARED = ["epochs", "batch_size", "max_steps", "max_train_samples", "warmup_ratio", "lr_scheduler"]


@pytest.mark.parametrize("task", TASKS)
def test_minilm_protocol_is_shared_by_every_method(task):
    methods = sorted(p.name for p in (RECIPES / "minilm").iterdir() if (p / f"{task}.yaml").exists())
    assert set(OURS["minilm"]) <= set(methods)
    seen = {}
    for method in methods:  # every method with a MiniLM recipe, AFLoRA's included
        _, _, cfg = resolved("minilm", method, task)
        seen[method] = (*(cfg.train[key] for key in SHARED), cfg.data.max_seq_length)
    assert len(set(seen.values())) == 1, seen
