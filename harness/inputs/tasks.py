"""A GLUE task as the harness sees it, read from ``conf/task/<name>.yaml``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from harness.core.errors import ConfigError

KNOWN_METRICS = ("accuracy", "f1", "matthews_correlation", "pearson", "spearmanr")
REGRESSION_METRICS = ("pearson", "spearmanr")

# data.protocol (harness/config/schema.py): where the best epoch is chosen and its numbers measured.
#   paper:   both on the task's validation split(s) (AFLoRA's reference code; optimistic).
#   heldout: chosen on a held-out selection split, reported on the validation split(s) or the
#            half of them the selection split leaves (SoRA's protocol; harness/inputs/data.py).
DEFAULT_PROTOCOL = "paper"  # a result written before data.protocol existed was trained under it
SELECTION_SPLIT = "selection"  # heldout: the selection split's name among the evaluated sets
SELECTION_SUFFIX = "_select"  # ... and the suffix of its metric keys (f1_select, loss_select)


@dataclass(frozen=True)
class TaskSpec:
    name: str
    text_fields: tuple[str, ...]  # one (single sentence) or two (pair) input columns
    num_labels: int  # 1 means regression (STS-B)
    metrics: tuple[str, ...]
    selection_metric: str  # the best epoch is chosen on this key of the selection split (selection_split)
    eval_splits: dict[str, str]  # split name -> suffix of its metric keys ("" for the first)
    label_range: tuple[float, float] | None = None  # regression: the scores the data may hold
    protocol: str = DEFAULT_PROTOCOL  # data.protocol
    select_on: str | None = None  # task.select_on: the validation split the best epoch is chosen on (None: the first)

    @property
    def is_regression(self) -> bool:
        return self.num_labels == 1

    @property
    def evaluated_splits(self) -> dict[str, str]:
        """The sets evaluated after every epoch, name -> suffix of their metric keys: the
        validation split(s), then under ``heldout`` the selection split. It comes last so that
        the evaluation that decides the best epoch finds the epoch's reported metrics logged."""
        if self.protocol == "heldout":
            return {**self.eval_splits, SELECTION_SPLIT: SELECTION_SUFFIX}
        return dict(self.eval_splits)

    @property
    def selection_source(self) -> str:
        """The validation split selection draws on: ``select_on``, else the first. SoRA's official
        code trains MNLI twice and chooses the MNLI-mm run on the mismatched split
        (``task.select_on=validation_mismatched``; docs/method.md, "SoRA")."""
        return self.select_on or next(iter(self.eval_splits))

    @property
    def selection_split(self) -> str:
        """The set the best epoch is chosen on: the selection source, or under heldout the selection split."""
        return SELECTION_SPLIT if self.protocol == "heldout" else self.selection_source

    @property
    def selection_key(self) -> str:
        """The per-epoch record's key the best epoch maximises: ``f1``, or under heldout ``f1_select``."""
        return self.selection_metric + self.evaluated_splits[self.selection_split]

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any], protocol: str = DEFAULT_PROTOCOL) -> TaskSpec:
        num_labels = cfg["num_labels"]
        if isinstance(num_labels, bool) or not isinstance(num_labels, int):
            raise ConfigError(f"task.num_labels = {num_labels!r} must be an integer")
        label_range = cfg.get("label_range")
        spec = cls(
            name=str(cfg["name"]),
            text_fields=tuple(cfg["text_fields"]),
            num_labels=num_labels,
            metrics=tuple(cfg["metrics"]),
            selection_metric=str(cfg["selection_metric"]),
            eval_splits=dict(cfg["eval_splits"]),
            label_range=(float(label_range[0]), float(label_range[1])) if label_range else None,
            protocol=protocol,
            select_on=cfg.get("select_on"),
        )
        spec.validate()
        return spec

    def validate(self) -> None:
        if len(self.text_fields) not in (1, 2):
            raise ConfigError(f"task.text_fields must name 1 or 2 columns, got {list(self.text_fields)}")
        if self.num_labels < 1:
            raise ConfigError(f"task.num_labels must be >= 1 (1 = regression), got {self.num_labels}")
        unknown = [m for m in self.metrics if m not in KNOWN_METRICS]
        if unknown:
            raise ConfigError(f"task.metrics: unknown {unknown}; known: {list(KNOWN_METRICS)}")
        kind = [m for m in self.metrics if (m in REGRESSION_METRICS) != self.is_regression]
        if kind:
            raise ConfigError(
                f"task.num_labels = {self.num_labels} makes {self.name} a "
                f"{'regression' if self.is_regression else 'classification'} task, "
                f"but task.metrics {kind} are {'classification' if self.is_regression else 'regression'} metrics"
            )
        if self.selection_metric not in self.metrics:
            raise ConfigError(
                f"task.selection_metric {self.selection_metric!r} is not one of task.metrics {list(self.metrics)}"
            )
        if not self.eval_splits:
            raise ConfigError("task.eval_splits is empty")
        if self.select_on is not None and self.select_on not in self.eval_splits:
            raise ConfigError(
                f"task.select_on {self.select_on!r} is not one of task.eval_splits {list(self.eval_splits)}"
            )
        if SELECTION_SPLIT in self.eval_splits or SELECTION_SUFFIX in self.eval_splits.values():
            raise ConfigError(
                f"task.eval_splits may not use the name {SELECTION_SPLIT!r} or the suffix {SELECTION_SUFFIX!r}"
            )

    def metric_keys(self) -> list[str]:
        """Every reported metric key a result carries, e.g. MNLI: ['accuracy', 'accuracy_mm']
        (under heldout the records also carry the selection split's, e.g. 'accuracy_select')."""
        return [m + suffix for suffix in self.eval_splits.values() for m in self.metrics]


def task_spec(cfg: Mapping[str, Any]) -> TaskSpec:
    """The task of a run's config (``cfg.task`` under ``cfg.data.protocol``)."""
    return TaskSpec.from_config(cfg["task"], cfg["data"].get("protocol", DEFAULT_PROTOCOL))
