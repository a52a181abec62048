"""The typed schema of a run's config: one dataclass per config group, registered with Hydra.

The yaml files under ``conf/`` keep the values; these dataclasses say which keys exist and what
type each holds. Hydra merges every yaml and command-line value into them while it composes the
config, so an unknown key or a value of the wrong type is refused before ``run.py`` starts (Hydra's
structured configs). The ranges are checked by each dataclass's ``__post_init__``, which
``harness.config.validation.validate_config`` runs once on the composed config, before anything is written.
The protocol, tuning and recipe groups (``@package _global_``) set ``train`` and ``data`` keys, so
these schemas check them too. A method's own keys are typed by the dataclass its module registers
(``harness.execution.methods.MethodSettings``).

Fields without a default (``MISSING``) must come from the yaml. A field with a default is one that
some yamls leave out (``task.label_range``, ``model.hub_id``); ``harness/storage/identity.py`` leaves such a
key out of a run's fingerprint while it holds that default, as it was absent before this schema.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from harness.core.errors import ConfigError

ATTENTION = (None, "sdpa", "eager")  # train.attn_implementation

# Upper bounds of the counts: far above any run this harness makes, low enough that a typo (an
# extra zero, 1e11 epochs) is refused in one line instead of running for ever.
MAX_EPOCHS = 1_000
MAX_BATCH = 65_536
MAX_STEPS = 10_000_000
MAX_EXAMPLES = 100_000_000
MAX_SEQ_LENGTH = 65_536
MAX_THREADS = 1_024
MAX_SEED = 2**32 - 1  # numpy's seeds (transformers.set_seed seeds numpy too)

PROTOCOLS = ("paper", "heldout")
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("fp32", "bf16")


def composed(settings: Any) -> bool:
    """False for the empty instance Hydra makes of a schema before the yaml fills it (every
    ``__post_init__`` checks a composed config only)."""
    return MISSING not in vars(settings).values()


def check_count(key: str, value: Any, low: int, high: int, *, nullable: bool = False) -> None:
    """Refuse, in one line naming ``key``, a count outside ``[low, high]`` (or null when not ``nullable``)."""
    if value is None and nullable:
        return
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        allowed = f"an integer from {low} to {high:,}" + (" or null" if nullable else "")
        raise ConfigError(f"{key} = {value!r} must be {allowed}")


def check_range(key: str, value: float, low: float, high: float, *, high_open: bool = False) -> None:
    """Refuse a number outside ``[low, high]`` (``[low, high)`` when ``high_open``)."""
    if not (low <= value < high if high_open else low <= value <= high):
        raise ConfigError(f"{key} = {value!r} must lie in [{low}, {high}{')' if high_open else ']'}")


def check_choice(key: str, value: Any, choices: tuple[str, ...] | list[str], why: str = "") -> None:
    if value not in choices:
        raise ConfigError(f"{key} = {value!r} is not one of {list(choices)}{why}")


@dataclass
class TrainConfig:
    """``conf/train/default.yaml``: what every method shares about training."""

    epochs: int = MISSING
    batch_size: int = MISSING
    per_device_batch_size: Optional[int] = MISSING  # noqa: UP045 (omegaconf reads Optional, not X | None)
    eval_batch_size: int = MISSING
    lr: float = MISSING
    head_lr: float = MISSING
    weight_decay: float = MISSING
    head_weight_decay: float = MISSING
    warmup_ratio: float = MISSING
    lr_scheduler: str = MISSING
    optimizer: str = MISSING
    max_grad_norm: float = MISSING
    max_steps: int = MISSING
    max_train_samples: Optional[int] = MISSING  # noqa: UP045
    train_sample_seed: Optional[int] = MISSING  # noqa: UP045
    max_eval_samples: Optional[int] = MISSING  # noqa: UP045
    group_by_length: bool = MISSING
    precision: str = MISSING
    # transformers' attention kernel; None keeps the model's default (sdpa). A default here, so runs
    # from before the key keep their fingerprint (harness/storage/identity.py) and predict reads them as None.
    attn_implementation: Optional[str] = None  # noqa: UP045
    device: str = MISSING
    threads: Optional[int] = MISSING  # noqa: UP045
    logging_steps: int = MISSING
    report_to: Any = MISSING  # a name or a list of names (harness/execution/tracking.py checks them)
    keep_checkpoints: bool = MISSING
    save_best: bool = MISSING
    keep_predictions: bool = MISSING

    def __post_init__(self) -> None:
        if not composed(self):
            return
        # Their modules import torch: only validate_config runs this, in a process that trains.
        from transformers import SchedulerType

        from harness.execution.optim import OPTIMIZERS

        check_count("train.epochs", self.epochs, 1, MAX_EPOCHS)
        check_count("train.batch_size", self.batch_size, 1, MAX_BATCH)
        check_count("train.per_device_batch_size", self.per_device_batch_size, 1, MAX_BATCH, nullable=True)
        check_count("train.eval_batch_size", self.eval_batch_size, 1, MAX_BATCH)
        if self.max_steps != -1:  # -1: train.epochs decides
            check_count("train.max_steps", self.max_steps, 1, MAX_STEPS)
        check_count("train.max_train_samples", self.max_train_samples, 1, MAX_EXAMPLES, nullable=True)
        check_count("train.train_sample_seed", self.train_sample_seed, 0, MAX_SEED, nullable=True)
        check_count("train.max_eval_samples", self.max_eval_samples, 1, MAX_EXAMPLES, nullable=True)
        check_count("train.threads", self.threads, 1, MAX_THREADS, nullable=True)
        check_count("train.logging_steps", self.logging_steps, 1, MAX_STEPS)
        for key in ("lr", "head_lr"):
            if not getattr(self, key) > 0:
                raise ConfigError(f"train.{key} = {getattr(self, key)!r} must be positive")
        for key in ("weight_decay", "head_weight_decay", "max_grad_norm"):
            if not getattr(self, key) >= 0:
                raise ConfigError(f"train.{key} = {getattr(self, key)!r} must be >= 0")
        check_range("train.warmup_ratio", self.warmup_ratio, 0, 1, high_open=True)
        why = " (fp16 needs loss scaling, which the harness's own gradient clipping does not undo)"
        check_choice("train.precision", self.precision, PRECISIONS, why)
        check_choice("train.attn_implementation", self.attn_implementation, ATTENTION)
        check_choice("train.device", self.device, DEVICES)
        check_choice("train.lr_scheduler", self.lr_scheduler, [t.value for t in SchedulerType])
        check_choice("train.optimizer", self.optimizer, sorted(OPTIMIZERS))


@dataclass
class DataConfig:
    """The ``data`` block of ``conf/config.yaml``: where GLUE lies and how it is cut."""

    dir: Optional[str] = MISSING  # noqa: UP045
    hub_name: str = MISSING
    max_seq_length: int = MISSING
    pad_to_max_length: bool = MISSING
    protocol: str = MISSING

    def __post_init__(self) -> None:
        if not composed(self):
            return
        check_count("data.max_seq_length", self.max_seq_length, 1, MAX_SEQ_LENGTH)
        check_choice("data.protocol", self.protocol, PROTOCOLS)


@dataclass
class ModelConfig:
    """``conf/model/<name>.yaml``: the backbone, where it comes from, and where adapters go."""

    name: str = MISSING
    source: str = MISSING
    path: Optional[str] = MISSING  # noqa: UP045
    tokenizer: Any = MISSING  # null (the model's own) or {source, path}
    config: Any = MISSING  # null, or transformers' model config as a mapping (open: '+' adds a key)
    target_modules: list[str] = MISSING
    train_pooler: bool = MISSING
    trust_remote_code: bool = MISSING
    license: Optional[str] = None  # noqa: UP045 (the model card's: the base weights' license)
    hub_id: Optional[str] = None  # noqa: UP045 (the hub's copy of a package model: the model card's base_model)

    def __post_init__(self) -> None:
        if not composed(self):
            return
        if not self.target_modules:
            raise ConfigError("model.target_modules is empty: name the linear layers the adapters wrap")


@dataclass
class TaskConfig:
    """``conf/task/<name>.yaml``; ``harness.inputs.tasks.TaskSpec`` checks how its fields fit together."""

    name: str = MISSING
    text_fields: list[str] = MISSING
    num_labels: int = MISSING
    metrics: list[str] = MISSING
    selection_metric: str = MISSING
    eval_splits: dict[str, str] = MISSING
    label_range: Optional[list[float]] = None  # noqa: UP045 (regression tasks: the scores the data may hold)
    select_on: Optional[str] = None  # noqa: UP045 (the validation split the best epoch is chosen on; null: the first)


@dataclass
class RunConfig:
    """The root: the groups above, a method (typed by its own module), and where the run goes."""

    task: TaskConfig = field(default_factory=TaskConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    method: Any = MISSING  # harness.execution.methods.method_settings types it with the method's dataclass
    train: TrainConfig = field(default_factory=TrainConfig)
    data: DataConfig = field(default_factory=DataConfig)
    seed: int = MISSING
    force: bool = MISSING
    runs_dir: str = MISSING

    def __post_init__(self) -> None:
        if not composed(self):
            return
        check_count("seed", self.seed, 0, MAX_SEED)


SCHEMA_NAME = "run_schema"  # the first entry of conf/config.yaml's defaults list
# Keys the schema adds with a default to configs whose yaml leaves them out: not in a fingerprint
# while they hold that default (harness/storage/identity.py).
SCHEMA_DEFAULTS = {"model.hub_id": None, "model.license": None, "task.label_range": None, "task.select_on": None}


def register_schema() -> None:
    """Enter the schema in Hydra's ConfigStore; run.py and ``harness.config.compose`` call this before composing."""
    ConfigStore.instance().store(name=SCHEMA_NAME, node=RunConfig)


register_schema()
