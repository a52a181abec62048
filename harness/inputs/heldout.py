"""The held-out protocol's fixed split of a set of examples (``data.protocol=heldout``).

SoRA's protocol (Ding et al., EMNLP 2023; TsinghuaC3I/SoRA, src/processor.py, AbstractTask.get):
a task with a large training set (SST-2, QNLI, QQP) holds 1,000 training examples out to choose
the epoch on and reports the whole validation set; every other task (CoLA, MRPC, STS-B, RTE,
MNLI's two validation sets, WNLI) splits its validation set in two halves, chooses on the first
and reports the second. The split is a permutation drawn by torch.randperm from a generator
seeded 42, the first 1,000 (or len // 2) indices selecting, as there: fixed by this constant,
never by the run seed, so every method and seed sees the same halves. Each part keeps the
split's own order here (SoRA's keep the permutation's; it changes no metric).

Apart from the data loading (harness/inputs/data.py), so that the report splits a run's kept
predictions with torch alone (harness/report/protocols.py).
"""

from __future__ import annotations

import torch

from harness.core.errors import DataError
from harness.inputs.tasks import TaskSpec

HELDOUT_SEED = 42  # SoRA's AutoTask seed
HELDOUT_TRAIN_EXAMPLES = 1000
TRAIN_HOLDOUT_TASKS = ("sst2", "qnli", "qqp")  # SoRA's large_data_without_all_splits


def heldout_indices(n: int, n_select: int) -> tuple[list[int], list[int]]:
    """(selection, rest): indices of a split of ``n`` rows, the first ``n_select`` of the fixed permutation."""
    if not 0 < n_select < n:
        raise DataError(f"cannot hold {n_select} of {n} examples out: both parts need at least one")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(HELDOUT_SEED)).tolist()
    return sorted(order[:n_select]), sorted(order[n_select:])


def holds_out_training_examples(task: TaskSpec) -> bool:
    """heldout: True when the task's selection split comes from its training set, not its validation set."""
    return task.name in TRAIN_HOLDOUT_TASKS
