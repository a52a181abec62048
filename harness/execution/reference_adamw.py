"""AdamW as transformers 4.31 computed it, the optimizer behind the AFLoRA paper's numbers.

The reference code trained with the Trainer's default of that time (``adamw_hf``). Its update
differs from ``torch.optim.AdamW`` in two places (docs/method.md, "The optimizer"):

- epsilon is added to sqrt(v) before the bias correction, and the correction goes into the step
  size: ``p -= lr * sqrt(1 - beta2^t) / (1 - beta1^t) * m / (sqrt(v) + eps)``;
- the decoupled weight decay comes after that update: ``p -= lr * wd * p``, on the updated p.

A parameter without a gradient is skipped whole (no moment decay, no weight decay), as there.
The state (step count and both moments per parameter) lives in ``self.state``, so it saves and
loads through ``state_dict``/``load_state_dict`` and with it through the Trainer's checkpoints.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch


class ReferenceAdamW(torch.optim.Optimizer):
    def __init__(
        self,
        params: Iterable[torch.nn.Parameter] | Iterable[dict[str, Any]],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ):
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            lr, eps, weight_decay = group["lr"], group["eps"], group["weight_decay"]
            for param in group["params"]:
                if param.grad is None:
                    continue
                grad = param.grad
                state = self.state[param]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(param)
                    state["exp_avg_sq"] = torch.zeros_like(param)
                state["step"] += 1
                step = state["step"]
                exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
                exp_avg.mul_(beta1).add_(grad, alpha=1.0 - beta1)
                exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1.0 - beta2)
                step_size = lr * math.sqrt(1.0 - beta2**step) / (1.0 - beta1**step)
                param.addcdiv_(exp_avg, exp_avg_sq.sqrt().add_(eps), value=-step_size)
                if weight_decay > 0.0:
                    param.add_(param, alpha=-lr * weight_decay)
        return loss
