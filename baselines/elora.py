"""ELoRA (Kopiczko et al.; the AFLoRA paper's baseline) as the AFLoRA reference code runs it.

The AFLoRA path h = W0 x + b * (B (d * (A x))) with r = 1024 and the projections A, B frozen at
their random init from step 0 (``trainable_projections="none"``), no freezer: only d (starts at
0.1) and b (starts at 0) train, 156,672 parameters on DeBERTaV3-base (docs/method.md, "What is reported"). Each module
keeps its own random A and B, drawn from the global RNG the harness seeds; VeRA (``baselines.vera``)
is the variant with one pair shared across layers.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
from omegaconf import MISSING
from peft import get_peft_model

from aflora import AFLoraConfig, AFLoraLayer
from baselines.vera import check_wrapped_modules
from harness.config.schema import check_count
from harness.execution.methods import BuildContext, MethodBuild, MethodSettings, register_method

logger = logging.getLogger(__name__)


@dataclass
class EloraSettings(MethodSettings):
    """``conf/method/elora.yaml``."""

    r: int = MISSING
    d_init: float = MISSING
    b_init: float = MISSING

    def __post_init__(self) -> None:
        check_count("method.r", self.r, 1, 65_536)


@register_method("elora", settings=EloraSettings)
def build_elora(model: torch.nn.Module, cfg: EloraSettings, ctx: BuildContext) -> MethodBuild:
    config = AFLoraConfig(
        task_type="SEQ_CLS",
        r=cfg.r,
        target_modules=list(ctx.target_modules),
        modules_to_save=list(ctx.head_modules),
        trainable_projections="none",  # A and B stay at their random init: that is ELoRA
        d_init=cfg.d_init,
        b_init=cfg.b_init,
    )
    peft_model = get_peft_model(model, config)
    wrapped = check_wrapped_modules(peft_model.base_model.model, AFLoraLayer, ctx.target_modules)
    thawed = [n for n, p in peft_model.named_parameters() if p.requires_grad and ("aflora_A" in n or "aflora_B" in n)]
    if thawed:
        raise RuntimeError(f"elora: random projections must stay frozen, but these train: {thawed[:4]}")
    logger.info("elora: r=%d on %d modules, projections frozen", cfg.r, len(wrapped))
    return MethodBuild(model=peft_model, callbacks=[])
