"""Two methods' mean difference over the seeds both ran, with its Student's t interval.

The report's paired comparisons print it, and a study stage with ``of:`` (harness/studies/more_seeds.py)
adds seeds to a comparison whose interval holds zero; both read this one function.
"""

from __future__ import annotations

import math

import pandas as pd
from scipy import stats

CONFIDENCE = 0.95


def paired_difference(a: pd.Series, b: pd.Series) -> tuple[float, float, float, int]:
    """Mean of a - b over the seeds both have (the series' index), and its t interval over seeds:
    (mean, low, high, n); no interval (NaN) with fewer than two seeds."""
    common = a.index.intersection(b.index)
    diffs = (a.loc[common] - b.loc[common]).astype(float)
    n = len(diffs)
    if n == 0:
        return math.nan, math.nan, math.nan, 0
    mean = float(diffs.mean())
    if n < 2:
        return mean, math.nan, math.nan, n
    half = float(stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1)) * float(diffs.std(ddof=1)) / math.sqrt(n)
    return mean, mean - half, mean + half, n
