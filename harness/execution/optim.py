"""AdamW with the reference code's parameter groups (docs/method.md, "Training recipe").

``train.optimizer`` picks the update rule: ``adamw_torch`` (``torch.optim.AdamW``) or
``adamw_reference`` (transformers 4.31's AdamW, which produced the paper's numbers:
``harness/execution/reference_adamw.py``). Both take the same groups, betas (0.9, 0.999) and eps 1e-8.

Two learning rates: one for the method's parameters (adapters, or the backbone for full
fine-tuning), one for the classifier head. Weight decay applies to every non-head parameter
(the reference code decays AFLoRA's d and b too) and to the head's weights, not its biases.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from harness.execution.params import is_head_param
from harness.execution.reference_adamw import ReferenceAdamW

OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    "adamw_torch": torch.optim.AdamW,
    "adamw_reference": ReferenceAdamW,
}


def parameter_groups(model: nn.Module, train_cfg: Any, head_modules: Iterable[str]) -> list[dict]:
    head_modules = list(head_modules)
    body, head_decay, head_no_decay = [], [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        if not is_head_param(name, head_modules):
            body.append(param)
        elif name.endswith("bias"):
            head_no_decay.append(param)
        else:
            head_decay.append(param)
    groups = [
        {"params": body, "lr": train_cfg.lr, "weight_decay": train_cfg.weight_decay},
        {"params": head_decay, "lr": train_cfg.head_lr, "weight_decay": train_cfg.head_weight_decay},
        {"params": head_no_decay, "lr": train_cfg.head_lr, "weight_decay": 0.0},
    ]
    return [g for g in groups if g["params"]]


def build_optimizer(model: nn.Module, train_cfg: Any, head_modules: Iterable[str]) -> torch.optim.Optimizer:
    """The optimizer ``train.optimizer`` names (checked by ``harness.config.schema.TrainConfig``)."""
    return OPTIMIZERS[train_cfg.optimizer](parameter_groups(model, train_cfg, head_modules))
