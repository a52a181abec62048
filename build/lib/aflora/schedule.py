"""The cubic freezing schedule r(t) and the two rules that turn it into freezing
(docs/method.md, "The freezing schedule").

Steps are counted as the HF Trainer's ``state.global_step`` during the step being taken, i.e. the
number of optimizer steps already completed (0 for the first step), as the reference code does.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class CubicSchedule:
    """r(t), the fraction of projection matrices that should be frozen at step t.

    r(t) = 0 for t <= t_i; 1 - (1 - (t - t_i) / (T - t_i - t_f))^3 for t_i < t <= T - t_f; 1 after.
    Decisions are taken every ``interval`` steps inside the cubic window and at every step after
    T - t_f (reference code: ``schedule_threshold_comb``).
    """

    total_steps: int  # T, optimizer steps of the whole run
    t_i: int  # initial warm-up steps without freezing
    t_f: int  # final steps in which everything is frozen
    interval: int = 10  # ΔT

    def __post_init__(self) -> None:
        for key in ("total_steps", "t_i", "t_f", "interval"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"CubicSchedule.{key} must be a non-negative integer, got {value!r}")
        if self.interval < 1:
            raise ValueError(f"CubicSchedule.interval (ΔT) must be >= 1, got {self.interval}")
        if self.t_i + self.t_f >= self.total_steps:
            raise ValueError(
                f"the freezing schedule needs t_i + t_f < total steps, got t_i={self.t_i} + t_f={self.t_f} "
                f">= T={self.total_steps}: shorten t_i/t_f or train for more steps"
            )

    def fraction(self, step: int) -> float:
        """r(step) in [0, 1]."""
        if step <= self.t_i:
            return 0.0
        if step > self.total_steps - self.t_f:
            return 1.0
        remaining = 1.0 - (step - self.t_i) / (self.total_steps - self.t_i - self.t_f)
        return 1.0 - remaining**3

    def is_decision_step(self, step: int) -> bool:
        """Whether the freezing rule runs at this step."""
        if step <= self.t_i:
            return False
        if step > self.total_steps - self.t_f:
            return True
        return step % self.interval == 0


def quantile_rule(scores: Sequence[torch.Tensor], fraction: float) -> list[int]:
    """Reference-code rule: indices of the matrices to freeze now.

    ``scores`` holds the element-level scores (Ī ⊙ Ū) of each still-trainable matrix. The cut is the
    k-th smallest element over all of them with k = ⌊N·r⌋ (N their total size), clamped to [1, N];
    every matrix whose mean score is strictly below the cut freezes. With r >= 1 everything left
    freezes (r(t) = 1 means "all frozen"; the cut alone would spare a matrix whose scores are all
    equal to the largest one, e.g. all zero).
    """
    if not scores:
        return []
    if fraction >= 1.0:
        return list(range(len(scores)))
    flat = torch.cat([s.reshape(-1) for s in scores])  # (N,)
    k = min(max(int(flat.numel() * fraction), 1), flat.numel())
    cut = torch.kthvalue(flat.float(), k).values
    means = torch.stack([s.float().mean() for s in scores])  # (matrices,)
    return [i for i, below in enumerate((means < cut).tolist()) if below]


def fraction_rule(mean_scores: Sequence[float], fraction: float, n_schedulable: int, n_frozen: int) -> list[int]:
    """Paper-wording rule: freeze the lowest-scored matrices until ⌊r·n⌋ of the n are frozen.

    ``mean_scores`` are the mean scores of the still-trainable matrices, ``n_schedulable`` the
    number of matrices the schedule acts on (trainable at the start) and ``n_frozen`` how many of
    them it has frozen already. Ties go to the lower index, so the choice is deterministic.
    """
    target = min(math.floor(fraction * n_schedulable), n_schedulable)
    n_new = max(0, min(target - n_frozen, len(mean_scores)))
    order = sorted(range(len(mean_scores)), key=lambda i: (mean_scores[i], i))
    return sorted(order[:n_new])
