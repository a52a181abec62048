"""An example-level paired bootstrap between two methods, over the seeds both ran.

Each resample draws the evaluated examples with replacement, the same draw for both methods and
every seed; a method's score on it is the mean over its seeds of the task score on those examples.
The interval is the percentile interval of the difference, and ``share_at_or_below_zero`` the share
of resamples in which the first method did not beat the second. It measures how much the verdict
depends on which examples the validation set happens to hold; the t interval over seeds
(report/study_tables.py) measures how much it depends on the seed. Both are reported.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

ScoreFn = Callable[[np.ndarray, np.ndarray], float]  # (predictions, references) -> score
RESAMPLES = 2000
SEED = 0  # the resamples are part of the report: the same every time it is regenerated


@dataclass(frozen=True)
class BootstrapDifference:
    difference: float  # on the examples as they are
    low: float
    high: float
    share_at_or_below_zero: float
    resamples: int


def paired_bootstrap(
    first: Sequence[np.ndarray],
    second: Sequence[np.ndarray],
    references: np.ndarray,
    score: ScoreFn,
    confidence: float = 0.95,
    resamples: int = RESAMPLES,
    seed: int = SEED,
) -> BootstrapDifference:
    """``first`` and ``second``: each method's predictions of ``references``, one array per seed."""
    if not first or not second:
        raise ValueError("each method needs the predictions of at least one seed")
    n = len(references)

    def difference(index: np.ndarray) -> float:
        labels = references[index]
        return float(
            np.mean([score(p[index], labels) for p in first]) - np.mean([score(p[index], labels) for p in second])
        )

    draws = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
    diffs = np.array([difference(index) for index in draws])
    diffs = diffs[np.isfinite(diffs)]  # a resample on which a correlation is undefined
    tail = (1 - confidence) / 2
    return BootstrapDifference(
        difference=difference(np.arange(n)),
        low=float(np.quantile(diffs, tail)),
        high=float(np.quantile(diffs, 1 - tail)),
        share_at_or_below_zero=float(np.mean(diffs <= 0)),
        resamples=len(diffs),
    )
