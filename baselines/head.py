"""The linear probe: only the classifier head trains, the backbone stays as loaded.

The floor that any adapter method must beat on a task: what the frozen features already give.
"""

from __future__ import annotations

from torch import nn

from harness.execution.methods import BuildContext, MethodBuild, MethodSettings, register_method
from harness.execution.params import is_head_param


@register_method("head")
def build_head(model: nn.Module, cfg: MethodSettings, ctx: BuildContext) -> MethodBuild:
    for name, param in model.named_parameters():
        param.requires_grad_(is_head_param(name, ctx.head_modules))
    return MethodBuild(model=model)
