"""The benchmark's rows: one model + optimizer + callbacks per method (and AFLoRA phase), put
together by ``harness.execution.assembly.assemble`` as every run is, through the method registry.

Rows:
- ``floor``: the backbone with only the head trainable and gradients flowing back through every
  layer (the embeddings' output requires grad): the least any adapter method can cost. It stands
  in for ``head`` (the head alone, no backward through the layers), which has no row.
- every other method of ``conf/method`` (variants aside): its own yaml, no recipe, with the
  callbacks its builder returns driven every step and the optimizer it builds (AdaLoRA's
  allocator: it updates its sensitivities every step; its masking, every ΔT steps from tinit =
  15 % of the run on, is not among the timed steps, which start at step 101 of 2000).
- ``aflora``: AFLoRA before any freezing, with its freezer scoring and deciding every step. The
  freezer runs dry (it decides but does not freeze), so the row keeps its trainable projections
  for the whole measurement: the upper bound of the bookkeeping, whose pool never shrinks.
- ``aflora-nofreezer``: the same model with the freezer not called (the overhead's A/B partner).
- ``aflora-frozen``: every projection frozen through the freezer's ``freeze``; only d, b and the
  head train, and the freezer, having nothing left, returns at once. Each adapter is folded into
  its base weight during the step (``aflora/folded.py``).
- ``aflora-frozen-unfolded``: the same, on the layer-by-layer path (the folding's A/B partner).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch
from omegaconf import DictConfig
from torch import nn
from transformers import TrainerCallback, TrainerControl, TrainerState, set_seed

from harness.bench.variants import Variant, adapt_optimizer
from harness.config.compose import run_config
from harness.core.paths import CONF_DIR
from harness.execution.assembly import assemble
from harness.execution.methods import BuildContext, MethodBuild, MethodCallback, method_builder, method_names
from harness.execution.params import count_parameters
from harness.inputs.tasks import TaskSpec

log = logging.getLogger(__name__)

AFLORA_ROWS = ("aflora", "aflora-nofreezer", "aflora-frozen", "aflora-frozen-unfolded")
# The methods' own rows: every method but its variants (aflora's phases are rows of their own), and
# head, whose cost the floor row bounds from above.
_METHOD_ROWS = tuple(m for m in method_names(variants=False) if m not in ("aflora", "head"))
ROWS = ("floor", *_METHOD_ROWS, *AFLORA_ROWS)

# A nominal run for the schedules (AFLoRA's t_i/t_f in epochs, AdaLoRA's fractions): 20 epochs of
# 100 steps, the reference code's 20-epoch shape. Every row's step counter starts at the first step
# of the second epoch, where AFLoRA's cubic window (score + decide every ΔT steps) is open.
STEPS_PER_EPOCH = 100
EPOCHS = 20
START_STEP = STEPS_PER_EPOCH + 1
# The reference recipe's clipping (docs/method.md, "Training recipe"); its value does not change cost.
MAX_GRAD_NORM = 0.1


@dataclass
class Row:
    name: str  # the row and, when a bench runs several variants, its variant: "lora@bf16+eager"
    model: nn.Module
    optimizer: torch.optim.Optimizer
    method_callbacks: list[TrainerCallback]  # timed as the method's bookkeeping
    harness_callbacks: list[TrainerCallback]  # clipping and parameter tracking, as in every run
    state: TrainerState
    heads: list[str]
    trainable: int  # head excluded
    head: int
    note: str = ""
    row: str = ""  # the row alone: "lora"
    variant: Variant = Variant()

    @property
    def callbacks(self) -> list[TrainerCallback]:
        # The order of Assembly.callbacks (harness/execution/assembly.py): the method's see raw gradients.
        return [*self.method_callbacks, *self.harness_callbacks]


def compose_config(model: str, method: str, task: str = "rte") -> DictConfig:
    """The run config for (model, method, task) without a recipe: the method yaml's own settings."""
    return run_config([f"model={model}", f"method={method}", f"task={task}", "~recipe"])


def available_rows(wanted: list[str]) -> tuple[list[str], dict[str, str]]:
    """The wanted rows whose method yaml exists, and a note for each one skipped."""
    rows, skipped = [], {}
    for name in wanted:
        if name not in ROWS:
            raise ValueError(f"unknown bench row {name!r}; rows: {', '.join(ROWS)}")
        method = method_of(name)
        if method is not None and not (CONF_DIR / "method" / f"{method}.yaml").exists():
            skipped[name] = f"conf/method/{method}.yaml does not exist yet"
        else:
            rows.append(name)
    return rows, skipped


def method_of(row: str) -> str | None:
    return None if row == "floor" else row.split("-")[0]


BASELINE = Variant()  # fp32, no lever: what a run does by default


def row_key(name: str, variant: Variant, several: bool) -> str:
    """A row's name in the report: the row alone when the bench runs one variant."""
    return f"{name}@{variant.label}" if several else name


def build_row(
    name: str,
    model_name: str,
    device: torch.device,
    args: Any,
    seed: int = 1,
    variant: Variant = BASELINE,
    key: str = "",
) -> Row:
    """Build one row on ``device``; ``args`` is the TrainingArguments handed to the callbacks."""
    cfg = compose_config(model_name, method_of(name) or "full")
    cfg.seed = seed
    cfg.train.max_grad_norm = MAX_GRAD_NORM
    cfg.train.precision = variant.precision
    for train_key, value in variant.train_overrides.items():
        cfg.train[train_key] = value
    note = ""

    def build(model: nn.Module, method_cfg: Any, ctx: BuildContext) -> MethodBuild:
        nonlocal note
        if name == "floor":
            note = "head trainable, input grads through every layer"
            return _head_only(model, ctx.head_modules)
        built = method_builder(method_cfg)(model, method_cfg, ctx)
        if name in AFLORA_ROWS:
            built.callbacks, note = _aflora_phase(name, built.model, built.callbacks)
        return built

    set_seed(seed)  # every row starts from the same head and adapter draws
    task = TaskSpec.from_config(cfg.task)
    assembly = assemble(cfg, task, steps_per_epoch=STEPS_PER_EPOCH, total_steps=EPOCHS * STEPS_PER_EPOCH, builder=build)
    model = assembly.model.to(device)  # in place, as the Trainer moves a run's model once it is assembled
    state = TrainerState(max_steps=assembly.context.total_steps, global_step=0)
    row = Row(
        name=key or name,
        row=name,
        variant=variant,
        model=torch.compile(model) if "compile" in variant.levers else model,
        optimizer=adapt_optimizer(assembly.build_optimizer(), variant),
        method_callbacks=assembly.method.callbacks,
        harness_callbacks=assembly.harness_callbacks,  # clipping and parameter tracking: no run_dir
        state=state,
        heads=assembly.heads,
        trainable=assembly.counts["trainable"],
        head=assembly.counts["head"],
        note=note,
    )
    for cb in row.callbacks:  # as the Trainer does; then jump into the second epoch
        cb.on_train_begin(args, state, TrainerControl(), model=model, optimizer=row.optimizer)
    state.global_step = START_STEP
    return row


def _head_only(model: nn.Module, heads: list[str]) -> MethodBuild:
    for name, param in model.named_parameters():
        param.requires_grad_(any(h in name.split(".") for h in heads))
    # Gradients flow to the embeddings' output, so backward runs through every layer (activation
    # gradients only: no weight gradient anywhere but the head).
    model.enable_input_require_grads()
    return MethodBuild(model=model)


def _aflora_phase(name: str, model: nn.Module, callbacks: list[MethodCallback]) -> tuple[list[MethodCallback], str]:
    from aflora import AFLoraFreezer
    from aflora.layer import Linear as AFLoraLinear

    freezer = next(cb for cb in callbacks if isinstance(cb, AFLoraFreezer))
    others = [cb for cb in callbacks if cb is not freezer]
    if name == "aflora-nofreezer":
        return others, "AFLoRA at start, freezer not called"
    if name.startswith("aflora-frozen"):
        trainable = [n for n, step in freezer.freeze_steps.items() if step is None]
        freezer.freeze(trainable, step=0)
        if name == "aflora-frozen":
            return callbacks, f"all {len(freezer.freeze_steps)} projections frozen, folded into W0"
        for module in model.modules():
            if isinstance(module, AFLoraLinear):
                module.fold_frozen_projections = False
        return callbacks, f"all {len(freezer.freeze_steps)} projections frozen, layer-by-layer path"
    # Dry run: the freezer scores and takes its decisions but freezes nothing, so the model keeps
    # what it measures. check_unchanged() verifies nothing froze.
    freezer.dry_run = True
    return callbacks, "AFLoRA at start, freezer scoring + deciding (dry run)"


def check_unchanged(row: Row) -> None:
    """The dry-run freezer must not have frozen anything: the row's count would then drift."""
    now = count_parameters(row.model, row.heads)["trainable"]
    if now != row.trainable:
        raise RuntimeError(f"bench row {row.name}: trainable parameters changed from {row.trainable} to {now}")
