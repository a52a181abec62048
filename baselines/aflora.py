"""Harness builder for ``method=aflora`` and its variants: wraps the backbone and returns the freezer.

The method itself is the ``aflora`` package (a PEFT method and a Trainer callback that know
nothing of this harness); this module puts it under the harness's method contract, beside the
other methods' builders.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from omegaconf import MISSING
from peft import get_peft_model
from torch import nn

from aflora import AFLoraConfig, AFLoraFreezer
from aflora.config import TRAINABLE_PROJECTIONS
from aflora.freezing import RULES
from aflora.scoring import SENSITIVITIES
from harness.config.lengths import Length
from harness.config.schema import check_choice, check_count, check_range
from harness.core.errors import ConfigError
from harness.execution.methods import BuildContext, MethodBuild, MethodCallback, MethodSettings, register_method

logger = logging.getLogger(__name__)


@dataclass
class AFLoraSettings(MethodSettings):
    """``conf/method/aflora.yaml`` (its comments say where each value comes from)."""

    r: int = MISSING
    trainable_projections: str = MISSING
    d_init: float = MISSING
    b_init: float = MISSING
    freeze_rule: str = MISSING
    sensitivity: str = MISSING
    beta1: float = MISSING
    beta2: float = MISSING
    window: int = MISSING
    freezing: bool = MISSING
    last_update: bool = MISSING
    # The freezing schedule's two lengths, each with its unit: '1 epoch', '600 steps', '5%' (harness/config/lengths.py).
    t_i: str = MISSING
    t_f: str = MISSING

    def __post_init__(self) -> None:
        check_count("method.r", self.r, 1, 65_536)
        check_choice("method.trainable_projections", self.trainable_projections, TRAINABLE_PROJECTIONS)
        check_choice("method.freeze_rule", self.freeze_rule, RULES)
        check_choice("method.sensitivity", self.sensitivity, SENSITIVITIES)
        check_range("method.beta1", self.beta1, 0, 1, high_open=True)
        check_range("method.beta2", self.beta2, 0, 1, high_open=True)
        check_count("method.window", self.window, 1, 1_000_000)
        self.warmup, self.final  # noqa: B018 (both lengths parse: checked here, before the run)

    @property
    def warmup(self) -> Length:
        """``t_i``, the warm-up without freezing."""
        return Length.parse("method.t_i", self.t_i)

    @property
    def final(self) -> Length:
        """``t_f``, the final phase with every projection frozen."""
        return Length.parse("method.t_f", self.t_f)


class HarnessAFLoraFreezer(AFLoraFreezer, MethodCallback):
    """``AFLoraFreezer`` as a harness method callback: its own ``load_state``, ``result_fields`` and
    ``log_scalars`` (listed first in the MRO) are the contract's hooks; it saves its state next to
    each checkpoint in its ``on_save``."""


@register_method("aflora", settings=AFLoraSettings)
def build_aflora(model: nn.Module, cfg: AFLoraSettings, ctx: BuildContext) -> MethodBuild:
    """AFLoRA adapters on ``ctx.target_modules`` plus an ``AFLoraFreezer`` over ``ctx.total_steps``."""
    # Truncated (int()): the reference code's convention, which every AFLoRA run so far followed.
    t_i = ctx.steps(cfg.warmup, rounding="truncate")
    t_f = ctx.steps(cfg.final, rounding="truncate")
    if t_i + t_f >= ctx.total_steps:
        raise ConfigError(
            f"method.t_i + method.t_f must be below the run's {ctx.total_steps} optimizer steps "
            f"({ctx.steps_per_epoch} per epoch), got t_i={cfg.warmup} ({t_i} steps) + t_f={cfg.final} ({t_f} steps): "
            "set shorter lengths for this run, e.g. method.t_i=5% method.t_f=70%"
        )
    config = AFLoraConfig(
        r=cfg.r,
        target_modules=list(ctx.target_modules),
        trainable_projections=cfg.trainable_projections,
        d_init=cfg.d_init,
        b_init=cfg.b_init,
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
        rule=cfg.freeze_rule,
        sensitivity=cfg.sensitivity,
        beta1=cfg.beta1,
        beta2=cfg.beta2,
        window=cfg.window,
        head_modules=list(ctx.head_modules),
        last_update=cfg.last_update,
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
