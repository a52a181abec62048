"""Method registry: a name -> builder mapping that keeps the training loop method-agnostic.

A method is one module plus one yaml. The yaml (``conf/method/<name>.yaml``) names the module
that defines the builder (``module: baselines.lora``); importing it runs ``@register_method``.
A variant of a method (an ablation such as ``aflora-nofreeze``) is one more yaml that composes the
method's yaml, changes some values and names the builder it reuses (``builder: aflora``).
The builder wraps the backbone and returns the callbacks it needs (AFLoRA's freezer, AdaLoRA's
rank allocator); the training code never asks which method it is running.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from torch import nn
from transformers import TrainerCallback


@dataclass(frozen=True)
class BuildContext:
    """What a builder may need to know about the run besides its own config."""

    target_modules: list[str]  # the six adapted linear types, named for this model family
    head_modules: list[str]  # trained besides the adapters and excluded from counts
    total_steps: int  # optimizer steps of the whole run (AdaLoRA, AFLoRA schedules)
    steps_per_epoch: int  # optimizer steps per epoch (schedules given in epochs)
    seed: int


@dataclass
class MethodBuild:
    """A wrapped model plus the callbacks its method needs during training.

    A callback may define ``result_fields() -> dict``; the harness merges what it returns into
    ``result.json`` (AFLoRA: ``freezing``; AdaLoRA: ``ranks``), so methods add their own
    accounting without the training code knowing about it. A callback may also define
    ``trainable_parameters(model) -> int`` to override how the harness counts trainable adapter
    parameters (head excluded) at each step (AdaLoRA counts its unmasked ranks).
    """

    model: nn.Module
    callbacks: list[TrainerCallback] = field(default_factory=list)


class Builder(Protocol):
    def __call__(self, model: nn.Module, cfg: Any, ctx: BuildContext) -> MethodBuild: ...


_REGISTRY: dict[str, Builder] = {}


def register_method(name: str) -> Callable[[Builder], Builder]:
    """Decorator: ``@register_method("lora")`` on a builder function."""

    def decorator(builder: Builder) -> Builder:
        if name in _REGISTRY and _REGISTRY[name] is not builder:
            raise ValueError(f"method {name!r} is registered twice")
        _REGISTRY[name] = builder
        return builder

    return decorator


def get_builder(name: str, module: str) -> Builder:
    """Import ``module`` (which registers its builder) and return the builder called ``name``."""
    importlib.import_module(module)
    if name not in _REGISTRY:
        raise KeyError(
            f"method {name!r}: module {module!r} registered no builder of that name (registered: {sorted(_REGISTRY)})"
        )
    return _REGISTRY[name]


def method_builder(method_cfg: Any) -> Builder:
    """The builder a method config names: ``builder`` (a variant's), else the method's own ``name``."""
    return get_builder(method_cfg.get("builder") or method_cfg.name, method_cfg.module)
