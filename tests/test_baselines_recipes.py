"""The recipes: the DeBERTaV3-base recipes compose to the values of the tables they come from
(docs/method.md: the AFLoRA reference code's recipe and the AdaLoRA paper's Table 8), set known keys
only, and AdaLoRA's schedules fit their runs; and the MiniLM study's composition: one protocol per
task that every method gets, and per-method settings that cannot change it."""

from __future__ import annotations

import functools

import pytest
from omegaconf import OmegaConf

from baselines.adalora import resolve_schedule
from harness.core.paths import CONF_DIR, REPO
from harness.execution.methods import method_settings
from harness.execution.training import optimizer_steps
from harness.report.paper import PAPER_TASKS, task_title
from tests.conftest import compose
from tests.tiny_models import tiny_ctx

RECIPES = CONF_DIR / "recipe"
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

# --- DeBERTaV3-base: conf/recipe/deberta-v3-base/<method>/<task>.yaml, composed of the settings a
# family of methods shares on a task (conf/recipe/deberta-v3-base/_shared/<source>/<task>.yaml) and
# the method's own ------------------------------------------------------------------------------------

DEBERTA = "deberta-v3-base"
REFERENCE_CODE = ["aflora", "elora", "vera"]  # docs/method.md, "Training recipe"
ADALORA_TABLE8 = ["adalora", "lora"]  # docs/method.md, "Baselines"
RECIPE_FILES = sorted(p.relative_to(RECIPES).with_suffix("").as_posix() for p in RECIPES.rglob("*.yaml"))


@functools.cache
def doc_table(header: str) -> dict[str, dict[str, str]]:
    """docs/method.md's table whose header row starts with ``header``: {task: {column: cell}}."""
    lines = (REPO / "docs" / "method.md").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))

    def cells(line: str) -> list[str]:
        return [c.strip() for c in line.strip().strip("|").split("|")]

    task_of = {task_title(t): t for t in PAPER_TASKS}
    rows = {}
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        row = dict(zip(cells(lines[start]), cells(line), strict=True))
        rows[task_of[row["task"]]] = row
    assert sorted(rows) == sorted(PAPER_TASKS), header
    return rows


def deberta(method: str, task: str, *extra: str):
    return compose([f"model={DEBERTA}", f"method={method}", f"task={task}", *extra])


@pytest.mark.parametrize("recipe", RECIPE_FILES)
def test_recipe_sets_known_keys(recipe):
    text = (RECIPES / f"{recipe}.yaml").read_text()
    assert text.startswith("# @package _global_\n")
    parts = OmegaConf.load(RECIPES / f"{recipe}.yaml")
    assert set(parts) <= {"defaults", "train", "method", "data"}
    if "/_shared/" in recipe:  # checked through the recipes that include it
        assert "defaults" not in parts
        return
    model, method, task = recipe.split("/")
    *shared, last = parts.get("defaults", ["_self_"])
    assert last == "_self_"  # the recipe's own values win over its shared parts
    for entry in shared:  # a task's recipe takes that task's shared settings
        assert entry.startswith(f"/recipe/{model}/_shared/") and entry.endswith(f"/{task}"), entry
    # A misspelt train or data key is refused while composing (harness/config/schema.py), a misspelt
    # method key by the method's settings: it cannot silently be a new, unused one.
    cfg = compose([f"model={model}", f"method={method}", f"task={task}"])
    method_settings(cfg.method)
    written = OmegaConf.merge(*(OmegaConf.load(RECIPES / f"{e.removeprefix('/recipe/')}.yaml") for e in shared), parts)
    written.pop("defaults", None)
    for key, value in flat(OmegaConf.to_container(written)).items():  # every value lands in the run's config
        assert OmegaConf.select(cfg, key) == value, key


def flat(values: dict, prefix: str = "") -> dict[str, object]:
    """{"train": {"lr": 0.01}} -> {"train.lr": 0.01}"""
    out = {}
    for key, value in values.items():
        out |= flat(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value}
    return out


def test_every_shared_part_is_some_recipe_s():
    shared = {r for r in RECIPE_FILES if "/_shared/" in r}
    used = {
        entry.removeprefix("/recipe/")
        for r in RECIPE_FILES
        for entry in OmegaConf.load(RECIPES / f"{r}.yaml").get("defaults", [])
        if entry != "_self_"
    }
    assert shared and used == shared


@pytest.mark.parametrize("task", PAPER_TASKS)
@pytest.mark.parametrize("method", REFERENCE_CODE)
def test_reference_code_recipe_matches_its_table(method, task):
    row = doc_table("| task | batch | epochs | lr (adapters) |")[task]
    cfg = deberta(method, task)
    train = cfg.train
    assert (train.batch_size, train.epochs) == (int(row["batch"]), int(row["epochs"]))
    assert (train.lr, train.head_lr) == (float(row["lr (adapters)"]), float(row["lr (classifier)"]))
    # The text above the table: linear schedule, 6 % warm-up, weight decay 0.1 (the classifier's weight
    # too), clipping at 0.1, fp32, 256 tokens; "The optimizer": transformers 4.31's AdamW.
    assert (train.lr_scheduler, train.warmup_ratio, train.weight_decay, train.head_weight_decay) == (
        "linear",
        0.06,
        0.1,
        0.1,
    )
    assert (train.max_grad_norm, train.precision, cfg.data.max_seq_length) == (0.1, "fp32", 256)
    assert train.optimizer == "adamw_reference"
    assert train.per_device_batch_size == (64 if train.batch_size == 256 else None)  # the reference's 4 GPUs x 64
    if method == "aflora":
        settings = method_settings(cfg.method)
        assert (settings.warmup.unit, settings.final.unit) == ("epochs", "epochs")
        assert f"{settings.warmup.number} / {settings.final.number}" == row["t_i / t_f (epochs)"]
        assert cfg.method.r == 4  # not the reference MNLI/QQP scripts' 1024
    else:
        assert cfg.method.r == 1024


@pytest.mark.parametrize("task", PAPER_TASKS)
@pytest.mark.parametrize("method", ADALORA_TABLE8)
def test_adalora_table8_recipe_matches_its_table(method, task):
    row = doc_table("| task | lr | epochs | γ (orthogonality) |")[task]
    cfg = deberta(method, task)
    train = cfg.train
    assert (train.lr, train.epochs, train.batch_size) == (float(row["lr"]), int(row["epochs"]), 32)
    # One learning rate and weight decay for adapters and classifier; torch's AdamW (docs/method.md,
    # "The optimizer": only the AFLoRA code's recipes take the reference's).
    assert (train.head_lr, train.head_weight_decay) == (train.lr, train.weight_decay)
    assert (train.optimizer, train.max_grad_norm, train.per_device_batch_size) == ("adamw_torch", 1.0, None)
    if method == "adalora":
        steps = (float(row["γ (orthogonality)"]), f"{row['t_i']} steps", int(row["ΔT"]), f"{row['t_f']} steps")
        assert (cfg.method.orth_reg_weight, cfg.method.tinit, cfg.method.deltaT, cfg.method.tfinal) == steps
        # Table 8's steps, not fractions, and they leave a budgeting phase on the task's full run.
        per_epoch, total = optimizer_steps(TRAIN_SIZE[task], cfg.train, processes=1)
        tinit, tfinal = resolve_schedule(
            method_settings(cfg.method), tiny_ctx(total, per_epoch)
        )  # raises if no budgeting phase
        assert (tinit, tfinal) == (int(row["t_i"]), int(row["t_f"])) and 0 <= tinit < total - tfinal
    else:
        assert (cfg.method.r, cfg.method.alpha) == (8, 16)


# --- the MiniLM study: conf/protocol/minilm/<task>.yaml + conf/tuning/minilm/<method>.yaml ----------

PROTOCOL, TUNING = CONF_DIR / "protocol" / "minilm", CONF_DIR / "tuning" / "minilm"
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
MINILM_METHODS = sorted(p.stem for p in (CONF_DIR / "method").glob("*.yaml"))


def test_every_method_has_minilm_settings_and_they_leave_the_protocol_alone():
    assert sorted(p.stem for p in TUNING.glob("*.yaml")) == MINILM_METHODS
    for path in TUNING.glob("*.yaml"):
        tuning = OmegaConf.load(path)
        train_keys = set(tuning.get("train", {}))
        assert train_keys <= set(OmegaConf.load(CONF_DIR / "train" / "default.yaml")), path.name
        assert not train_keys & PROTOCOL_KEYS["train"] and "data" not in tuning, path.name


@pytest.mark.parametrize("task", PAPER_TASKS)
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
            per_epoch, total = optimizer_steps(n_train, cfg.train, processes=1)
            tinit, tfinal = resolve_schedule(method_settings(cfg.method), tiny_ctx(total, per_epoch))
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
