"""How a row is run: precision and the speed levers, as one ``+``-joined word (``variants=fp32,bf16+eager``).

- ``fp32`` | ``bf16``: the forward in float32, or under bfloat16 autocast (``train.precision``);
- ``eager``: the model's attention in plain matmul + softmax ops instead of torch's fused
  ``scaled_dot_product_attention`` (``train.attn_implementation=eager``, built through the run's
  own config);
- ``foreach`` | ``fused``: ``torch.optim.AdamW``'s multi-tensor or fused kernel instead of its
  per-parameter loop (the torch default on CPU); bench-only, not a run option;
- ``compile``: the model under ``torch.compile`` (inductor); bench-only, not a run option.

The first variant of a bench is its baseline: every speed-up is a paired ratio to it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

PRECISIONS = ("fp32", "bf16")
LEVERS = ("eager", "foreach", "fused", "compile")


@dataclass(frozen=True)
class Variant:
    precision: str = "fp32"
    levers: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return "+".join((self.precision, *self.levers))

    @property
    def train_overrides(self) -> dict[str, str]:
        """The run-config keys this variant sets (``cfg.train``)."""
        return {"attn_implementation": "eager"} if "eager" in self.levers else {}


def parse_variant(text: str) -> Variant:
    """``bf16+eager`` -> Variant("bf16", ("eager",)); one line naming the bad word otherwise."""
    words = text.split("+")
    precision, levers = words[0], tuple(words[1:])
    if precision not in PRECISIONS:
        raise ValueError(f"variant {text!r}: starts with one of {list(PRECISIONS)}, not {precision!r}")
    for lever in levers:
        if lever not in LEVERS:
            raise ValueError(f"variant {text!r}: unknown lever {lever!r}; levers: {', '.join(LEVERS)}")
    if {"foreach", "fused"} <= set(levers):
        raise ValueError(f"variant {text!r}: foreach and fused exclude each other")
    return Variant(precision, levers)


def adapt_optimizer(optimizer: torch.optim.Optimizer, variant: Variant) -> torch.optim.Optimizer:
    """The same AdamW groups with the variant's kernel (before any step: the state is empty)."""
    kernel = next((lever for lever in variant.levers if lever in ("foreach", "fused")), None)
    if kernel is None:
        return optimizer
    if type(optimizer) is not torch.optim.AdamW:
        raise ValueError(f"lever {kernel!r} needs torch.optim.AdamW, the row has {type(optimizer).__name__}")
    groups = [{k: v for k, v in g.items() if k in ("params", "lr", "weight_decay")} for g in optimizer.param_groups]
    return torch.optim.AdamW(groups, **{kernel: True})
