"""A run's score under either protocol, read back from its kept predictions (harness/storage/epoch_predictions.py).

A run trained with ``data.protocol=heldout`` and ``train.keep_predictions=true`` holds, for every
epoch, its predictions of both halves of the validation split: ``selection`` (the half the epoch is
chosen on) and ``validation`` (the other half). From them, with no retraining:

- **held-out**: the epoch with the best selection-half score, scored on the other half;
- **paper**: the epoch with the best score on the whole validation split, scored there (AFLoRA's
  reference code: chosen and reported on the same examples, optimistic).

Ties go to the earliest epoch, as the harness chooses (harness/execution/history.py, ``best_and_final``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.inputs.glue_metric.scores import METRICS
from harness.inputs.heldout import heldout_indices
from harness.inputs.tasks import SELECTION_SPLIT, TaskSpec
from harness.storage.epoch_predictions import SplitPredictions, read_predictions

HELDOUT, PAPER = "heldout", "paper"
REPORTED_SPLIT = "validation"


@dataclass(frozen=True)
class ProtocolScore:
    """The epoch a protocol chose, its selection score, and what it reports (metric -> value)."""

    epoch: int
    selection_score: float
    reported: dict[str, float]
    example_indices: np.ndarray  # positions in the validation split of the reported examples
    predictions: np.ndarray  # the chosen epoch's predictions of those examples
    labels: np.ndarray


def whole_split(parts: dict[str, SplitPredictions]) -> SplitPredictions:
    """Both halves put back in the validation split's order (``heldout_indices`` made them)."""
    selection, reported = parts[SELECTION_SPLIT], parts[REPORTED_SPLIT]
    n = len(selection.labels) + len(reported.labels)
    chosen, rest = heldout_indices(n, n // 2)
    if len(chosen) != len(selection.labels):
        raise ValueError(f"the selection half has {len(selection.labels)} examples; a split of {n} holds {len(chosen)}")

    def merge(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        out = np.empty(n, dtype=np.result_type(a, b))
        out[chosen], out[rest] = a, b
        return out

    epochs = sorted(set(selection.by_epoch) & set(reported.by_epoch))
    return SplitPredictions(
        labels=merge(selection.labels, reported.labels),
        by_epoch={e: merge(selection.by_epoch[e], reported.by_epoch[e]) for e in epochs},
    )


def score(
    task: TaskSpec, predictions: np.ndarray, labels: np.ndarray, metrics: Sequence[str] | None = None
) -> dict[str, float]:
    """The task's metrics (or only ``metrics`` of them) in percent, by the functions of the metric
    module the runs use (called directly: a bootstrap scores thousands of resamples)."""
    return {name: 100 * float(METRICS[name](predictions, labels)) for name in metrics or task.metrics}


def _best_epoch(task: TaskSpec, split: SplitPredictions) -> tuple[int, float]:
    scores = {e: score(task, p, split.labels)[task.selection_metric] for e, p in sorted(split.by_epoch.items())}
    finite = {e: s for e, s in scores.items() if math.isfinite(s)}
    if not finite:
        raise ValueError(f"{task.selection_metric} is undefined at every epoch")
    epoch = max(finite, key=lambda e: (finite[e], -e))  # ties: the earliest epoch
    return epoch, finite[epoch]


def protocol_score(run_dir: Path, task: TaskSpec, protocol: str) -> ProtocolScore:
    """``protocol`` (``heldout`` or ``paper``) applied to the predictions ``run_dir`` kept."""
    parts = read_predictions(run_dir)
    missing = [s for s in (SELECTION_SPLIT, REPORTED_SPLIT) if s not in parts]
    if missing:
        raise ValueError(
            f"{run_dir}: no kept predictions of {missing} (train with data.protocol=heldout and "
            "train.keep_predictions=true)"
        )
    whole = whole_split(parts)
    n = len(whole.labels)
    if protocol == HELDOUT:
        epoch, selection_score = _best_epoch(task, parts[SELECTION_SPLIT])
        chosen_from, indices = parts[REPORTED_SPLIT], np.asarray(heldout_indices(n, n // 2)[1])
    elif protocol == PAPER:
        epoch, selection_score = _best_epoch(task, whole)
        chosen_from, indices = whole, np.arange(n)
    else:
        raise ValueError(f"protocol {protocol!r} is not one of {[HELDOUT, PAPER]}")
    predictions = chosen_from.by_epoch[epoch]
    return ProtocolScore(
        epoch=epoch,
        selection_score=selection_score,
        reported=score(task, predictions, chosen_from.labels),
        example_indices=indices,
        predictions=predictions,
        labels=chosen_from.labels,
    )
