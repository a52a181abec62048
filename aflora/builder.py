"""Harness builder for ``method=aflora``: wraps the backbone and returns the freezing callback.

Kept apart from the package's ``__init__`` so that ``import aflora`` does not need the harness:
``HarnessAFLoraFreezer``, the freezer under the harness's callback contract, is defined here for that reason.
"""

from __future__ import annotations

import logging
from typing import Any

from peft import get_peft_model
from torch import nn

from harness.errors import ConfigError
from harness.methods import BuildContext, MethodBuild, MethodCallback, register_method

from .config import AFLoraConfig
from .freezing import AFLoraFreezer

logger = logging.getLogger(__name__)


class HarnessAFLoraFreezer(AFLoraFreezer, MethodCallback):
    """``AFLoraFreezer`` as a harness method callback: its own ``load_state``, ``result_fields`` and
    ``log_scalars`` (listed first in the MRO) are the contract's hooks; it saves its state next to
    each checkpoint in its ``on_save``."""


@register_method("aflora")
def build_aflora(model: nn.Module, cfg: Any, ctx: BuildContext) -> MethodBuild:
    """AFLoRA adapters on ``ctx.target_modules`` plus an ``AFLoraFreezer`` over ``ctx.total_steps``."""
    # Truncated (int()): the reference code's convention, which every AFLoRA run so far followed.
    t_i = ctx.steps(cfg, "t_i", rounding="truncate")
    t_f = ctx.steps(cfg, "t_f", rounding="truncate")
    if t_i + t_f >= ctx.total_steps:
        raise ConfigError(
            f"method.t_i + method.t_f must be below the run's {ctx.total_steps} optimizer steps "
            f"({ctx.steps_per_epoch} per epoch), got t_i={t_i} + t_f={t_f} steps: set "
            "method.t_i_/t_f_ steps, epochs or frac for this run length"
        )
    config = AFLoraConfig(
        r=int(cfg.r),
        target_modules=list(ctx.target_modules),
        trainable_projections=str(cfg.trainable_projections),
        d_init=float(cfg.d_init),
        b_init=float(cfg.b_init),
        task_type="SEQ_CLS",
        modules_to_save=list(ctx.head_modules),
    )
    peft_model = get_peft_model(model, config)
    if not cfg.freezing:  # ablation: the trainable projections train to the end
        logger.info("AFLoRA without freezing: %s projections train for the whole run", cfg.trainable_projections)
        return MethodBuild(model=peft_model)
    freezer = HarnessAFLoraFreezer(
        peft_model,
        total_steps=ctx.total_steps,
        t_i=t_i,
        t_f=t_f,
        rule=str(cfg.freeze_rule),
        sensitivity=str(cfg.sensitivity),
        beta1=float(cfg.beta1),
        beta2=float(cfg.beta2),
        window=int(cfg.window),
        head_modules=list(ctx.head_modules),
        last_update=bool(cfg.last_update),
    )
    logger.info(
        "AFLoRA: %d projection matrices, %d trainable at start; freezing schedule T=%d t_i=%d t_f=%d",
        len(freezer.freeze_steps),
        sum(s is None for s in freezer.freeze_steps.values()),
        ctx.total_steps,
        t_i,
        t_f,
    )
    return MethodBuild(model=peft_model, callbacks=[freezer])
