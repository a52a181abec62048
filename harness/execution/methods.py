"""Method registry: a name -> builder mapping that keeps the training loop method-agnostic.

A method is one module plus one yaml. The yaml (``conf/method/<name>.yaml``) names the module
that defines the builder (``module: baselines.lora``); importing it runs ``@register_method``.
A variant of a method (an ablation such as ``aflora-nofreeze``) is one more yaml that composes the
method's yaml, changes some values and names the builder it reuses (``builder: aflora``).
A method's keys are typed by the dataclass it registers with its builder (a ``MethodSettings``):
``method_settings`` checks ``cfg.method`` against it once, before a run writes anything, and the
builder receives that typed object. The builder wraps the backbone and returns a ``MethodBuild``:
the model, the callbacks it needs (AFLoRA's freezer, AdaLoRA's rank allocator), and optionally its
own optimizer and trainable-parameter count. That object and ``MethodCallback`` are the whole
contract between a method and the harness (``harness/execution/assembly.py`` puts a run together from them);
the training code never asks which method it is running. A method whose saved adapter a plain
``PeftModel.from_pretrained`` does not rebuild whole (SoRA's gates) registers its own
``load_weights`` with its builder, and ``harness.predict`` reloads a run's ``best/`` through it
(``method_weights_loader``).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Protocol

import torch
from omegaconf import MISSING, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from torch import nn
from transformers import TrainerCallback

from harness.config.lengths import Length, Rounding
from harness.core.errors import ConfigError
from harness.core.paths import CONF_DIR

METHOD_CONF_DIR = CONF_DIR / "method"


@dataclass(frozen=True)
class BuildContext:
    """What a builder may need to know about the run besides its own config."""

    target_modules: list[str]  # the six adapted linear types, named for this model family
    head_modules: list[str]  # trained besides the adapters and excluded from counts
    total_steps: int  # optimizer steps of the whole run (AdaLoRA, AFLoRA schedules)
    steps_per_epoch: int  # optimizer steps per epoch (schedules given in epochs)
    seed: int

    def steps(self, length: Length, *, rounding: Rounding) -> int:
        """A schedule length of this run in optimizer steps (``harness/config/lengths.py``)."""
        return length.steps(steps_per_epoch=self.steps_per_epoch, total_steps=self.total_steps, rounding=rounding)


@dataclass
class MethodSettings:
    """The keys every ``conf/method/<name>.yaml`` has; a method's dataclass adds its own (the yaml
    keeps the values: declare fields ``MISSING``). ``__post_init__`` checks ranges, raising ConfigError."""

    name: str = MISSING
    module: str = MISSING
    builder: Optional[str] = None  # noqa: UP045 (omegaconf reads Optional): a variant's, naming the builder it reuses


class MethodCallback(TrainerCallback):
    """Base of every callback a method contributes; the harness calls these hooks on each of them.

    The harness's own stateful callbacks (the parameter tracker, the epoch timer) share the base,
    so a run restores, logs and reports every callback the same way. A callback that keeps state
    across a resume writes it into each checkpoint folder in its own ``on_save`` (on rank 0; the
    folder: ``harness.storage.checkpoints.saved_checkpoint``) and reads it back in ``load_state``.
    """

    def load_state(self, checkpoint: Path) -> None:
        """Restore the state saved in ``checkpoint``; called before the optimizer is built and the
        Trainer resumes. The default has nothing to restore."""

    def result_fields(self) -> dict[str, Any]:
        """Merged into ``result.json`` at the end of the run (AFLoRA: ``freezing``; AdaLoRA: ``ranks``); a
        new key needs no schema change (``RunResult.add_method_fields``, harness/storage/result_schema.py)."""
        return {}

    def log_scalars(self) -> dict[str, float]:
        """Added to every training log line, so each ``train.report_to`` integration records them."""
        return {}


# (model, train config, head modules) -> the optimizer; harness.execution.optim.build_optimizer has this shape.
OptimizerFactory = Callable[[nn.Module, Any, Iterable[str]], torch.optim.Optimizer]


@dataclass
class MethodBuild:
    """What a builder returns: the wrapped model and what the harness needs to train it.

    ``optimizer``: builds the run's optimizer, after any callback state is restored on resume;
    None: the harness's AdamW with its two learning rates (``harness.execution.optim.build_optimizer``).
    ``count_trainable``: the trainable adapter parameters (head excluded) in force at a step, for
    the time-weighted count (AdaLoRA counts its unmasked ranks); None: the parameters with
    ``requires_grad`` (``harness.execution.params.trainable_counter``).
    """

    model: nn.Module
    callbacks: list[MethodCallback] = field(default_factory=list)
    optimizer: OptimizerFactory | None = None
    count_trainable: Callable[[nn.Module], int] | None = None


class Builder(Protocol):
    def __call__(self, model: nn.Module, cfg: Any, ctx: BuildContext) -> MethodBuild: ...  # cfg: its MethodSettings


# (the backbone, a folder the method's PeftModel saved) -> that model again, its adapter trainable as
# in training; None: ``PeftModel.from_pretrained(backbone, folder, is_trainable=True)``.
WeightsLoader = Callable[[nn.Module, Path], nn.Module]

_REGISTRY: dict[str, Builder] = {}
_SETTINGS: dict[str, type[MethodSettings]] = {}
_LOADERS: dict[str, WeightsLoader] = {}


def register_method(
    name: str, *, settings: type[MethodSettings] = MethodSettings, load_weights: WeightsLoader | None = None
) -> Callable[[Builder], Builder]:
    """Decorator: ``@register_method("lora", settings=LoraSettings)`` on a builder function.
    ``settings``: the dataclass typing the method's keys. ``load_weights``: how the method's saved
    adapter is loaded back (``WeightsLoader``), when peft's own loading misses a part."""

    def decorator(builder: Builder) -> Builder:
        if name in _REGISTRY and _REGISTRY[name] is not builder:
            raise ValueError(f"method {name!r} is registered twice")
        _REGISTRY[name] = builder
        _SETTINGS[name] = settings
        if load_weights is not None:
            _LOADERS[name] = load_weights
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


def method_names(*, variants: bool = True) -> list[str]:
    """The methods ``conf/method`` defines, one yaml each, sorted. ``variants=False`` leaves out the
    variants: the yamls that reuse another method's builder (``builder: aflora``)."""
    paths = sorted(METHOD_CONF_DIR.glob("*.yaml"), key=lambda p: p.stem)
    return [p.stem for p in paths if variants or OmegaConf.load(p).get("builder") is None]


def _builder_name(method_cfg: Any) -> str:
    return getattr(method_cfg, "builder", None) or method_cfg.name  # a DictConfig or its MethodSettings


def method_builder(method_cfg: Any) -> Builder:
    """The builder a method config names: ``builder`` (a variant's), else the method's own ``name``."""
    return get_builder(_builder_name(method_cfg), method_cfg.module)


def method_settings(method_cfg: Any) -> MethodSettings:
    """``cfg.method`` as the typed settings its builder registered: an unknown key, a value of the
    wrong type or out of range raises ConfigError in one line naming the key."""
    method_builder(method_cfg)
    schema = _SETTINGS[_builder_name(method_cfg)]
    try:
        return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(schema), method_cfg))
    except OmegaConfBaseException as err:
        key = f"method.{err.full_key}" if getattr(err, "full_key", None) else "method"
        raise ConfigError(f"{key}: {str(err).splitlines()[0]}") from None


def method_weights_loader(method_cfg: Any) -> WeightsLoader | None:
    """The ``load_weights`` the builder a method config names was registered with, or None (peft's
    own loading). Imports the method's module, which also registers any PEFT type it defines."""
    method_builder(method_cfg)
    return _LOADERS.get(_builder_name(method_cfg))
