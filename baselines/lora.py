"""LoRA through PEFT's LoraConfig: W0 + (alpha / r) * B A on the six linear types (docs/method.md, "Baselines")."""

from __future__ import annotations

from typing import Any

from peft import LoraConfig, get_peft_model
from torch import nn

from harness.errors import ConfigError
from harness.methods import BuildContext, MethodBuild, register_method


def lora_config(cfg: Any, ctx: BuildContext) -> LoraConfig:
    if cfg.r <= 0:
        raise ConfigError(f"method.r must be positive, got {cfg.r}")
    if cfg.alpha <= 0:
        raise ConfigError(f"method.alpha must be positive, got {cfg.alpha}")
    return LoraConfig(
        task_type="SEQ_CLS",
        r=cfg.r,
        lora_alpha=cfg.alpha,
        lora_dropout=cfg.dropout,
        target_modules=list(ctx.target_modules),
        modules_to_save=list(ctx.head_modules),  # the classifier (and pooler if chosen) trains fully
    )


@register_method("lora")
def build_lora(model: nn.Module, cfg: Any, ctx: BuildContext) -> MethodBuild:
    return MethodBuild(model=get_peft_model(model, lora_config(cfg, ctx)))
