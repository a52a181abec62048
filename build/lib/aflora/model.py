"""``AFLoraModel``: the peft tuner that injects AFLoRA layers into a backbone."""

from __future__ import annotations

import warnings
from typing import Any

import torch
from peft.tuners.tuners_utils import BaseTuner, BaseTunerLayer
from transformers.pytorch_utils import Conv1D

from .config import AFLoraConfig
from .layer import AFLoraLayer, Linear


class AFLoraModel(BaseTuner):
    """Wraps the target linears of a model with AFLoRA layers (used through ``get_peft_model``).

    Example::

        import aflora  # registers the method with peft
        from peft import get_peft_model
        model = get_peft_model(backbone, aflora.AFLoraConfig(r=4, target_modules=[...]))
    """

    prefix: str = "aflora_"
    tuner_layer_cls = AFLoraLayer
    # No per-architecture defaults: docs/method.md ("Where the adapters go") names the six module
    # types per model family, and a silent default would hide a wrong match (a bare "dense" also
    # catches the pooler).
    target_module_mapping: dict[str, list[str]] = {}

    def _create_and_replace(
        self,
        aflora_config: AFLoraConfig,
        adapter_name: str,
        target: torch.nn.Module,
        target_name: str,
        parent: torch.nn.Module,
        current_key: str,
        **optional_kwargs: Any,
    ) -> None:
        if current_key is None:
            raise ValueError("current_key must not be None")
        if isinstance(target, Linear):
            # A second adapter on an already wrapped layer.
            target.update_layer(adapter_name, aflora_config)
            return
        new_module = self._create_new_module(aflora_config, adapter_name, target)
        if adapter_name not in self.active_adapter:
            # An additional adapter is not trainable until it is activated (peft convention).
            new_module.requires_grad_(False)
        self._replace_module(parent, target_name, new_module, target)

    @staticmethod
    def _create_new_module(config: AFLoraConfig, adapter_name: str, target: torch.nn.Module) -> Linear:
        base = target.get_base_layer() if isinstance(target, BaseTunerLayer) else target
        is_conv1d = isinstance(base, Conv1D)
        if not (is_conv1d or isinstance(base, torch.nn.Linear)):
            raise TypeError(
                f"AFLoRA supports torch.nn.Linear and transformers Conv1D targets, got {type(base).__name__}"
            )
        if is_conv1d and not config.fan_in_fan_out:
            warnings.warn("target is a Conv1D: setting fan_in_fan_out=True", stacklevel=2)
            config.fan_in_fan_out = True
        elif not is_conv1d and config.fan_in_fan_out:
            warnings.warn("target is an nn.Linear: setting fan_in_fan_out=False", stacklevel=2)
            config.fan_in_fan_out = False
        return Linear(target, adapter_name, config, is_target_conv_1d_layer=is_conv1d)
