"""Gradient clipping as a callback, and a guard against non-finite gradients.

The Trainer clips before ``on_pre_optimizer_step``, so a callback there sees clipped gradients.
AFLoRA's freezing score needs the raw ones (docs/method.md, "The freezing score"), so the harness turns the Trainer's
clipping off (``max_grad_norm=0``) and clips here instead, after every method callback has run.
"""

from __future__ import annotations

import math

import torch
from transformers import TrainerCallback


class NonFiniteGradientError(RuntimeError):
    """The loss or its gradient became NaN/inf: training on from here would be garbage."""


class ClipAndCheckGradients(TrainerCallback):
    def __init__(self, max_norm: float):
        self.max_norm = max_norm

    def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
        params = [p for p in model.parameters() if p.grad is not None]
        if not params:
            return
        max_norm = self.max_norm if self.max_norm > 0 else math.inf
        norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
        if not torch.isfinite(norm):
            raise NonFiniteGradientError(
                f"non-finite gradient norm ({norm.item()}) at optimizer step {state.global_step + 1}: "
                "the loss diverged (try a lower learning rate)"
            )
