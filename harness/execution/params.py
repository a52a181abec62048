"""Parameter accounting: trainable adapter parameters with the classifier head excluded.

The paper (and VeRA) count only what the method adds; the head is reported on its own. The
tracker records the count in force at every optimizer step, so methods that change it during
training (AFLoRA freezes projections, AdaLoRA prunes ranks) get a time-weighted average.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from torch import nn

from harness.storage.checkpoints import JsonStateCallback

# PEFT keeps a frozen copy of every module in modules_to_save; it is not part of the model's size.
_PEFT_SHADOW_COPY = "original_module"


def is_head_param(name: str, head_modules: Iterable[str]) -> bool:
    """True for parameters of the classifier head (and the pooler when it is trained)."""
    parts = name.split(".")
    return any(head in parts for head in head_modules)


def _named_real_parameters(model: nn.Module):
    for name, param in model.named_parameters():
        if _PEFT_SHADOW_COPY not in name.split("."):
            yield name, param


def count_parameters(model: nn.Module, head_modules: Iterable[str]) -> dict[str, int]:
    """total: every parameter of the model (head and adapters included, PEFT's shadow copies not);
    head: trainable head parameters; trainable: trainable parameters outside the head."""
    head_modules = list(head_modules)
    total = head = trainable = 0
    for name, param in _named_real_parameters(model):
        total += param.numel()
        if param.requires_grad:
            if is_head_param(name, head_modules):
                head += param.numel()
            else:
                trainable += param.numel()
    return {"total": total, "head": head, "trainable": trainable}


def trainable_counter(model: nn.Module, head_modules: Iterable[str]) -> Callable[[nn.Module], int]:
    """A cheap per-step counter: the candidate parameters are collected once, then only their
    ``requires_grad`` flags are read (no module walk per step)."""
    head_modules = list(head_modules)
    candidates = [p for n, p in _named_real_parameters(model) if p.requires_grad and not is_head_param(n, head_modules)]

    def count(_model: nn.Module) -> int:
        return sum(p.numel() for p in candidates if p.requires_grad)

    return count


def time_weighted_average(history: Sequence[Sequence[int]], end: int) -> float:
    """Mean of a count over optimizer steps 1 .. ``end``, from (step, count) change points: the
    point (s, c) means the count is c from step s + 1 on; steps after ``end`` are left out."""
    weighted = 0
    for (step, count), nxt in zip(history, [*history[1:], (end, 0)], strict=True):
        weighted += count * max(0, min(nxt[0], end) - min(step, end))
    return weighted / max(end, 1)


class TrainableParamTracker(JsonStateCallback):
    """Records the trainable count whenever it changes; saved with every checkpoint."""

    state_file = "param_tracker.json"

    def __init__(self, counter: Callable[[nn.Module], int]):
        self.counter = counter
        self.history: list[list[int]] = []  # [[step, count], ...] change points

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if not self.history:
            self.history.append([state.global_step, self.counter(model)])

    def on_optimizer_step(self, args, state, control, model=None, **kwargs):
        # Runs after the method callbacks of step t = global_step + 1 decided (AFLoRA froze before
        # the update, AdaLoRA re-allocated after it): the new count is in force from step t on.
        count = self.counter(model)
        if count != self.history[-1][1]:
            self.history.append([state.global_step, count])

    def log_scalars(self) -> dict[str, int]:
        """The count in force now, for the Trainer's log lines (harness/execution/tracking.py)."""
        return {"trainable_params": self.history[-1][1]} if self.history else {}

    def state_dict(self) -> dict:
        return {"history": self.history}

    def load_state_dict(self, saved: dict) -> None:
        self.history = saved["history"]

    def summary(self, total_steps: int) -> dict:
        return {
            "trainable_start": self.history[0][1],
            "trainable_end": self.history[-1][1],
            # The mean over every optimizer step of the run, 1..total_steps; a run that trained no
            # step: the count at the start.
            "trainable_avg": (
                time_weighted_average(self.history, total_steps) if total_steps > 0 else float(self.history[0][1])
            ),
            "trainable_history": self.history,
        }
