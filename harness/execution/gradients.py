"""Gradient clipping for every method, and a guard against non-finite gradients.

The Trainer clips before ``on_pre_optimizer_step``, so a callback there sees clipped gradients.
AFLoRA's freezing score needs the raw ones (docs/method.md, "The freezing score"), so the harness turns the Trainer's
clipping off (``max_grad_norm=0``) and clips here instead, after every method callback has run:
one clipping for every method, the same global-norm clip as the Trainer's.
"""

from __future__ import annotations

import math

import torch
from transformers import TrainerCallback


class NonFiniteGradientError(RuntimeError):
    """The loss or its gradient became NaN/inf: training on from here would be garbage."""


class ClipAndCheckGradients(TrainerCallback):
    """Clips the gradients of the model the Trainer trains at ``max_norm`` (<= 0: no clipping, the
    norm is still measured) and stops the run when their norm is not finite."""

    def __init__(self, max_norm: float):
        self.max_norm = float(max_norm) if max_norm > 0 else math.inf  # inf: the gradients times 1
        # Pre-clip norm of the last step, kept as a tensor: converting it would sync the GPU each step.
        self.last_norm: torch.Tensor | None = None

    def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
        params = [p for p in model.parameters() if p.grad is not None]
        if not params:
            return
        self.last_norm = torch.nn.utils.clip_grad_norm_(params, self.max_norm)
        if not torch.isfinite(self.last_norm):
            raise NonFiniteGradientError(
                f"non-finite gradient norm ({self.last_norm.item()}) at optimizer step {state.global_step + 1}: "
                "the loss diverged (try a lower learning rate)"
            )
