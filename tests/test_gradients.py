"""The harness's gradient clipping clips as AFLoRA's own callback does, and it stops a diverged run."""

from __future__ import annotations

import math

import pytest
import torch
from transformers import TrainerControl, TrainerState

from aflora import ClipGradNormCallback
from harness.execution.gradients import ClipAndCheckGradients, NonFiniteGradientError


def model_with_grads(weight: float, bias: float) -> torch.nn.Linear:
    model = torch.nn.Linear(3, 1)
    model.weight.grad = torch.full_like(model.weight, weight)
    model.bias.grad = torch.full_like(model.bias, bias)
    return model


def pre_optimizer_step(callback, model) -> None:
    callback.on_pre_optimizer_step(None, TrainerState(global_step=4), TrainerControl(), model=model)


def test_the_harness_clips_as_aflora_s_callback_on_the_trainer_s_model():
    ours, theirs = model_with_grads(3.0, 4.0), model_with_grads(3.0, 4.0)
    harness_clip, aflora_clip = ClipAndCheckGradients(0.5), ClipGradNormCallback(theirs, 0.5)
    pre_optimizer_step(harness_clip, ours)
    pre_optimizer_step(aflora_clip, None)  # it clips the model it was given
    assert torch.equal(ours.weight.grad, theirs.weight.grad) and torch.equal(ours.bias.grad, theirs.bias.grad)
    assert harness_clip.last_norm == aflora_clip.last_norm == pytest.approx(math.sqrt(3 * 9 + 16))
    assert torch.linalg.vector_norm(torch.cat([ours.weight.grad.flatten(), ours.bias.grad])) == pytest.approx(0.5)


def test_max_norm_0_measures_without_clipping():
    model = model_with_grads(3.0, 4.0)
    clip = ClipAndCheckGradients(0)
    pre_optimizer_step(clip, model)
    assert torch.equal(model.weight.grad, torch.full((1, 3), 3.0))
    assert torch.equal(model.bias.grad, torch.full((1,), 4.0))
    assert clip.last_norm == pytest.approx(math.sqrt(43))
    with pytest.raises(ValueError, match="max_norm must be positive"):
        ClipGradNormCallback(model, 0)  # AFLoRA's own callback: no clipping is spelt math.inf


@pytest.mark.parametrize("max_norm", [0, 1.0])
def test_a_non_finite_gradient_stops_the_run(max_norm):
    with pytest.raises(NonFiniteGradientError, match="optimizer step 5"):
        pre_optimizer_step(ClipAndCheckGradients(max_norm), model_with_grads(math.nan, 1.0))
