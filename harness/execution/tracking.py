"""Experiment tracking through the Trainer's own integrations (``train.report_to``).

``none`` (the default) reports nowhere; ``tensorboard``, ``wandb``, ``mlflow`` (or a list of them,
or any other integration transformers knows) are handed to the Trainer, which logs the training
loss, learning rate, gradient norm and every evaluation. Their files go under the run directory:
TensorBoard's by the Trainer's default (``<run_dir>/runs/<date>_<host>/``), W&B's and MLflow's
because ``WANDB_DIR`` and ``MLFLOW_TRACKING_URI`` are pointed there unless the user set them.

Each ``MethodCallback`` adds scalars of its own to every training log line with its
``log_scalars()`` (the harness's trainable-parameter count, AFLoRA's frozen projections), through
``Trainer.log``, so every integration records them alongside the loss.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

from transformers import Trainer
from transformers.integrations.integration_utils import INTEGRATION_TO_CALLBACK

from harness.core.errors import ConfigError
from harness.execution.methods import MethodCallback

# integration -> the package it needs (installed by the user: none of them is a dependency)
PACKAGES = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow"}
_RUN_DIR_ENV = {"wandb": ("WANDB_DIR", "{}"), "mlflow": ("MLFLOW_TRACKING_URI", "file:{}/mlruns")}
_set_by_harness: set[str] = set()  # variables this process pointed at a run directory (re-pointed per run)


def report_targets(report_to: Any, run_dir: str | Path) -> list[str]:
    """The integrations to report to, checked; points their output at ``run_dir``."""
    names = [report_to] if isinstance(report_to, str) else list(report_to or [])
    if not names or names == ["none"]:
        return ["none"]
    known = sorted(INTEGRATION_TO_CALLBACK)
    unknown = [n for n in names if n not in INTEGRATION_TO_CALLBACK]
    if unknown:
        raise ConfigError(f"train.report_to: unknown {unknown}; known: ['none', {', '.join(map(repr, known))}]")
    missing = [PACKAGES[n] for n in names if n in PACKAGES and importlib.util.find_spec(PACKAGES[n]) is None]
    if missing:
        raise ConfigError(f"train.report_to={names} needs {missing} installed (pip install {' '.join(missing)})")
    for name in names:
        if name in _RUN_DIR_ENV:
            variable, value = _RUN_DIR_ENV[name]
            if variable not in os.environ or variable in _set_by_harness:
                os.environ[variable] = value.format(Path(run_dir).resolve())
                _set_by_harness.add(variable)
    return names


class ScalarLoggingTrainer(Trainer):
    """The Trainer, with the ``MethodCallback``s' ``log_scalars()`` added to each training log
    line (the Trainer's own callbacks, progress and integrations, have none)."""

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs:  # a training log line, not an evaluation or the final summary
            for callback in self.callback_handler.callbacks:
                if isinstance(callback, MethodCallback):
                    logs.update(callback.log_scalars())
        super().log(logs, start_time)
