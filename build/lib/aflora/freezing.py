"""``AFLoraFreezer``: the Trainer callback that scores and freezes AFLoRA projections.

The method: docs/method.md ("The freezing score", "The freezing schedule", "What is reported").

Usage with your own HF Trainer::

    freezer = AFLoraFreezer(peft_model, total_steps=T, t_i=steps_per_epoch, t_f=14 * steps_per_epoch)
    args = TrainingArguments(..., max_grad_norm=0)  # the freezer must see unclipped gradients
    trainer = Trainer(model=peft_model, args=args, callbacks=[freezer, ClipGradNormCallback(peft_model, 0.1)])
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from .layer import PROJECTIONS, AFLoraLayer
from .schedule import CubicSchedule, fraction_rule, quantile_rule
from .scoring import SensitivityScorer

logger = logging.getLogger(__name__)

FREEZER_STATE_FILE = "aflora_freezer.pt"
RULES = ("quantile", "fraction")
# 2: the checkpoint's optimizer state no longer holds frozen projections (version 1, from before
# they left the optimizer, is refused: no kept checkpoint has it).
_STATE_VERSION = 2


@dataclass(frozen=True)
class _Projection:
    name: str  # "<module path inside the backbone>.A" or ".B"
    layer: AFLoraLayer
    which: str  # "A" or "B"
    numel: int


class AFLoraFreezer(TrainerCallback):
    """Scores the trainable AFLoRA projection matrices and freezes them on the cubic schedule.

    Gradients. Scoring runs in ``on_pre_optimizer_step``, where gradients are complete (and, under
    DDP, already all-reduced) and the optimizer has not stepped. The HF Trainer clips gradients
    *before* that event, so train with ``max_grad_norm=0`` and put ``ClipGradNormCallback`` after
    this callback; with ``max_grad_norm > 0`` the freezer warns once that it scores clipped
    gradients. Gradient accumulation is fine: the score uses the accumulated gradient of a step.

    Freezing a matrix sets ``requires_grad=False`` and marks it in the layer's persistent
    ``aflora_frozen`` buffer. ``last_update=True`` (the reference code's behaviour) keeps the
    gradient of the step at which the matrix freezes: it still counts in that step's clipping norm
    and the optimizer applies it, once. ``last_update=False`` drops it, so the matrix does not move
    at the step it freezes. After that step (``on_optimizer_step``) the matrix leaves the
    optimizer's parameter groups and its optimizer state is dropped, so the optimizer holds exactly
    the parameters that still train: nothing moves it again (no momentum, no weight decay), its
    moments no longer take memory, and a checkpoint's optimizer state matches an optimizer built
    from the ``requires_grad`` parameters of the adapter saved beside it.
    Under ``torch.distributed`` the decision of rank 0 is broadcast, so all ranks freeze alike.
    Once nothing is left to freeze every hook returns at once.

    ``dry_run=True`` scores and decides as usual but freezes nothing: each decision is appended to
    ``dry_run_decisions`` as (step, projection names) instead. Benchmarks use it to time the
    bookkeeping on a pool that never shrinks; the decisions show what a real run would freeze first.

    Steps are ``state.global_step`` at decision time, i.e. optimizer steps already completed.
    ``result_fields()["freezing"][name]`` is therefore the number of optimizer steps completed
    before the step at which the matrix froze: 0 for matrices frozen from the start
    (``trainable_projections``), ``None`` for one still trainable when training stopped. The
    matrix was updated that many times with ``last_update=False``, and once more with the default
    ``last_update=True``, which applies the gradient of the step it froze at.

    Resuming. ``on_save`` writes this callback's state (scores, windows, freeze steps, parameter
    history) to ``<checkpoint>/aflora_freezer.pt``. Call ``load_state(checkpoint_dir)`` before
    ``trainer.train(resume_from_checkpoint=...)`` (or let ``on_train_begin`` find it under
    ``output_dir/checkpoint-<step>``). ``load_state`` freezes the recorded projections in the model
    at once, and loading the checkpoint's adapter does the same (``aflora/layer.py``), so an
    optimizer built afterwards from the ``requires_grad`` parameters (the Trainer's own, or one
    built after ``load_state``) has the parameter groups of the checkpoint's optimizer state.
    """

    def __init__(
        self,
        model: nn.Module,
        total_steps: int,
        t_i: int,
        t_f: int,
        *,
        rule: str = "quantile",
        sensitivity: str = "grad",
        beta1: float = 0.85,
        beta2: float = 0.95,
        window: int = 10,
        head_modules: Sequence[str] = ("classifier",),
        adapter_name: str | None = None,
        dry_run: bool = False,
        last_update: bool = True,
    ):
        if rule not in RULES:
            raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
        self.model = model
        self.schedule = CubicSchedule(total_steps=total_steps, t_i=t_i, t_f=t_f, interval=window)
        self.rule = rule
        self.scorer = SensitivityScorer(beta1=beta1, beta2=beta2, window=window, sensitivity=sensitivity)
        self.head_modules = frozenset(head_modules)
        self.adapter_name, self._projections = _collect_projections(model, adapter_name)
        # Matrices frozen before training (trainable_projections) count as frozen at step 0.
        self.freeze_steps: dict[str, int | None] = {
            p.name: 0 if p.layer.is_projection_frozen(self.adapter_name, p.which) else None for p in self._projections
        }
        self._active = [i for i, p in enumerate(self._projections) if self.freeze_steps[p.name] is None]
        self._n_schedulable = len(self._active)
        self.trainable_history: list[tuple[int, int]] = []  # (from step, trainable params, head excluded)
        self._end_step: int | None = None
        self._state_loaded = False
        self._leaving_optimizer: list[nn.Parameter] = []  # frozen, still in the optimizer's groups
        self.dry_run = dry_run
        self.last_update = last_update
        self.dry_run_decisions: list[tuple[int, list[str]]] = []

    # -- Trainer hooks ----------------------------------------------------------------------------

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        if (args.max_grad_norm or 0) > 0:
            logger.warning(
                "AFLoraFreezer scores gradients after the Trainer clipped them (max_grad_norm=%s); "
                "set max_grad_norm=0 and add ClipGradNormCallback after the freezer to score raw gradients",
                args.max_grad_norm,
            )
        if state.global_step > 0 and not self._state_loaded:
            path = os.path.join(args.output_dir, f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}")
            if os.path.isfile(os.path.join(path, FREEZER_STATE_FILE)):
                self.load_state(path)
            else:
                logger.warning(
                    "resuming at step %d without AFLoRA freezer state: scores restart at 0", state.global_step
                )
        self._adopt_frozen_in_model(state.global_step)
        self.apply_frozen()
        if not self.trainable_history:
            self.trainable_history.append((state.global_step, self._count_trainable()))

    def on_pre_optimizer_step(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        if not self._active:
            return
        step = state.global_step
        pool = [self._projections[i] for i in self._active]
        self.scorer.update(step, ((p.name, p.layer.projection(self.adapter_name, p.which)) for p in pool))
        if not self.schedule.is_decision_step(step):
            return
        fraction = self.schedule.fraction(step)
        if self.rule == "quantile":
            chosen = quantile_rule([self.scorer.score(p.name) for p in pool], fraction)
        else:
            means = [float(self.scorer.score(p.name).mean()) for p in pool]
            chosen = fraction_rule(means, fraction, self._n_schedulable, self._n_schedulable - len(pool))
        indices = [self._active[i] for i in self._agree_across_ranks(chosen, pool)]
        if self.dry_run:
            self.dry_run_decisions.append((step, [self._projections[i].name for i in indices]))
            return
        self._freeze(indices, step)

    def on_optimizer_step(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        optimizer: torch.optim.Optimizer | None = None,
        **kwargs: Any,
    ) -> None:
        if self._leaving_optimizer and optimizer is not None:
            _remove_from_optimizer(optimizer, self._leaving_optimizer)
        self._leaving_optimizer = []

    def on_save(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        if not state.is_world_process_zero:
            return
        folder = os.path.join(args.output_dir, f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}")
        if os.path.isdir(folder):
            torch.save(self.state_dict(), os.path.join(folder, FREEZER_STATE_FILE))

    def on_train_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        self._end_step = state.global_step

    # -- freezing -----------------------------------------------------------------------------------

    def freeze(self, names: Sequence[str], step: int) -> None:
        """Freeze the named still-trainable projections now, recorded at ``step`` (scripted ablations)."""
        index = {self._projections[i].name: i for i in self._active}
        missing = [n for n in names if n not in index]
        if missing:
            raise KeyError(f"not trainable AFLoRA projections of this freezer: {missing}")
        self._freeze([index[n] for n in names], step)

    def _freeze(self, indices: Sequence[int], step: int) -> None:
        if not indices:
            return
        for i in indices:
            proj = self._projections[i]
            proj.layer.freeze_projection(self.adapter_name, proj.which, keep_grad=self.last_update)
            self._leaving_optimizer.append(proj.layer.projection(self.adapter_name, proj.which))
            self.freeze_steps[proj.name] = step
            self.scorer.drop(proj.name)
        gone = set(indices)
        self._active = [i for i in self._active if i not in gone]
        if self.trainable_history:
            count = self.trainable_history[-1][1] - sum(self._projections[i].numel for i in indices)
            if self.trainable_history[-1][0] == step:
                self.trainable_history[-1] = (step, count)
            else:
                self.trainable_history.append((step, count))
        logger.info("step %d: froze %d projection(s), %d still trainable", step, len(indices), len(self._active))

    def _agree_across_ranks(self, chosen: list[int], pool: Sequence[_Projection]) -> list[int]:
        """Rank 0's choice on every rank (scores agree under DDP; this guards against drift)."""
        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return chosen
        device = pool[0].layer.projection(self.adapter_name, pool[0].which).device
        mask = torch.zeros(len(pool), dtype=torch.uint8, device=device)  # (pool,)
        mask[chosen] = 1
        dist.broadcast(mask, src=0)
        return mask.nonzero().flatten().tolist()

    def apply_frozen(self) -> None:
        """Make the model's frozen flags match this freezer's record (idempotent)."""
        for proj in self._projections:
            if self.freeze_steps[proj.name] is not None:
                proj.layer.freeze_projection(self.adapter_name, proj.which)

    def _adopt_frozen_in_model(self, step: int) -> None:
        """Take over matrices marked frozen in the model but unknown here (adapter loaded without state)."""
        unknown = [
            i
            for i in self._active
            if self._projections[i].layer.is_projection_frozen(self.adapter_name, self._projections[i].which)
        ]
        if unknown:
            logger.warning("%d projection(s) were frozen in the loaded adapter; recording step %d", len(unknown), step)
            self._freeze(unknown, step)

    # -- accounting ---------------------------------------------------------------------------------

    def _count_trainable(self) -> int:
        return sum(
            p.numel()
            for name, p in self.model.named_parameters()
            if p.requires_grad and self.head_modules.isdisjoint(name.split("."))
        )

    def trainable_summary(self, total_steps: int | None = None) -> dict[str, float]:
        """Trainable parameters (head excluded) at start, at end, and averaged over optimizer steps.

        The average weights each count by the number of steps it was in force, over the steps from
        the start of training to ``total_steps`` (default: the last step trained, else T).
        """
        if not self.trainable_history:
            raise RuntimeError("trainable_summary() needs on_train_begin to have run")
        end = total_steps if total_steps is not None else (self._end_step or self.schedule.total_steps)
        return {
            "start": self.trainable_history[0][1],
            "end": self.trainable_history[-1][1],
            # Over the steps this freezer saw: from its first record (a later step when it joined a
            # resumed run without its state) to ``end``.
            "avg": time_weighted_average(self.trainable_history, end, since=self.trainable_history[0][0]),
        }

    def result_fields(self) -> dict[str, Any]:
        """Merged into result.json by the harness: the step at which each projection froze."""
        return {"freezing": dict(self.freeze_steps)}

    def log_scalars(self) -> dict[str, int]:
        """Added to the Trainer's training log lines by the harness (``train.report_to``): how many
        projection matrices have frozen so far, so TensorBoard or W&B show the freezing over time."""
        return {"aflora_frozen_projections": sum(step is not None for step in self.freeze_steps.values())}

    # -- state --------------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue identically; loadable with ``torch.load(weights_only=True)``."""
        return {
            "version": _STATE_VERSION,
            "names": [p.name for p in self._projections],
            "freeze_steps": [-1 if s is None else s for s in self.freeze_steps.values()],
            "n_schedulable": self._n_schedulable,
            "trainable_history": [list(entry) for entry in self.trainable_history],
            "scorer": self.scorer.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        names = [p.name for p in self._projections]
        if state.get("version") != _STATE_VERSION or state["names"] != names:
            raise ValueError("AFLoRA freezer state does not match this model's projections (or version)")
        self.freeze_steps = {n: None if s < 0 else int(s) for n, s in zip(names, state["freeze_steps"], strict=True)}
        self._active = [i for i, n in enumerate(names) if self.freeze_steps[n] is None]
        self._n_schedulable = int(state["n_schedulable"])
        self.trainable_history = [(int(s), int(c)) for s, c in state["trainable_history"]]
        devices = {p.name: p.layer.projection(self.adapter_name, p.which).device for p in self._projections}
        self.scorer.load_state_dict(state["scorer"], devices)
        self._state_loaded = True
        self.apply_frozen()

    def load_state(self, checkpoint_dir: str | os.PathLike[str]) -> None:
        """Load ``aflora_freezer.pt`` from a Trainer checkpoint folder and freeze what it records."""
        path = os.path.join(checkpoint_dir, FREEZER_STATE_FILE)
        self.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        logger.info("loaded AFLoRA freezer state from %s", path)


def time_weighted_average(history: Sequence[Sequence[int]], end: int, *, since: int) -> float:
    """Mean of a count over optimizer steps ``since + 1 .. end``, from (step, count) change points.

    A change point (s, c) means the count is c from step s + 1 on (the first point: the count at
    the start). Steps before the first point count as 0, steps after ``end`` are left out. The
    denominator is ``end - since`` (at least 1): ``AFLoraFreezer.trainable_summary`` averages over
    the steps the freezer saw (``since`` = its first point); a record of a whole run passes
    ``since=0``.
    """
    weighted = 0
    for (step, count), nxt in zip(history, [*history[1:], (end, 0)], strict=True):
        weighted += count * max(0, min(nxt[0], end) - min(step, end))
    return weighted / max(end - since, 1)


def _remove_from_optimizer(optimizer: torch.optim.Optimizer, params: Sequence[nn.Parameter]) -> None:
    """Take ``params`` out of the optimizer's parameter groups and drop their state."""
    leaving = {id(p) for p in params}
    for group in optimizer.param_groups:
        group["params"] = [p for p in group["params"] if id(p) not in leaving]
    for param in params:
        optimizer.state.pop(param, None)


def _collect_projections(model: nn.Module, adapter_name: str | None) -> tuple[str, list[_Projection]]:
    """All AFLoRA projections of one adapter, named relative to the backbone (done once)."""
    root = model.get_base_model() if hasattr(model, "get_base_model") else model
    layers = [(name, m) for name, m in root.named_modules() if isinstance(m, AFLoraLayer)]
    if not layers:
        raise ValueError("AFLoraFreezer: the model has no AFLoRA layers (apply get_peft_model first)")
    if adapter_name is None:
        adapter_name = layers[0][1].active_adapters[0]
    projections = [
        _Projection(f"{name}.{which}", layer, which, layer.projection(adapter_name, which).numel())
        for name, layer in layers
        if adapter_name in layer.aflora_A
        for which in PROJECTIONS
    ]
    return adapter_name, projections
