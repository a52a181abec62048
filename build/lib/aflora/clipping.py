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

    ``model=None`` clips the model the Trainer passes to its callbacks. ``max_norm=math.inf``
    measures the norm without clipping (the gradients are multiplied by 1). Under DDP the gradients
    are already all-reduced at that point, so every rank clips alike. Not for FSDP/DeepSpeed, whose
    sharded gradients need the Trainer's own clipping.
    """

    def __init__(self, model: nn.Module | None, max_norm: float):
        if max_norm <= 0:
            raise ValueError(f"max_norm must be positive, got {max_norm!r}")
        self.model = model
        self.max_norm = float(max_norm)
        # Pre-clip norm of the last step, kept as a tensor: converting it would sync the GPU each step.
        self.last_norm: torch.Tensor | None = None

    def clip(self, model: nn.Module) -> torch.Tensor | None:
        """Clip the gradients of ``model``'s parameters; their global norm before clipping, None
        when no parameter has a gradient."""
        params = [p for p in model.parameters() if p.grad is not None]
        if not params:
            return None
        self.last_norm = torch.nn.utils.clip_grad_norm_(params, self.max_norm)
        return self.last_norm

    def on_pre_optimizer_step(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        self.clip(self.model if self.model is not None else kwargs["model"])
