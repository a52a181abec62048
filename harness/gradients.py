"""Gradient clipping for every method, and a guard against non-finite gradients.

The Trainer clips before ``on_pre_optimizer_step``, so a callback there sees clipped gradients.
AFLoRA's freezing score needs the raw ones (docs/method.md, "The freezing score"), so the harness turns the Trainer's
clipping off (``max_grad_norm=0``) and clips here instead, after every method callback has run,
with AFLoRA's own clipping callback (``aflora.ClipGradNormCallback``): one clipping for every method.
"""

from __future__ import annotations

import math

import torch

from aflora.clipping import ClipGradNormCallback


class NonFiniteGradientError(RuntimeError):
    """The loss or its gradient became NaN/inf: training on from here would be garbage."""


class ClipAndCheckGradients(ClipGradNormCallback):
    """Clips the gradients of the model the Trainer trains at ``max_norm`` (<= 0: no clipping, the
    norm is still measured) and stops the run when their norm is not finite."""

    def __init__(self, max_norm: float):
        super().__init__(None, max_norm if max_norm > 0 else math.inf)

    def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
        norm = self.clip(model)
        if norm is not None and not torch.isfinite(norm):
            raise NonFiniteGradientError(
                f"non-finite gradient norm ({norm.item()}) at optimizer step {state.global_step + 1}: "
                "the loss diverged (try a lower learning rate)"
            )
