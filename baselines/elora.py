"""ELoRA (Kopiczko et al.; the AFLoRA paper's baseline) as the AFLoRA reference code runs it.

The AFLoRA path h = W0 x + b * (B (d * (A x))) with r = 1024 and the projections A, B frozen at
their random init from step 0 (``trainable_projections="none"``), no freezer: only d (starts at
0.1) and b (starts at 0) train, 156,672 parameters on DeBERTaV3-base (docs/method.md, "What is reported"). Each module
keeps its own random A and B, drawn from the global RNG the harness seeds; VeRA (``baselines.vera``)
is the variant with one pair shared across layers.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from peft import get_peft_model

from aflora import AFLoraConfig, AFLoraLayer
from baselines.vera import check_wrapped_modules
from harness.errors import ConfigError
from harness.methods import BuildContext, MethodBuild, register_method

logger = logging.getLogger(__name__)


@register_method("elora")
def build_elora(model: torch.nn.Module, cfg: Any, ctx: BuildContext) -> MethodBuild:
    if cfg.r <= 0:
        raise ConfigError(f"elora: method.r = {cfg.r} must be positive")
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
