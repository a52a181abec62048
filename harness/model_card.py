"""The README.md beside saved weights: a hub model card (YAML front matter, then prose).

PEFT's ``save_pretrained`` writes a card of its own; this one replaces it, keeping PEFT's method
tags but naming the real base model (PEFT would write the local path the weights loaded from),
the GLUE task, the selection metric and its value as a ``model-index`` result, and how to reproduce
the run.
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

from harness.tasks import TaskSpec
from harness.weights_format import CLASSIFIER_HEAD, HEAD_FILE, PEFT_ADAPTER, WHOLE_MODEL

GLUE_HUB_NAME = "nyu-mll/glue"


@dataclass(frozen=True)
class RunFacts:
    """What the card says about the run; the same for every epoch's save."""

    task: str
    eval_split: str  # the split the selection metric is measured on
    model: str  # the harness's model name (conf/model/<name>.yaml)
    base_model: str | None  # a hub id, or None for random weights / a local checkpoint
    method: str
    method_config: dict[str, Any]
    seed: int
    command: str
    selection_metric: str  # the key of the per-epoch record (f1, or under data.protocol=heldout f1_select)
    total_params: int
    head_params: int


def base_model_id(model_cfg: Any) -> str | None:
    """The hub id of the backbone: the path of a hub model, else the yaml's ``hub_id`` if it names one."""
    if model_cfg.source == "hub":
        return str(model_cfg.path)
    return model_cfg.get("hub_id")


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


def run_facts(cfg: DictConfig, task: TaskSpec, counts: dict[str, int]) -> RunFacts:
    """What the card says: the best epoch is chosen on ``task.selection_key`` of ``task.selection_split``
    (the first validation split's metric, or under data.protocol=heldout the selection split's)."""
    return RunFacts(
        task=cfg.task.name,
        eval_split=task.selection_split,
        model=cfg.model.name,
        base_model=base_model_id(cfg.model),
        method=cfg.method.name,
        method_config=OmegaConf.to_container(cfg.method, resolve=True),
        seed=cfg.seed,
        command=launch_command(cfg),
        selection_metric=task.selection_key,
        total_params=counts["total"],
        head_params=counts["head"],
    )


# Per form of the saved weights (harness/weights_format.py): what the folder holds, and how to load it.
_WHAT = {
    PEFT_ADAPTER: "The adapter and the classifier (PEFT `save_pretrained`)",
    CLASSIFIER_HEAD: f"The classifier alone (`{HEAD_FILE}`; the backbone did not train)",
    WHOLE_MODEL: "The whole model",
}
_LOAD = {
    PEFT_ADAPTER: "PeftModel.from_pretrained(base, this_folder)  # import aflora first for an AFLoRA adapter",
    CLASSIFIER_HEAD: f'base.load_state_dict(safetensors.torch.load_file(this_folder / "{HEAD_FILE}"), strict=False)',
    WHOLE_MODEL: "AutoModelForSequenceClassification.from_pretrained(this_folder)",
}


def write_model_card(folder: Path, facts: RunFacts, best: dict[str, Any], trainable: int, form: str) -> None:
    """Write ``folder/README.md`` for the weights of epoch ``best["epoch"]`` (a per-epoch record),
    saved in ``form`` (harness/weights_format.py)."""
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
    what, load = _WHAT[form], _LOAD[form]
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

## Method configuration

```yaml
{method_yaml}
```

## Reproduce

```bash
{facts.command}
python -m harness.predict <run_dir>     # reload these weights, check the metric, predict the test split
```

```python
{load}
```
"""
