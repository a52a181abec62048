"""The README.md beside saved weights: a hub model card (YAML front matter, then prose).

PEFT's ``save_pretrained`` writes a card of its own; this one replaces it, keeping PEFT's method
tags but naming the base model on the hub (PEFT would write the local path the weights loaded
from), the license, the GLUE task, the selection metric and its value as a ``model-index`` result,
how to reproduce the run and how to load the weights. Both names of the base model are kept: the
card's ``base_model`` is the hub id, for the hub; ``adapter_config.json``'s
``base_model_name_or_path`` is where the run loaded the backbone from, so that peft's
``AutoPeftModelForSequenceClassification`` loads it offline (``harness.publish`` puts the hub id
there in the copy it uploads).
"""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from huggingface_hub import EvalResult, ModelCard, ModelCardData
from omegaconf import DictConfig, OmegaConf

from harness.inputs.models import resolve_location
from harness.inputs.tasks import TaskSpec
from harness.storage.weights_format import CLASSIFIER_HEAD, HEAD_FILE, PEFT_ADAPTER, WHOLE_MODEL

GLUE_HUB_NAME = "nyu-mll/glue"


@dataclass(frozen=True)
class RunFacts:
    """What the card says about the run; the same for every epoch's save."""

    task: str
    eval_split: str  # the split the selection metric is measured on
    model: str  # the harness's model name (conf/model/<name>.yaml)
    base_model: str | None  # a hub id, or None for random weights / a local checkpoint
    base_location: str | None  # where the backbone was loaded from (a hub id or a local folder); None: random
    license: str | None  # the base weights' (model.license)
    run_dir: str  # as the user named it (relative to where run.py started, when inside it)
    num_labels: int
    method: str
    method_config: dict[str, Any]
    seed: int
    command: str
    selection_metric: str  # the key of the per-epoch record (f1, or under data.protocol=heldout f1_select)
    total_params: int
    head_params: int


def base_model_id(model_cfg: Any) -> str | None:
    """The hub id of the backbone: the path of a hub model (unless it is a local folder), else the
    yaml's ``hub_id`` if it names one."""
    if model_cfg.source == "hub" and not Path(model_cfg.path).is_dir():
        return str(model_cfg.path)
    return model_cfg.get("hub_id")


def base_location(model_cfg: Any) -> str | None:
    """What ``from_pretrained`` loaded the backbone from: a hub id, or an absolute local folder
    (so the adapter loads from any working directory); None for random weights."""
    if model_cfg.source == "config":
        return None
    location = resolve_location(model_cfg.source, model_cfg.path)
    return str(Path(location).resolve()) if Path(location).is_dir() else location


def shown_path(path: Path) -> str:
    """``path`` relative to the working directory when inside it (``runs/minilm/rte/lora/seed1``)."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def launch_command(cfg: DictConfig) -> str:
    """The command line that produced this run: Hydra's overrides for this job when run.py started it."""
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        return shlex.join(["python", "run.py", *HydraConfig.get().overrides.task])
    if Path(sys.argv[0]).name == "run.py":
        return shlex.join(["python", "run.py", *sys.argv[1:]])
    # Called from Python (tests, notebooks): the run's identity, which selects the same recipe.
    identity = [f"task={cfg.task.name}", f"model={cfg.model.name}", f"method={cfg.method.name}", f"seed={cfg.seed}"]
    return shlex.join(["python", "run.py", *identity])


def run_facts(cfg: DictConfig, task: TaskSpec, counts: dict[str, int], run_dir: Path) -> RunFacts:
    """What the card says: the best epoch is chosen on ``task.selection_key`` of ``task.selection_split``
    (the first validation split's metric, or under data.protocol=heldout the selection split's)."""
    return RunFacts(
        task=cfg.task.name,
        eval_split=task.selection_split,
        model=cfg.model.name,
        base_model=base_model_id(cfg.model),
        base_location=base_location(cfg.model),
        license=cfg.model.get("license"),
        run_dir=shown_path(run_dir),
        num_labels=task.num_labels,
        method=cfg.method.name,
        method_config=OmegaConf.to_container(cfg.method, resolve=True),
        seed=cfg.seed,
        command=launch_command(cfg),
        selection_metric=task.selection_key,
        total_params=counts["total"],
        head_params=counts["head"],
    )


# Per form of the saved weights (harness/storage/weights_format.py): what the folder holds, and how to load it.
_WHAT = {
    PEFT_ADAPTER: "The adapter and the classifier (PEFT `save_pretrained`)",
    CLASSIFIER_HEAD: f"The classifier alone (`{HEAD_FILE}`; the backbone did not train)",
    WHOLE_MODEL: "The whole model",
}
# Per form: how to load the weights (format fields: num_labels, head_file), after
# ``folder = "<run_dir>/best"`` and, for the classifier alone, ``base = <the backbone>``.
_LOAD = {
    PEFT_ADAPTER: """import aflora  # AFLoRA's PEFT type (ELoRA's too); without it peft stops with KeyError: 'AFLORA'
from peft import AutoPeftModelForSequenceClassification
from transformers import AutoTokenizer

# the base model from adapter_config.json's base_model_name_or_path; the adapter and classifier from here
model = AutoPeftModelForSequenceClassification.from_pretrained(folder, num_labels={num_labels})
tokenizer = AutoTokenizer.from_pretrained(folder)""",
    CLASSIFIER_HEAD: """import safetensors.torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

model = AutoModelForSequenceClassification.from_pretrained(base, num_labels={num_labels})
model.load_state_dict(safetensors.torch.load_file(f"{{folder}}/{head_file}"), strict=False)
tokenizer = AutoTokenizer.from_pretrained(folder)""",
    WHOLE_MODEL: """from transformers import AutoModelForSequenceClassification, AutoTokenizer

model = AutoModelForSequenceClassification.from_pretrained(folder)
tokenizer = AutoTokenizer.from_pretrained(folder)""",
}
# A method whose adapter plain peft loads only in part: what loads it whole.
_LOAD_WHOLE = {
    "sora": "A SoRA adapter also holds its gates, which peft's LoRA drops: load it with the harness's\n"
    "`baselines.sora.load_sora(base_model, folder)`.",
}


def write_model_card(folder: Path, facts: RunFacts, best: dict[str, Any], trainable: int, form: str) -> None:
    """Write ``folder/README.md`` for the weights of epoch ``best["epoch"]`` (a per-epoch record),
    saved in ``form`` (harness/storage/weights_format.py)."""
    library = "peft" if form == PEFT_ADAPTER else "transformers"
    path = folder / "README.md"
    method_tags = []
    if path.exists():  # PEFT's own card: keep its method tags, drop its local-path base_model tag
        method_tags = [t for t in ModelCard.load(path).data.tags or [] if not t.startswith("base_model:")]
    tags = sorted({*method_tags, "glue", facts.task, facts.method, "text-classification"})
    if facts.base_model and library == "peft":
        tags.append(f"base_model:adapter:{facts.base_model}")
    metric = facts.selection_metric
    data = ModelCardData(
        license=facts.license,
        base_model=facts.base_model,
        library_name=library,
        tags=tags,
        datasets=[GLUE_HUB_NAME],
        metrics=[metric],
        model_name=f"{facts.model}-{facts.task}-{facts.method}-seed{facts.seed}",
        eval_results=[
            EvalResult(
                task_type="text-classification",
                dataset_type=GLUE_HUB_NAME,
                dataset_name=f"GLUE {facts.task.upper()}",
                dataset_config=facts.task,
                dataset_split=facts.eval_split,
                metric_type=metric,
                metric_value=best[metric],
            )
        ],
    )
    ModelCard(f"---\n{data.to_yaml()}\n---\n\n{_body(facts, best, trainable, form)}").save(path)


def _body(facts: RunFacts, best: dict[str, Any], trainable: int, form: str) -> str:
    base = facts.base_model or f"`{facts.model}` (see the harness's conf/model/{facts.model}.yaml)"
    what = _WHAT[form]
    folder = f"{facts.run_dir}/best"
    load = _LOAD[form].format(num_labels=facts.num_labels, head_file=HEAD_FILE)
    where = facts.base_location or facts.base_model
    base_line = ""
    if form == CLASSIFIER_HEAD:
        base_line = f'base = "{where}"\n' if where else f"base = ...  # random weights: conf/model/{facts.model}.yaml\n"
    load = f'folder = "{folder}"  # this folder\n{base_line}{load}'
    whole = f"\n{_LOAD_WHOLE[facts.method]}\n" if form == PEFT_ADAPTER and facts.method in _LOAD_WHOLE else ""
    method_yaml = yaml.safe_dump(facts.method_config, sort_keys=False).strip()
    return f"""# {facts.method} on GLUE {facts.task.upper()} ({facts.model}, seed {facts.seed})

{what} of the best epoch of one fine-tuning run: epoch {best["epoch"]} (step {best["step"]}), selected on
validation {facts.selection_metric} = {best[facts.selection_metric]} ({facts.eval_split} split).

- Base model: {base}
- Task: GLUE {facts.task}
- Method: {facts.method}
- Trainable parameters at this epoch: {trainable:,} (head excluded); classifier head: {facts.head_params:,};
  model total: {facts.total_params:,}
- Seed: {facts.seed}
- License: {facts.license or "that of the base model (model.license was not set)"}

## Method configuration

```yaml
{method_yaml}
```

## Reproduce

In the harness's repository:

```bash
{facts.command}
python -m harness.predict {facts.run_dir}   # reload these weights, check the metric, predict the test split
```

## Load

```python
{load}
```
{whole}"""
