"""The harness's Trainer with ``train.keep_predictions``: every evaluation's predictions written to
the run directory in the layout harness/storage/epoch_predictions.py reads."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from harness.execution.tracking import ScalarLoggingTrainer
from harness.inputs.metrics import to_predictions
from harness.inputs.tasks import TaskSpec
from harness.storage.epoch_predictions import LABELS_FILE, PREDICTIONS_DIR, epoch_file, save_array_atomic


class PredictionKeepingTrainer(ScalarLoggingTrainer):
    """The harness's Trainer, writing every evaluation's predictions under ``<run_dir>/epoch_predictions/``."""

    def __init__(self, *args, task: TaskSpec, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.task = task

    def evaluation_loop(self, dataloader, description, prediction_loss_only=None, ignore_keys=None, **kwargs):
        output = super().evaluation_loop(dataloader, description, prediction_loss_only, ignore_keys, **kwargs)
        prefix = kwargs.get("metric_key_prefix", "eval")
        if self.is_world_process_zero() and prefix.startswith("eval_") and self.state.epoch is not None:
            split = prefix.removeprefix("eval_")
            where = Path(self.args.output_dir) / PREDICTIONS_DIR / split
            labels = np.asarray(output.label_ids)
            save_array_atomic(where / LABELS_FILE, labels.astype(np.float32 if self.task.is_regression else np.int64))
            predictions = to_predictions(self.task, output.predictions)
            dtype = np.float32 if self.task.is_regression else np.int64
            save_array_atomic(where / epoch_file(round(self.state.epoch)), predictions.astype(dtype))
        return output
