"""Training time per epoch, evaluation excluded, kept across a resume.

The Trainer's ``train_runtime`` includes the evaluations and restarts at zero on resume; the
paper's runtime comparison is about training, so the epochs are timed here instead
(``on_epoch_end`` fires before the epoch's evaluation).
"""

from __future__ import annotations

import time

from harness.checkpoints import JsonStateCallback


class EpochTimer(JsonStateCallback):
    state_file = "epoch_timer.json"

    def __init__(self) -> None:
        self.seconds = 0.0  # training seconds over all epochs run so far
        self.epochs = 0.0  # epochs those seconds cover (a resumed epoch counts its remainder)
        self._start: float | None = None
        self._start_epoch = 0.0

    def on_epoch_begin(self, args, state, control, **kwargs):
        self._start = time.perf_counter()
        self._start_epoch = state.epoch or 0.0

    def on_epoch_end(self, args, state, control, **kwargs):
        if self._start is not None:
            self.seconds += time.perf_counter() - self._start
            self.epochs += (state.epoch or 0.0) - self._start_epoch
            self._start = None

    def state_dict(self) -> dict:
        return {"seconds": self.seconds, "epochs": self.epochs}

    def load_state_dict(self, saved: dict) -> None:
        self.seconds, self.epochs = saved["seconds"], saved["epochs"]
