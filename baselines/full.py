"""Full fine-tuning: every parameter of the backbone and the head trains."""

from __future__ import annotations

from torch import nn

from harness.execution.methods import BuildContext, MethodBuild, MethodSettings, register_method


@register_method("full")
def build_full(model: nn.Module, cfg: MethodSettings, ctx: BuildContext) -> MethodBuild:
    for param in model.parameters():
        param.requires_grad_(True)
    return MethodBuild(model=model)
