"""Gradient clipping as a Trainer callback, so that AFLoRA's freezer can score raw gradients.

The HF Trainer clips gradients before ``on_pre_optimizer_step``, but AFLoRA's sensitivity is the
gradient before clipping (docs/method.md, "The freezing score"; the reference code scores right
after ``backward``). Train with ``TrainingArguments(max_grad_norm=0)`` and pass
``[AFLoraFreezer(...), ClipGradNormCallback(c)]`` in that order: callbacks run in list order, so
the freezer scores first and the clip follows, before ``optimizer.step()``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments


class ClipGradNormCallback(TrainerCallback):
    """Clip the global gradient norm of ``model``'s parameters in ``on_pre_optimizer_step``.

    Under DDP the gradients are already all-reduced at that point, so every rank clips alike. Not
    for FSDP/DeepSpeed, whose sharded gradients need the Trainer's own clipping.
    """

    def __init__(self, model: nn.Module, max_norm: float):
        if max_norm <= 0:
            raise ValueError(f"max_norm must be positive, got {max_norm!r}")
        self.model = model
        self.max_norm = float(max_norm)
        # Pre-clip norm of the last step, kept as a tensor: converting it would sync the GPU each step.
        self.last_norm: torch.Tensor | None = None

    def on_pre_optimizer_step(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        params = [p for p in self.model.parameters() if p.grad is not None]
        if params:
            self.last_norm = torch.nn.utils.clip_grad_norm_(params, self.max_norm)
