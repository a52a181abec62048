"""Harness builder for ``method=aflora``: wraps the backbone and returns the freezing callback.

Kept apart from the package's ``__init__`` so that ``import aflora`` does not need the harness.
"""

from __future__ import annotations

import logging
from typing import Any

from peft import get_peft_model
from torch import nn

from harness.methods import BuildContext, MethodBuild, register_method

from .config import AFLoraConfig
from .freezing import AFLoraFreezer

logger = logging.getLogger(__name__)


def _steps(cfg: Any, name: str, ctx: BuildContext) -> int:
    """A schedule length in optimizer steps: ``<name>_steps`` if set, else ``<name>_epochs`` x steps
    per epoch (the reference code's unit, used by the DeBERTaV3 recipes), else ``<name>_frac`` x
    total steps (the same shape for a run of any length: MiniLM recipes, debug runs)."""
    if cfg.get(f"{name}_steps") is not None:
        return int(cfg[f"{name}_steps"])
    if cfg.get(f"{name}_epochs") is not None:
        return int(cfg[f"{name}_epochs"] * ctx.steps_per_epoch)
    fraction = cfg.get(f"{name}_frac")
    if fraction is None or not 0 <= fraction < 1:
        raise ValueError(f"method.{name}_frac must be in [0, 1) when {name}_steps and {name}_epochs are null")
    return int(fraction * ctx.total_steps)


@register_method("aflora")
def build_aflora(model: nn.Module, cfg: Any, ctx: BuildContext) -> MethodBuild:
    """AFLoRA adapters on ``ctx.target_modules`` plus an ``AFLoraFreezer`` over ``ctx.total_steps``."""
    t_i = _steps(cfg, "t_i", ctx)
    t_f = _steps(cfg, "t_f", ctx)
    if t_i + t_f >= ctx.total_steps:
        raise ValueError(
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
    freezer = AFLoraFreezer(
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
