"""Trainer ``compute_metrics`` for a GLUE task, backed by the repository's evaluate module."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import evaluate
import numpy as np
from transformers import EvalPrediction

from harness.inputs.tasks import TaskSpec

METRIC_MODULE = str(Path(__file__).parent / "glue_metric" / "glue_metric.py")


def load_metric(task: TaskSpec) -> evaluate.EvaluationModule:
    return evaluate.load(METRIC_MODULE, config_name=",".join(task.metrics))


def to_predictions(task: TaskSpec, logits: np.ndarray) -> np.ndarray:
    """Class ids (argmax) for classification, the single score for regression."""
    logits = logits[0] if isinstance(logits, tuple) else logits
    return logits[:, 0] if task.is_regression else logits.argmax(axis=-1)


def compute_metrics_fn(task: TaskSpec) -> Callable[[EvalPrediction], dict[str, float]]:
    metric = load_metric(task)

    def compute(pred: EvalPrediction) -> dict[str, float]:
        predictions = to_predictions(task, pred.predictions)
        return metric.compute(predictions=predictions, references=pred.label_ids)

    return compute
