"""Freezing score of each projection matrix, smoothed sensitivity times uncertainty
(docs/method.md, "The freezing score").

Per element: I = |grad| (``"grad"``, the paper) or |P * grad| (``"weight_grad"``, AdaLoRA's form);
Ī <- β1 Ī + (1-β1) I;  Ū <- β2 Ū + (1-β2) |I - Ī| (with the updated Ī); score = Ī ⊙ Ū.

Window. As in the reference code, I is averaged over a window of ΔT steps and Ī, Ū advance once
per window. The window closes after the step whose global step t satisfies (t + 1) % ΔT == 0, so a
decision at a multiple of ΔT sees the averages up to the previous step, exactly as the reference
(which advances at the start of step t % ΔT == 0 with the previous window's mean); ``window=1``
gives the paper's per-step update, in which step t's own gradient is already in Ī and Ū.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch

SENSITIVITIES = ("grad", "weight_grad")


class SensitivityScorer:
    """Keeps Ī, Ū and the window accumulator for a set of named matrices."""

    def __init__(self, beta1: float = 0.85, beta2: float = 0.95, window: int = 10, sensitivity: str = "grad"):
        for key, value in (("beta1", beta1), ("beta2", beta2)):
            if not 0.0 <= value < 1.0:
                raise ValueError(f"{key} must be in [0, 1), got {value!r}")
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise ValueError(f"window (ΔT) must be a positive integer, got {window!r}")
        if sensitivity not in SENSITIVITIES:
            raise ValueError(f"sensitivity must be one of {SENSITIVITIES}, got {sensitivity!r}")
        self.beta1, self.beta2, self.window, self.sensitivity = beta1, beta2, window, sensitivity
        self.ipt_avg: dict[str, torch.Tensor] = {}  # Ī, same shape as the matrix
        self.unc_avg: dict[str, torch.Tensor] = {}  # Ū
        self.window_sum: dict[str, torch.Tensor] = {}  # Σ I over the open window
        self.window_count = 0  # steps in the open window

    def update(self, step: int, matrices: Iterable[tuple[str, torch.Tensor]]) -> None:
        """Add this step's sensitivity of each (name, parameter); close the window when it is full.

        A parameter without a gradient (unused in this step's forward) contributes zero.
        """
        with torch.no_grad():
            for name, param in matrices:
                total = self.window_sum.get(name)
                if total is None:
                    total = self.window_sum[name] = torch.zeros_like(param, dtype=torch.float32)
                if param.grad is not None:
                    grad = param.grad.detach().float()
                    total += grad.abs() if self.sensitivity == "grad" else (param.detach().float() * grad).abs()
            self.window_count += 1
            if (step + 1) % self.window == 0:
                self._advance()

    def _advance(self) -> None:
        count = max(self.window_count, 1)
        for name, total in self.window_sum.items():
            ipt = total / count  # the window's mean sensitivity I
            ipt_avg = self.ipt_avg.get(name)
            if ipt_avg is None:  # Ī and Ū start at 0
                ipt_avg = self.ipt_avg[name] = torch.zeros_like(ipt)
                self.unc_avg[name] = torch.zeros_like(ipt)
            ipt_avg.mul_(self.beta1).add_(ipt, alpha=1 - self.beta1)
            self.unc_avg[name].mul_(self.beta2).add_((ipt - ipt_avg).abs(), alpha=1 - self.beta2)
            total.zero_()
        self.window_count = 0

    def score(self, name: str) -> torch.Tensor:
        """Element-level score Ī ⊙ Ū of a matrix (zeros before its first window closed)."""
        ipt_avg = self.ipt_avg.get(name)
        if ipt_avg is None:
            return torch.zeros_like(self.window_sum[name])
        return ipt_avg * self.unc_avg[name]

    def drop(self, name: str) -> None:
        """Forget a matrix (it froze): frees its buffers and its per-step cost."""
        for store in (self.ipt_avg, self.unc_avg, self.window_sum):
            store.pop(name, None)

    def state_dict(self) -> dict[str, Any]:
        """Tensors on CPU plus plain values: loadable with ``torch.load(weights_only=True)``."""

        def cpu(store: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
            return {name: tensor.detach().cpu() for name, tensor in store.items()}

        return {
            "ipt_avg": cpu(self.ipt_avg),
            "unc_avg": cpu(self.unc_avg),
            "window_sum": cpu(self.window_sum),
            "window_count": self.window_count,
        }

    def load_state_dict(self, state: dict[str, Any], devices: Mapping[str, torch.device] | None = None) -> None:
        """Restore from ``state_dict()``; ``devices`` maps matrix names to their parameter's device."""
        devices = devices or {}

        def place(store: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
            return {name: tensor.to(devices.get(name, tensor.device), copy=True) for name, tensor in store.items()}

        self.ipt_avg = place(state["ipt_avg"])
        self.unc_avg = place(state["unc_avg"])
        self.window_sum = place(state["window_sum"])
        self.window_count = int(state["window_count"])
