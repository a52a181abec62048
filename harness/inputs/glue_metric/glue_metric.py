"""GLUE's official metrics as an ``evaluate`` module kept in the repository.

The hub copy (``evaluate.load("glue", task)``) cannot be loaded offline; this module computes
the same numbers with scikit-learn and scipy (``scores.py``, which ``evaluate`` copies with this file):
Matthews correlation (CoLA), Pearson and Spearman (STS-B), accuracy and F1 (MRPC, QQP), accuracy (the rest).
"""

import datasets
import evaluate

from .scores import METRICS, REGRESSION


class GlueMetric(evaluate.Metric):
    """config_name: comma-separated metric names, e.g. ``"accuracy,f1"``."""

    def _info(self):
        regression = any(name in REGRESSION for name in self.config_name.split(","))
        value = datasets.Value("float32" if regression else "int64")
        return evaluate.MetricInfo(
            description="GLUE metrics computed with scikit-learn and scipy.",
            citation="Wang et al., GLUE, ICLR 2019.",
            inputs_description="predictions and references: class ids, or scores for STS-B.",
            features=datasets.Features({"predictions": value, "references": value}),
        )

    def _compute(self, predictions, references):
        names = self.config_name.split(",")
        unknown = [n for n in names if n not in METRICS]
        if unknown:
            raise ValueError(f"unknown GLUE metric(s) {unknown}; known: {sorted(METRICS)}")
        return {name: float(METRICS[name](predictions, references)) for name in names}
