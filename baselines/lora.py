"""LoRA through PEFT's LoraConfig: W0 + (alpha / r) * B A on the six linear types (docs/method.md, "Baselines")."""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import MISSING
from peft import LoraConfig, get_peft_model
from torch import nn

from harness.config.schema import check_count, check_range
from harness.execution.methods import BuildContext, MethodBuild, MethodSettings, register_method


@dataclass
class LoraSettings(MethodSettings):
    """``conf/method/lora.yaml``; SoRA's settings extend it."""

    r: int = MISSING
    alpha: int = MISSING  # peft's lora_alpha: the update is scaled by alpha / r
    dropout: float = MISSING

    def __post_init__(self) -> None:
        check_count("method.r", self.r, 1, 65_536)
        check_count("method.alpha", self.alpha, 1, 65_536)
        check_range("method.dropout", self.dropout, 0, 1, high_open=True)


def lora_config(cfg: LoraSettings, ctx: BuildContext) -> LoraConfig:
    return LoraConfig(
        task_type="SEQ_CLS",
        r=cfg.r,
        lora_alpha=cfg.alpha,
        lora_dropout=cfg.dropout,
        target_modules=list(ctx.target_modules),
        modules_to_save=list(ctx.head_modules),  # the classifier (and pooler if chosen) trains fully
    )


@register_method("lora", settings=LoraSettings)
def build_lora(model: nn.Module, cfg: LoraSettings, ctx: BuildContext) -> MethodBuild:
    return MethodBuild(model=get_peft_model(model, lora_config(cfg, ctx)))
