"""VeRA (Kopiczko et al., ICLR 2024) through peft's ``VeraConfig``.

The same path as ELoRA (h = W0 x + b * (B (d * (A x)))), with one random pair (A, B) shared by
every adapted layer: peft draws it once, sized for the largest layer, and slices it per layer.
Only d (length r) and b (length out) train, so with r = 1024 on DeBERTaV3-base's 72 modules the
count is the same 156,672 as ELoRA's (docs/method.md, "What is reported").
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from dataclasses import dataclass
from typing import Optional

import torch
from omegaconf import MISSING
from peft import VeraConfig, get_peft_model
from peft.tuners.vera import VeraLayer

from harness.config.schema import MAX_SEED, check_count, check_range
from harness.core.errors import ConfigError
from harness.execution.methods import BuildContext, MethodBuild, MethodSettings, register_method

logger = logging.getLogger(__name__)

_LAYER_INDEX = re.compile(r"\.layer\.(\d+)\.")


def check_wrapped_modules(model: torch.nn.Module, layer_cls: type, target_modules: list[str]) -> list[str]:
    """Names of the modules wrapped by ``layer_cls``; raises unless every encoder layer has
    exactly one per target type and nothing outside the encoder layers is wrapped.

    peft matches a target as a name suffix, so a bare ``dense`` would also take ``pooler.dense``
    (and a too-broad suffix could take more than the six types): check what actually happened.
    """
    wrapped = [name for name, module in model.named_modules() if isinstance(module, layer_cls)]
    per_layer: Counter[int] = Counter()
    stray = []
    for name in wrapped:
        match = _LAYER_INDEX.search(name)
        if match is None:
            stray.append(name)
        else:
            per_layer[int(match.group(1))] += 1
    n_layers = model.config.num_hidden_layers if hasattr(model, "config") else len(per_layer)
    expected = len(set(target_modules))
    wrong = {i: per_layer.get(i, 0) for i in range(n_layers) if per_layer.get(i, 0) != expected}
    if stray or wrong or not wrapped:
        raise ConfigError(
            f"target_modules {list(target_modules)} wrapped {len(wrapped)} modules, expected {expected} in each of "
            f"{n_layers} layers; outside the encoder layers: {stray}; layers with another count: {wrong}. "
            "Use full suffixes (attention.output.dense, intermediate.dense, output.dense), not a bare 'dense'."
        )
    return wrapped


@dataclass
class VeraSettings(MethodSettings):
    """``conf/method/vera.yaml``."""

    r: int = MISSING
    d_initial: float = MISSING
    dropout: float = MISSING
    projection_prng_key: Optional[int] = MISSING  # noqa: UP045 (omegaconf reads Optional)

    def __post_init__(self) -> None:
        check_count("method.r", self.r, 1, 65_536)
        check_range("method.dropout", self.dropout, 0, 1, high_open=True)
        check_count("method.projection_prng_key", self.projection_prng_key, 0, MAX_SEED, nullable=True)


@register_method("vera", settings=VeraSettings)
def build_vera(model: torch.nn.Module, cfg: VeraSettings, ctx: BuildContext) -> MethodBuild:
    # peft's default key is 0 for every run, so all seeds would share one draw of the random
    # projections and seed-to-seed spread would leave that draw out; ELoRA/AFLoRA/LoRA draw
    # theirs from the run seed. The key is stored in adapter_config.json, and save_projection
    # keeps the matrices in the checkpoint as well, so a saved adapter reloads exactly.
    key = ctx.seed if cfg.projection_prng_key is None else cfg.projection_prng_key
    config = VeraConfig(
        task_type="SEQ_CLS",
        r=cfg.r,
        target_modules=list(ctx.target_modules),
        modules_to_save=list(ctx.head_modules),
        projection_prng_key=int(key),
        save_projection=True,
        d_initial=cfg.d_initial,
        vera_dropout=cfg.dropout,
    )
    peft_model = get_peft_model(model, config)
    wrapped = check_wrapped_modules(peft_model.base_model.model, VeraLayer, ctx.target_modules)
    logger.info("vera: r=%d on %d modules, projection_prng_key=%d", cfg.r, len(wrapped), key)
    return MethodBuild(model=peft_model, callbacks=[])
