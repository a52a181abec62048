"""Each epoch's validation predictions, kept in the run directory (``train.keep_predictions``).

    <run_dir>/epoch_predictions/<split>/labels.npy       the split's references, once
    <run_dir>/epoch_predictions/<split>/epoch<NN>.npy    class ids (classification) or scores (regression)

``<split>`` is every evaluated set (``validation``; under ``data.protocol=heldout`` also
``selection``, the half the epoch is chosen on). A report can then score any choice of epoch on any
part of the validation split without retraining (harness/report/protocols.py). The files are small:
one number per validation example and epoch. A resumed run writes the epochs after its checkpoint
again, with the same values (exact resume), so a file is only ever replaced whole. The Trainer that
writes them is harness/execution/prediction_keeping.py's; this module, numpy alone, is the layout.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

PREDICTIONS_DIR = "epoch_predictions"  # apart from predict's GLUE server files (predictions/)
LABELS_FILE = "labels.npy"


def epoch_file(epoch: int) -> str:
    return f"epoch{epoch:02d}.npy"


def save_array_atomic(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.save(f, array, allow_pickle=False)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@dataclass(frozen=True)
class SplitPredictions:
    """One evaluated set's references and each epoch's predictions, as a run kept them."""

    labels: np.ndarray
    by_epoch: dict[int, np.ndarray]


def read_predictions(run_dir: Path) -> dict[str, SplitPredictions]:
    """Every split a run kept predictions of; {} for a run without ``epoch_predictions/``."""
    out = {}
    root = Path(run_dir) / PREDICTIONS_DIR
    for split_dir in sorted(p for p in root.glob("*") if p.is_dir()):
        labels = np.load(split_dir / LABELS_FILE, allow_pickle=False)
        by_epoch = {}
        for path in sorted(split_dir.glob("epoch*.npy")):
            array = np.load(path, allow_pickle=False)
            if array.shape != labels.shape:
                raise ValueError(f"{path}: {array.shape[0]} predictions for {labels.shape[0]} references")
            by_epoch[int(path.stem.removeprefix("epoch"))] = array
        out[split_dir.name] = SplitPredictions(labels=labels, by_epoch=by_epoch)
    return out
