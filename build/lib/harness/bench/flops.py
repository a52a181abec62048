"""Forward linear-layer multiply-adds (MACs) per token: the paper's FLOPs measure (docs/method.md, "Published numbers").

Counted from the model itself, not from a table: every ``nn.Linear`` of the backbone contributes
in·out, and every PEFT adapter layer contributes its low-rank path r·in + r·out (down-projection
to r, up-projection back), whatever the method stores A and B as (LoRA: ``nn.Linear`` modules;
AdaLoRA, VeRA, AFLoRA/ELoRA: parameters or buffers). AdaLoRA's r is its initial rank: pruned
ranks are masked, not removed, so they still cost compute.

Left out, as in the paper's measure: attention score products (QKᵀ, AV), embeddings, layer
norms, and the elementwise scalings of the adapter paths (AFLoRA/ELoRA/VeRA's d: r and b: out
multiplies, LoRA's α/r: out multiplies per token and layer, under 0.1 % of the total). The head
(classifier, and the pooler) runs once per sequence, not per token, so it is left out too; so are
DeBERTa's projections of its relative-position embeddings, which do not scale with tokens.
"""

from __future__ import annotations

from peft.tuners.tuners_utils import BaseTunerLayer
from torch import nn

from harness.params import is_head_param

PER_SEQUENCE = ("classifier", "pooler")  # applied to one position per sequence: not per-token cost


def linear_macs_per_token(model: nn.Module) -> dict[str, int]:
    """{"base": backbone linears, "adapter": low-rank paths, "total": both} per token."""
    base = adapter = 0
    adapter_owners: list[str] = []  # tuner layers: their own nn.Linear children (LoRA's A, B) are the path
    for name, module in model.named_modules():
        if is_head_param(name, PER_SEQUENCE):
            continue
        if isinstance(module, BaseTunerLayer):
            adapter_owners.append(name + ".")
            for active in module.active_adapters:
                rank = module.r.get(active, 0) if hasattr(module, "r") else 0
                adapter += rank * (module.in_features + module.out_features)  # x -> (r,) -> (out,)
        elif isinstance(module, nn.Linear) and not _inside_adapter(name, adapter_owners):
            base += module.in_features * module.out_features
    return {"base": base, "adapter": adapter, "total": base + adapter}


def _inside_adapter(name: str, owners: list[str]) -> bool:
    """A linear under a tuner layer is its adapter path unless it is the wrapped ``base_layer``."""
    for owner in owners:
        if name.startswith(owner):
            return not name[len(owner) :].startswith("base_layer")
    return False
