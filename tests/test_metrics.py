"""The repository's GLUE metric module against hand computations (numpy) and scipy."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import rankdata
from transformers import EvalPrediction

from harness.inputs.metrics import compute_metrics_fn, to_predictions
from harness.inputs.tasks import TaskSpec
from tests.conftest import compose
from tests.glue_fixture import TASKS


def by_hand(name: str, p: np.ndarray, r: np.ndarray) -> float:
    if name == "accuracy":
        return float(np.mean(p == r))
    tp = np.sum((p == 1) & (r == 1))
    tn = np.sum((p == 0) & (r == 0))
    fp = np.sum((p == 1) & (r == 0))
    fn = np.sum((p == 0) & (r == 1))
    if name == "f1":
        return 2 * tp / (2 * tp + fp + fn)
    if name == "matthews_correlation":
        return (tp * tn - fp * fn) / np.sqrt(float((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn)))
    if name == "pearson":
        return float(np.corrcoef(p, r)[0, 1])
    if name == "spearmanr":
        return float(np.corrcoef(rankdata(p), rankdata(r))[0, 1])
    raise KeyError(name)


@pytest.mark.parametrize("task", sorted(TASKS))
def test_metrics_match_hand_computation(task):
    spec = TaskSpec.from_config(compose([f"task={task}"]).task)
    rng = np.random.default_rng(len(task))
    n = 200
    if spec.is_regression:
        logits = rng.normal(2.5, 1.0, size=(n, 1)).astype(np.float32)
        labels = (logits[:, 0] + rng.normal(0, 1.0, size=n)).astype(np.float32)
    else:
        logits = rng.normal(size=(n, spec.num_labels)).astype(np.float32)
        labels = rng.integers(0, spec.num_labels, size=n)
    got = compute_metrics_fn(spec)(EvalPrediction(predictions=logits, label_ids=labels))
    predictions = to_predictions(spec, logits)
    assert set(got) == set(spec.metrics)
    for name in spec.metrics:
        assert got[name] == pytest.approx(by_hand(name, predictions, labels), abs=1e-5), name


def test_argmax_and_regression_predictions():
    cls = TaskSpec.from_config(compose(["task=rte"]).task)
    reg = TaskSpec.from_config(compose(["task=stsb"]).task)
    logits = np.array([[0.1, 0.9], [2.0, -1.0]])
    assert to_predictions(cls, logits).tolist() == [1, 0]
    assert to_predictions(reg, np.array([[3.5], [1.25]])).tolist() == [3.5, 1.25]
