"""The AFLoRA adapter layer: ``h = W0 x + bias + b * (B (d * (A x)))`` (docs/method.md, "The adapter").

Frozen projections. ``frozen_peft_weight_names[adapter]`` names the frozen projections of each
adapter (``"aflora_A"``, ``"aflora_B"``), as PEFT's own tuners declare weights that must stay
frozen: one dict per layer, changed in place, which peft consults whenever it switches gradients
on (``set_adapter``, ``set_requires_grad``, ``enable_adapters``, injection) and from which
``delete_adapter`` removes the adapter. The persistent bool buffer ``aflora_frozen[adapter]`` (2,)
holds the same flags in the adapter's state dict, so a saved adapter remembers what froze. A
load_state_dict post-hook takes the flags back from the buffer and switches the frozen
projections' gradients off, so every load path (``PeftModel.from_pretrained``, with or without
``low_cpu_mem_usage``, ``load_adapter``, the Trainer's resume) gives frozen projections that stay
frozen with no further call.

Folding. Once both projections of an adapter are frozen (``requires_grad`` off), the forward folds
the adapter into the base weight for the step (``aflora/folded.py``): one linear layer instead of
the rank-r path, with the same output and the same gradients for d and b.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
import torch.nn.functional as F
from peft.tuners._buffer_dict import BufferDict
from peft.tuners.tuners_utils import BaseTunerLayer, _get_in_out_features, check_adapters_to_merge
from peft.utils.other import transpose
from torch import nn

from .config import AFLoraConfig
from .folded import fold_pays_off, folded_linear, scaled_up_projection

PROJECTIONS = ("A", "B")  # index into the aflora_frozen buffer


class AFLoraLayer(BaseTunerLayer):
    """Adapter state shared by the AFLoRA layer types (only ``Linear`` exists)."""

    adapter_layer_names = ("aflora_A", "aflora_B", "aflora_d", "aflora_b")
    other_param_names = ("r", "aflora_frozen")

    def __init__(self, base_layer: nn.Module, **kwargs: Any) -> None:
        self.base_layer = base_layer
        self.r: dict[str, int] = {}
        self.aflora_A = nn.ParameterDict({})  # (r, in) per adapter
        self.aflora_B = nn.ParameterDict({})  # (out, r)
        self.aflora_d = nn.ParameterDict({})  # (r,)
        self.aflora_b = nn.ParameterDict({})  # (out,)
        self.aflora_frozen = BufferDict({}, persistent=True)  # (2,) bool: A frozen, B frozen
        # The same flags host side, by weight name; this layer's own dict (the class attribute
        # BaseTunerLayer declares is shared by every layer), changed in place as peft's tuners do.
        self.frozen_peft_weight_names: dict[str, tuple[str, ...]] = {}
        self._disable_adapters = False
        self.merged_adapters: list[str] = []
        in_features, out_features = _get_in_out_features(self.get_base_layer())
        if in_features is None or out_features is None:
            raise TypeError(f"AFLoRA cannot adapt a layer of type {type(self.get_base_layer())}")
        self.in_features = in_features
        self.out_features = out_features
        self.kwargs = kwargs

    def update_layer(self, adapter_name: str, config: AFLoraConfig, inference_mode: bool = False) -> None:
        """Create the adapter's parameters, initialised as docs/method.md ("The adapter") prescribes."""
        r = config.r
        self.r[adapter_name] = r
        # Kaiming-uniform with a=0 in fan-in mode (bound sqrt(6 / fan_in)), drawn from the global
        # RNG so set_seed fixes it; every layer gets its own A and B (unlike VeRA's shared pair).
        weight_a = torch.empty(r, self.in_features)
        weight_b = torch.empty(self.out_features, r)
        nn.init.kaiming_uniform_(weight_a, a=0)
        nn.init.kaiming_uniform_(weight_b, a=0)
        self.aflora_A[adapter_name] = nn.Parameter(weight_a)
        self.aflora_B[adapter_name] = nn.Parameter(weight_b)
        self.aflora_d[adapter_name] = nn.Parameter(torch.full((r,), float(config.d_init)))
        self.aflora_b[adapter_name] = nn.Parameter(torch.full((self.out_features,), float(config.b_init)))
        frozen = config.projections_frozen_at_start(self.in_features, self.out_features)
        self.frozen_peft_weight_names[adapter_name] = _weight_names([frozen, frozen])
        self.aflora_frozen[adapter_name] = torch.tensor([frozen, frozen], dtype=torch.bool)

        self._move_adapter_to_device_of_base_layer(adapter_name)
        # set_adapter switches gradients on for the active adapters and then applies the frozen flags.
        self.set_adapter(self.active_adapters, inference_mode=inference_mode)

    # -- frozen projections -------------------------------------------------------------------

    def is_projection_frozen(self, adapter_name: str, projection: str) -> bool:
        """Whether projection ``"A"`` or ``"B"`` of the adapter is frozen."""
        return f"aflora_{projection}" in self.frozen_peft_weight_names.get(adapter_name, ())

    def projection(self, adapter_name: str, projection: str) -> nn.Parameter:
        """The parameter of projection ``"A"`` (r x in) or ``"B"`` (out x r)."""
        return getattr(self, f"aflora_{projection}")[adapter_name]

    def freeze_projection(self, adapter_name: str, projection: str, keep_grad: bool = False) -> None:
        """Freeze projection ``"A"`` or ``"B"`` for good.

        ``requires_grad=False`` stops autograd from computing its weight gradient from the next
        backward on. ``keep_grad=False`` also drops the gradient already computed, so torch
        optimizers skip the matrix from this step on (no momentum drift, no weight decay);
        ``keep_grad=True`` leaves it, so the optimizer step in progress still applies it once, as
        the reference code does (docs/method.md, "The last update").
        """
        index = PROJECTIONS.index(projection)
        flags = [self.is_projection_frozen(adapter_name, p) for p in PROJECTIONS]
        flags[index] = True
        self.frozen_peft_weight_names[adapter_name] = _weight_names(flags)
        self.aflora_frozen[adapter_name][index] = True
        param = self.projection(adapter_name, projection)
        param.requires_grad_(False)
        if not keep_grad:
            param.grad = None


class Linear(nn.Module, AFLoraLayer):
    """AFLoRA on an ``nn.Linear`` (or a transformers ``Conv1D`` with ``fan_in_fan_out=True``)."""

    def __init__(
        self,
        base_layer: nn.Module,
        adapter_name: str,
        config: AFLoraConfig,
        is_target_conv_1d_layer: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        AFLoraLayer.__init__(self, base_layer, **kwargs)
        self.fan_in_fan_out = config.fan_in_fan_out
        self.is_target_conv_1d_layer = is_target_conv_1d_layer
        self._active_adapter = adapter_name
        # Fold an adapter whose A and B are both frozen into the base weight during the forward
        # (aflora/folded.py). An instance attribute, so a benchmark or a debugging session can
        # switch one layer back to the layer-by-layer path.
        self.fold_frozen_projections = True
        self.update_layer(adapter_name, config)
        self.register_load_state_dict_post_hook(_frozen_from_buffer)

    def get_delta_weight(self, adapter: str) -> torch.Tensor:
        """delta W = diag(b) B diag(d) A, shape (out, in) (transposed for fan_in_fan_out)."""
        weight_a, weight_b = self.aflora_A[adapter], self.aflora_B[adapter]
        vec_d, vec_b = self.aflora_d[adapter], self.aflora_b[adapter]
        dtype = weight_b.dtype
        # Half-precision matmuls are slow or missing on CPU: merge in fp32 and cast back.
        cast = weight_b.device.type == "cpu" and dtype in (torch.float16, torch.bfloat16)
        if cast:
            weight_a, weight_b, vec_d, vec_b = (t.float() for t in (weight_a, weight_b, vec_d, vec_b))
        delta = scaled_up_projection(weight_b, vec_d, vec_b) @ weight_a  # (out, in)
        delta = transpose(delta, self.fan_in_fan_out)
        return delta.to(dtype) if cast else delta

    def merge(self, safe_merge: bool = False, adapter_names: list[str] | None = None) -> None:
        """Fold the active (or the named) adapters into the base weight."""
        adapter_names = check_adapters_to_merge(self, adapter_names)
        for adapter in adapter_names:
            if adapter not in self.aflora_A:
                continue
            base = self.get_base_weight()
            delta = self.get_delta_weight(adapter).to(base.dtype)
            if safe_merge:
                merged = base.clone() + delta
                if not torch.isfinite(merged).all():
                    raise ValueError(f"NaNs or infs in the merged weights of adapter {adapter!r}")
                self.set_base_weight(merged)
            else:
                base += delta
                self.set_base_weight(base)
            self.merged_adapters.append(adapter)

    def unmerge(self) -> None:
        """Subtract the merged adapters from the base weight again."""
        if not self.merged:
            warnings.warn("AFLoRA layer is not merged; nothing to unmerge", stacklevel=2)
            return
        while self.merged_adapters:
            adapter = self.merged_adapters.pop()
            if adapter in self.aflora_A:
                base = self.get_base_weight()
                base -= self.get_delta_weight(adapter).to(base.dtype)
                self.set_base_weight(base)

    def forward(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        if self.disable_adapters:
            if self.merged:
                self.unmerge()
            return self.base_layer(x, *args, **kwargs)
        if not self.merged and (adapter := self._foldable_adapter(x)) is not None:
            base = self.base_layer
            weights = (self.aflora_A[adapter], self.aflora_B[adapter], self.aflora_d[adapter], self.aflora_b[adapter])
            return folded_linear(x, base.weight, base.bias, *weights)
        result = self.base_layer(x, *args, **kwargs)  # (..., out)
        if self.merged:
            return result
        # The base layer's output dtype, as PEFT's LoRA keeps it: under autocast that is the autocast
        # dtype, not the input's (a float32 LayerNorm output cast back to float32 would leave DeBERTa's
        # attention with bf16 scores and a float32 query, whose mask value overflows bf16).
        result_dtype = result.dtype
        for adapter in self.active_adapters:
            if adapter not in self.aflora_A:
                continue
            weight_a = self.aflora_A[adapter]  # (r, in)
            x_a = self._cast_input_dtype(x, weight_a.dtype)
            hidden = F.linear(x_a, weight_a) * self.aflora_d[adapter]  # (..., r)
            result = result + self.aflora_b[adapter] * F.linear(hidden, self.aflora_B[adapter])  # (..., out)
        return result.to(result_dtype)

    def _foldable_adapter(self, x: torch.Tensor) -> str | None:
        """The adapter to fold into the base weight for this input, or None for the layer-by-layer path.

        Folding needs a single active adapter with A and B frozen, a plain ``nn.Linear`` base whose
        weight is frozen (its gradient is not computed), one dtype throughout and no autocast (W0 + ΔW
        cast to half precision would round ΔW against W0's magnitude), and enough tokens to repay
        building the folded weight.
        """
        if not self.fold_frozen_projections or self.fan_in_fan_out or type(self.base_layer) is not nn.Linear:
            return None
        adapters = [a for a in self.active_adapters if a in self.aflora_A]
        if len(adapters) != 1:
            return None
        adapter = adapters[0]
        weight_a, weight_b, weight = self.aflora_A[adapter], self.aflora_B[adapter], self.base_layer.weight
        if weight_a.requires_grad or weight_b.requires_grad or weight.requires_grad:
            return None
        if torch.is_autocast_enabled(x.device.type) or not x.dtype == weight.dtype == weight_a.dtype:
            return None
        if not fold_pays_off(x.numel() // self.in_features, self.in_features, self.out_features):
            return None
        return adapter

    def __repr__(self) -> str:
        return "aflora." + super().__repr__()


def _weight_names(flags: list[bool]) -> tuple[str, ...]:
    """The weight names of the projections flagged frozen, in ``PROJECTIONS`` order."""
    return tuple(f"aflora_{p}" for p, frozen in zip(PROJECTIONS, flags, strict=True) if frozen)


def _frozen_from_buffer(layer: AFLoraLayer, incompatible_keys: Any) -> None:
    """After a state-dict load, take the frozen flags from the (possibly replaced) buffers and
    switch the frozen projections' gradients off: a loaded adapter never thaws what had frozen."""
    for adapter_name, flags in layer.aflora_frozen.items():
        if flags.is_meta:
            continue
        layer.frozen_peft_weight_names[adapter_name] = _weight_names([bool(f) for f in flags.tolist()])
    layer._freeze_non_trainable_peft_weights()
