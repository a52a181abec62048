"""A GLUE task as the harness sees it, read from ``conf/task/<name>.yaml``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from harness.errors import ConfigError

KNOWN_METRICS = ("accuracy", "f1", "matthews_correlation", "pearson", "spearmanr")
REGRESSION_METRICS = ("pearson", "spearmanr")


@dataclass(frozen=True)
class TaskSpec:
    name: str
    text_fields: tuple[str, ...]  # one (single sentence) or two (pair) input columns
    num_labels: int  # 1 means regression (STS-B)
    metrics: tuple[str, ...]
    selection_metric: str  # the best epoch is chosen on this key of the first eval split
    eval_splits: dict[str, str]  # split name -> suffix of its metric keys ("" for the first)
    label_range: tuple[float, float] | None = None  # regression: the scores the data may hold

    @property
    def is_regression(self) -> bool:
        return self.num_labels == 1

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> TaskSpec:
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

    def metric_keys(self) -> list[str]:
        """Every metric key a result carries, e.g. MNLI: ['accuracy', 'accuracy_mm']."""
        return [m + suffix for suffix in self.eval_splits.values() for m in self.metrics]
