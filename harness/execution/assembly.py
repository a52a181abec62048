"""One run put together from its config: model, method, parameter counter, callbacks, optimizer.

``harness.execution.experiment`` hands what ``assemble`` returns to the Trainer; the benchmark
(``harness/bench/rows.py``) steps it by hand. Both get the same model, method build, counter and
callback order, so a benchmark row costs what a run's step costs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import TrainerCallback

from harness.core.errors import ConfigError
from harness.execution.epoch_timer import EpochTimer
from harness.execution.gradients import ClipAndCheckGradients
from harness.execution.history import LogAtEpochEnd
from harness.execution.methods import (
    BuildContext,
    Builder,
    MethodBuild,
    MethodSettings,
    method_builder,
    method_settings,
)
from harness.execution.optim import build_optimizer
from harness.execution.params import TrainableParamTracker, count_parameters, trainable_counter
from harness.inputs.models import check_sequence_length, head_modules, load_model
from harness.inputs.tasks import TaskSpec
from harness.storage.best_weights import SaveBestWeights
from harness.storage.checkpoints import MarkCompleteCheckpoints
from harness.storage.model_card import run_facts


@dataclass
class Assembly:
    """The pieces of one run, before the Trainer (or the benchmark) drives them."""

    method: MethodBuild  # its model is the run's model
    context: BuildContext
    train_cfg: Any
    counts: dict[str, int]  # total / head / trainable parameters once the method is built
    counter: Callable[[nn.Module], int]  # trainable adapter parameters at a step, head excluded
    tracker: TrainableParamTracker
    timer: EpochTimer | None  # only in a run that has epochs (a run_dir)
    harness_callbacks: list[TrainerCallback]  # after the method's, in their order

    @property
    def model(self) -> nn.Module:
        return self.method.model

    @property
    def heads(self) -> list[str]:
        return self.context.head_modules

    @property
    def callbacks(self) -> list[TrainerCallback]:
        """In the Trainer's order: the method's first, so they see the raw gradients before the
        clipping callback runs; the harness's after them (the checkpoint marker last)."""
        return [*self.method.callbacks, *self.harness_callbacks]

    def build_optimizer(self) -> torch.optim.Optimizer:
        """The method's optimizer, else the harness's AdamW groups. On resume, build it once the
        callbacks' state is back: AFLoRA's freezer has then frozen what the checkpoint records,
        and the checkpoint's optimizer state holds only the parameters that were still training."""
        factory = self.method.optimizer or build_optimizer
        return factory(self.model, self.train_cfg, self.heads)


def build_method(builder: Builder, model: nn.Module, settings: MethodSettings, context: BuildContext) -> MethodBuild:
    try:
        return builder(model, settings, context)
    except ValueError as err:  # PEFT validates its configs with ValueError
        raise ConfigError(f"method {settings.name!r}: {err}") from err


def assemble(
    cfg: Any,
    task: TaskSpec,
    *,
    steps_per_epoch: int,
    total_steps: int,
    run_dir: Path | None = None,
    builder: Builder | None = None,
) -> Assembly:
    """Load the backbone and build ``cfg.method`` on it, with its counter and callbacks.

    ``run_dir``: where a Trainer run writes its checkpoints. With it come the callbacks of a run
    that has epochs and saves: the epoch timer, ``SaveBestWeights`` (``train.save_best``) and the
    checkpoint marker; without it (a benchmark row) only those every optimizer step drives.
    ``builder``: the method's builder; by default the one ``cfg.method`` names in the registry.
    """
    model = load_model(cfg.model, task, cfg.train.get("attn_implementation"))
    check_sequence_length(model, cfg.data.max_seq_length)
    context = BuildContext(
        target_modules=list(cfg.model.target_modules),
        head_modules=head_modules(cfg.model),
        total_steps=total_steps,
        steps_per_epoch=steps_per_epoch,
        seed=cfg.seed,
    )
    method = build_method(builder or method_builder(cfg.method), model, method_settings(cfg.method), context)
    counts = count_parameters(method.model, context.head_modules)
    counter = method.count_trainable or trainable_counter(method.model, context.head_modules)
    tracker = TrainableParamTracker(counter)
    timer = EpochTimer() if run_dir is not None else None
    harness_callbacks: list[TrainerCallback] = [ClipAndCheckGradients(cfg.train.max_grad_norm), tracker]
    if run_dir is not None:
        harness_callbacks += [timer, LogAtEpochEnd()]
        if cfg.train.save_best:  # the best epoch's weights, saved as it is evaluated (harness/storage/best_weights.py)
            harness_callbacks.append(SaveBestWeights(run_dir, task, run_facts(cfg, task, counts, run_dir), counter))
        # Last: a checkpoint counts as complete only once everything before it has saved.
        harness_callbacks.append(MarkCompleteCheckpoints())
    return Assembly(
        method=method,
        context=context,
        train_cfg=cfg.train,
        counts=counts,
        counter=counter,
        tracker=tracker,
        timer=timer,
        harness_callbacks=harness_callbacks,
    )
