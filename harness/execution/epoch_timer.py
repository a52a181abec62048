"""Training time per epoch, evaluation excluded, kept across a resume: wall and process CPU time.

The Trainer's ``train_runtime`` includes the evaluations and restarts at zero on resume; the
paper's runtime comparison is about training, so the epochs are timed here instead
(``on_epoch_end`` fires before the epoch's evaluation). Wall time on a shared machine measures
the neighbours too; the process's CPU time (all its threads) does not, so CPU runs are compared
in CPU time and GPU runs in wall time.
"""

from __future__ import annotations

import time

from harness.storage.checkpoints import JsonStateCallback


class EpochTimer(JsonStateCallback):
    state_file = "epoch_timer.json"

    def __init__(self) -> None:
        self.seconds = 0.0  # training seconds (wall) over all epochs run so far
        self.cpu_seconds: float | None = 0.0  # the process's CPU seconds over them; None once unknown
        self.epochs = 0.0  # epochs those seconds cover (a resumed epoch counts its remainder)
        self._start: tuple[float, float] | None = None  # (wall, CPU) clock at the epoch's start
        self._start_epoch = 0.0

    def on_epoch_begin(self, args, state, control, **kwargs):
        self._start = (time.perf_counter(), time.process_time())
        self._start_epoch = state.epoch or 0.0

    def on_epoch_end(self, args, state, control, **kwargs):
        if self._start is not None:
            wall, cpu = self._start
            self.seconds += time.perf_counter() - wall
            if self.cpu_seconds is not None:
                self.cpu_seconds += time.process_time() - cpu
            self.epochs += (state.epoch or 0.0) - self._start_epoch
            self._start = None

    def state_dict(self) -> dict:
        return {"seconds": self.seconds, "cpu_seconds": self.cpu_seconds, "epochs": self.epochs}

    def load_state_dict(self, saved: dict) -> None:
        # A checkpoint written before CPU time was recorded leaves the CPU total unknown.
        self.seconds, self.epochs = saved["seconds"], saved["epochs"]
        self.cpu_seconds = saved.get("cpu_seconds")
