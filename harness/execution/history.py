"""Per-epoch metrics, best/final epochs and runtime, read off the Trainer's log history.

The history is part of every checkpoint (trainer_state.json), so a resumed run still reports
every epoch. Keys: the Trainer logs ``eval_<split>_<metric>``; result.json uses ``<metric>``
for the first evaluation split and ``<metric><suffix>`` for the others (MNLI: ``accuracy_mm``;
data.protocol=heldout's selection split: ``accuracy_select``).
"""

from __future__ import annotations

import math
from typing import Any

from transformers import TrainerCallback

from harness.core.errors import HarnessError
from harness.inputs.tasks import TaskSpec


class LogAtEpochEnd(TrainerCallback):
    """Close the Trainer's training-loss window at every epoch end, so that no logged loss spans two
    epochs. A run resumes at an epoch end, where the Trainer opens a new window; closing one there in
    every run makes an uninterrupted run log the same windows as a resumed one, and so the same
    per-epoch train_loss."""

    def on_epoch_end(self, args, state, control, **kwargs):
        control.should_log = True


def per_epoch_records(log_history: list[dict[str, Any]], task: TaskSpec) -> list[dict[str, Any]]:
    records: dict[int, dict[str, Any]] = {}
    train_losses: dict[int, list[tuple[float, int]]] = {}  # epoch -> (window's mean loss, its steps)
    last_logged_step = 0
    for entry in log_history:
        epoch = entry.get("epoch")
        if epoch is None:
            continue
        if "loss" in entry:  # a training log line: the mean over the steps since the last one
            window = (entry["loss"], entry["step"] - last_logged_step)
            train_losses.setdefault(max(int(-(-epoch // 1)), 1), []).append(window)
            last_logged_step = entry["step"]
        for split, suffix in task.evaluated_splits.items():
            prefix = f"eval_{split}_"
            if f"{prefix}loss" not in entry:
                continue
            record = records.setdefault(round(epoch), {"epoch": round(epoch), "step": entry["step"]})
            for metric in task.metrics:
                record[metric + suffix] = entry.get(prefix + metric)
            record["loss" + suffix] = entry[f"{prefix}loss"]
            record["eval_seconds" + suffix] = entry.get(f"{prefix}runtime", 0.0)
    for epoch, record in records.items():
        windows = train_losses.get(epoch)  # LogAtEpochEnd: no window spans two epochs
        total_steps = sum(steps for _, steps in windows or ())
        # the mean over the epoch's steps (statistics.fmean takes weights only from Python 3.11)
        record["train_loss"] = sum(loss * steps for loss, steps in windows) / total_steps if total_steps else None
    return [records[e] for e in sorted(records)]


class UndefinedMetric(HarnessError):
    """No epoch has a finite selection metric: there is no best epoch to report."""


def best_and_final(records: list[dict[str, Any]], task: TaskSpec) -> tuple[dict, dict]:
    """The best epoch on the task's selection metric: of the first validation split as the paper
    reports it (or the one ``task.select_on`` names), or of the selection split under
    data.protocol=heldout (``task.selection_key``)."""
    if not records:
        raise RuntimeError("training finished without a single evaluation")
    key = task.selection_key
    finite = [r for r in records if r.get(key) is not None and math.isfinite(r[key])]
    if not finite:  # e.g. Pearson's r of a model that predicts one constant
        raise UndefinedMetric(f"{key} is undefined (NaN) at every epoch: the model's predictions did not vary")
    best = max(finite, key=lambda r: r[key])  # ties: the earliest epoch
    return best, records[-1]


def runtime_record(
    timer_seconds: float,
    timer_cpu_seconds: float | None,
    timer_epochs: float,
    records: list[dict[str, Any]],
    n_train: int,
) -> dict:
    """Training time (evaluation excluded), wall and CPU, per epoch and throughput, plus evaluation time."""
    eval_seconds = sum(v for r in records for k, v in r.items() if k.startswith("eval_seconds"))
    cpu_known = timer_cpu_seconds is not None and timer_epochs
    return {
        "train_seconds": timer_seconds,
        "train_cpu_seconds": timer_cpu_seconds,
        "seconds_per_epoch": timer_seconds / timer_epochs if timer_epochs else None,
        "cpu_seconds_per_epoch": timer_cpu_seconds / timer_epochs if cpu_known else None,
        "train_samples_per_second": n_train * timer_epochs / timer_seconds if timer_seconds else None,
        "eval_seconds": eval_seconds,
    }
