"""transformers 4.31's AdamW (harness/execution/reference_adamw.py): its formula by hand, exact resume, the switch."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from transformers import Trainer

from harness.config.validation import validate_config
from harness.core.errors import ConfigError
from harness.execution.optim import build_optimizer
from harness.execution.reference_adamw import ReferenceAdamW
from tests.conftest import compose
from tests.tiny_models import cpu_training_args, tiny_bert

# Large eps and weight decay, so that where each enters the update shows in the result.
LR, BETAS, EPS, WD = 0.1, (0.9, 0.99), 0.01, 0.5
START = [1.0, -2.0]
GRADS = [[0.5, -2.0], [-0.3, 1.0], [0.2, 0.0]]


def optimizer_steps(grads, eps=EPS, wd=WD, optimizer_cls=ReferenceAdamW) -> torch.Tensor:
    param = torch.nn.Parameter(torch.tensor(START, dtype=torch.float64))
    optimizer = optimizer_cls([param], lr=LR, betas=BETAS, eps=eps, weight_decay=wd)
    for grad in grads:
        param.grad = torch.tensor(grad, dtype=torch.float64)
        optimizer.step()
    return param.detach()


def by_hand(grads) -> np.ndarray:
    """The 4.31 update written out per element: moments, step size with both bias corrections,
    eps added to sqrt(v) before the correction, then the decay of the updated weight."""
    beta1, beta2 = BETAS
    p, m, v = np.array(START), np.zeros(2), np.zeros(2)
    for t, g in enumerate(np.array(grads), start=1):
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        p = p - LR * math.sqrt(1 - beta2**t) / (1 - beta1**t) * m / (np.sqrt(v) + EPS)
        p = p - LR * WD * p
    return p


def test_first_step_by_hand():
    # element 0: m = 0.1 * 0.5 = 0.05, v = 0.01 * 0.25 = 0.0025, sqrt(v) + eps = 0.06,
    # step size = 0.1 * sqrt(0.01) / 0.1 = 0.1, so p = 1 - 0.1 * 0.05 / 0.06, then p *= 1 - 0.1 * 0.5.
    # element 1: m = -0.2, v = 0.04, sqrt(v) + eps = 0.21: p = -2 + 0.1 * 0.2 / 0.21, then the same decay.
    expected = [(1 - 0.1 * 0.05 / 0.06) * 0.95, (-2 + 0.1 * 0.2 / 0.21) * 0.95]
    assert torch.allclose(optimizer_steps(GRADS[:1]), torch.tensor(expected, dtype=torch.float64), rtol=1e-12)


def test_three_steps_match_the_formula_written_out():
    assert np.allclose(optimizer_steps(GRADS).numpy(), by_hand(GRADS), rtol=1e-12, atol=0)


def test_equals_torch_adamw_without_eps_and_decay_and_differs_with_them():
    # With eps = 0 and no decay both rules reduce to lr * m_hat / sqrt(v_hat): torch's is the reference.
    ours = optimizer_steps(GRADS, eps=0.0, wd=0.0)
    torch_adamw = optimizer_steps(GRADS, eps=0.0, wd=0.0, optimizer_cls=torch.optim.AdamW)
    assert torch.allclose(ours, torch_adamw, rtol=1e-12)
    assert not torch.allclose(optimizer_steps(GRADS), optimizer_steps(GRADS, optimizer_cls=torch.optim.AdamW))


def test_a_parameter_without_gradient_is_left_alone():
    moving, idle = torch.nn.Parameter(torch.ones(2)), torch.nn.Parameter(torch.ones(2))
    optimizer = ReferenceAdamW([moving, idle], lr=LR, weight_decay=WD)
    moving.grad = torch.ones(2)
    optimizer.step()
    assert not torch.equal(moving, torch.ones(2))
    assert torch.equal(idle, torch.ones(2)) and idle not in optimizer.state  # no update, no decay, no state


def two_groups() -> tuple[list[torch.nn.Parameter], ReferenceAdamW]:
    params = [torch.nn.Parameter(torch.tensor(START)), torch.nn.Parameter(torch.tensor([0.5, 0.25]))]
    groups = [{"params": [params[0]], "lr": LR, "weight_decay": WD}, {"params": [params[1]], "lr": 0.3}]
    return params, ReferenceAdamW(groups, betas=BETAS, eps=EPS)


def run_steps(params, optimizer, steps: range) -> None:
    for step in steps:
        for i, param in enumerate(params):
            param.grad = torch.sin(torch.arange(2.0) + step + 3 * i)
        optimizer.step()


def test_resume_from_a_saved_state_continues_identically():
    straight_params, straight = two_groups()
    run_steps(straight_params, straight, range(6))

    params, optimizer = two_groups()
    run_steps(params, optimizer, range(3))
    saved = io.BytesIO()
    torch.save({"params": [p.detach() for p in params], "optimizer": optimizer.state_dict()}, saved)
    saved.seek(0)
    checkpoint = torch.load(saved, weights_only=True)  # as the Trainer reads its checkpoints
    resumed_params, resumed = two_groups()
    with torch.no_grad():
        for param, value in zip(resumed_params, checkpoint["params"], strict=True):
            param.copy_(value)
    resumed.load_state_dict(checkpoint["optimizer"])
    assert resumed.state[resumed_params[0]]["step"] == 3
    run_steps(resumed_params, resumed, range(3, 6))
    for a, b in zip(straight_params, resumed_params, strict=True):
        assert torch.equal(a, b)


def trainer_run(output_dir: Path, resume: str | None = None) -> torch.nn.Module:
    model = tiny_bert(dropout=False)
    optimizer = ReferenceAdamW(model.parameters(), lr=1e-3, weight_decay=0.1)
    gen = torch.Generator().manual_seed(0)
    data = [
        {"input_ids": torch.randint(0, 100, (8,), generator=gen), "labels": torch.randint(0, 2, (), generator=gen)}
        for _ in range(8)
    ]
    args = cpu_training_args(output_dir, per_device_train_batch_size=4, num_train_epochs=3)
    Trainer(model=model, args=args, train_dataset=data, optimizers=(optimizer, None)).train(
        resume_from_checkpoint=resume
    )
    return model


def test_trainer_checkpoint_resume_is_exact(tmp_path):
    straight = trainer_run(tmp_path / "straight")
    resumed = trainer_run(tmp_path / "straight", resume=str(tmp_path / "straight" / "checkpoint-2"))
    for (name, a), b in zip(straight.named_parameters(), resumed.parameters(), strict=True):
        assert torch.equal(a, b), name


@pytest.mark.parametrize(("name", "cls"), [("adamw_torch", torch.optim.AdamW), ("adamw_reference", ReferenceAdamW)])
def test_train_optimizer_picks_the_rule(name, cls):
    train = OmegaConf.create(
        {"optimizer": name, "lr": 1e-2, "head_lr": 4e-2, "weight_decay": 0.1, "head_weight_decay": 0}
    )
    optimizer = build_optimizer(tiny_bert(), train, ["classifier"])
    assert type(optimizer) is cls
    assert [g["lr"] for g in optimizer.param_groups] == [1e-2, 4e-2, 4e-2]


def test_unknown_optimizer_is_named_before_the_run_starts():
    validate_config(compose(["train.optimizer=adamw_reference"]))
    with pytest.raises(
        ConfigError, match=r"train.optimizer = 'adam' is not one of \['adamw_reference', 'adamw_torch'\]"
    ):
        validate_config(compose(["train.optimizer=adam"]))
