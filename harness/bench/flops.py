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

A training step (``training_macs_per_token``, the numerator of the bench's MFU column) counts, per
token of the batch actually run (``batch x seq``, padding included), on the same linears:
- forward: the MACs above;
- backward, input gradients: the same again, every linear (backbone and adapter path) once, as if
  the gradient flowed down to the embeddings (it does in every row but the layer-0 q, k, v of an
  adapter that leaves them out: under 1 % of a step);
- backward, weight gradients: in·out for every trainable matrix that acts as a linear map (a
  trainable backbone weight; an adapter's trainable A (r, in) or B (out, r)). Frozen matrices
  (LoRA's W0, ELoRA/VeRA's A and B, AFLoRA's frozen projections) cost none; vectors (d, b, biases,
  AdaLoRA's singular values, SoRA's gate) are elementwise and not counted.
One MAC is two FLOPs. These are the model's FLOPs, not what an implementation runs: AFLoRA's folded
frozen adapter (``aflora/folded.py``) is counted as the rank-r path it replaces.
"""

from __future__ import annotations

from peft.tuners.tuners_utils import BaseTunerLayer
from torch import nn

from harness.execution.params import is_head_param

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


def training_macs_per_token(model: nn.Module) -> dict[str, int]:
    """{"forward", "input_grad", "weight_grad", "total"} MACs per token of one training step."""
    forward = linear_macs_per_token(model)["total"]
    weight_grad = 0
    adapter_owners: list[str] = []
    for name, module in model.named_modules():
        if is_head_param(name, PER_SEQUENCE):
            continue
        if isinstance(module, BaseTunerLayer):
            adapter_owners.append(name + ".")
            weight_grad += sum(_matrix_macs(p) for n, p in module.named_parameters() if not n.startswith("base_layer"))
        elif isinstance(module, nn.Linear) and not _inside_adapter(name, adapter_owners):
            weight_grad += _matrix_macs(module.weight)
    return {"forward": forward, "input_grad": forward, "weight_grad": weight_grad, "total": 2 * forward + weight_grad}


def _matrix_macs(param: nn.Parameter) -> int:
    """A trainable matrix's weight-gradient MACs per token: its size (in·out); 0 for vectors and frozen ones."""
    return param.numel() if param.requires_grad and param.dim() == 2 and min(param.shape) > 1 else 0


def _inside_adapter(name: str, owners: list[str]) -> bool:
    """A linear under a tuner layer is its adapter path unless it is the wrapped ``base_layer``."""
    for owner in owners:
        if name.startswith(owner):
            return not name[len(owner) :].startswith("base_layer")
    return False
