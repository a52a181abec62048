"""Parameter counts, the time-weighted average, per-epoch records and the optimizer step count."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from aflora.freezing import time_weighted_average
from harness.core.errors import ConfigError
from harness.execution.history import best_and_final, per_epoch_records
from harness.execution.optim import parameter_groups
from harness.execution.params import TrainableParamTracker, count_parameters, is_head_param
from harness.execution.params import time_weighted_average as run_average
from harness.execution.training import batch_layout, optimizer_steps
from harness.inputs.tasks import TaskSpec
from tests.conftest import compose


def test_time_weighted_average_by_hand():
    # 100 trainable during steps 1-10, 60 during 11-25, 20 during 26-40
    history = [[0, 100], [10, 60], [25, 20]]
    assert time_weighted_average(history, 40, since=0) == pytest.approx((10 * 100 + 15 * 60 + 15 * 20) / 40)
    assert time_weighted_average([[0, 7]], 12, since=0) == 7
    assert time_weighted_average(history, 20, since=0) == pytest.approx((10 * 100 + 10 * 60) / 20)  # cut at 20
    # A record that starts at step 10: over the run (since 0) steps 1-10 count 0; over the steps it
    # saw (since 10, as AFLoraFreezer.trainable_summary) they are left out.
    late = [[10, 60], [25, 20]]
    assert time_weighted_average(late, 40, since=0) == pytest.approx((15 * 60 + 15 * 20) / 40)
    assert time_weighted_average(late, 40, since=10) == pytest.approx((15 * 60 + 15 * 20) / 30)
    assert time_weighted_average(late, 10, since=10) == 0  # no step seen: nothing over one


def test_the_run_s_time_weighted_average_by_hand():
    """The harness's average over a whole run (harness/execution/params.py), apart from AFLoRA's own."""
    history = [[0, 100], [10, 60], [25, 20]]
    assert run_average(history, 40) == pytest.approx((10 * 100 + 15 * 60 + 15 * 20) / 40)
    assert run_average(history, 20) == pytest.approx((10 * 100 + 10 * 60) / 20)  # cut at 20
    assert run_average([[10, 60], [25, 20]], 40) == pytest.approx((15 * 60 + 15 * 20) / 40)  # steps 1-10 count 0
    assert run_average([[0, 7]], 12) == 7


def test_the_run_record_averages_over_every_step_of_the_run():
    tracker = TrainableParamTracker(counter=lambda model: 0)
    tracker.history = [[0, 100], [10, 60], [25, 20]]
    assert tracker.summary(40)["trainable_avg"] == (10 * 100 + 15 * 60 + 15 * 20) / 40
    assert tracker.summary(0)["trainable_avg"] == 100.0  # no step trained: the count at the start


def test_head_names_match_whole_components():
    heads = ["classifier"]
    assert is_head_param("base_model.model.classifier.modules_to_save.default.weight", heads)
    assert not is_head_param("bert.encoder.layer.0.attention.self.query.classifierish", heads)
    assert is_head_param("deberta.pooler.dense.weight", ["classifier", "pooler"])


def test_counts_skip_peft_shadow_copy_and_split_head():
    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.body = torch.nn.Linear(4, 4)  # 20
            self.classifier = torch.nn.Linear(4, 2)  # 10

    model = Tiny()
    model.body.weight.requires_grad_(False)
    counts = count_parameters(model, ["classifier"])
    assert counts == {"total": 30, "head": 10, "trainable": 4}


def test_parameter_groups_give_head_its_own_lr_and_no_decay_on_its_bias():
    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.adapter = torch.nn.Linear(4, 4)
            self.classifier = torch.nn.Linear(4, 2)

    train = OmegaConf.create({"lr": 1e-2, "head_lr": 4e-2, "weight_decay": 0.1, "head_weight_decay": 0.1})
    groups = parameter_groups(Tiny(), train, ["classifier"])
    assert [(len(g["params"]), g["lr"], g["weight_decay"]) for g in groups] == [
        (2, 1e-2, 0.1),
        (1, 4e-2, 0.1),
        (1, 4e-2, 0.0),
    ]


def test_batch_layout_keeps_the_effective_batch():
    train = OmegaConf.create({"batch_size": 256, "per_device_batch_size": 64, "max_steps": -1, "epochs": 10})
    assert batch_layout(train, 1) == (64, 4)
    assert batch_layout(train, 4) == (64, 1)
    assert batch_layout(OmegaConf.create({"batch_size": 64, "per_device_batch_size": None}), 2) == (32, 1)
    with pytest.raises(ConfigError, match="not a multiple"):
        batch_layout(train, 3)


def test_optimizer_steps_by_hand():
    train = OmegaConf.create({"batch_size": 32, "per_device_batch_size": 16, "max_steps": -1, "epochs": 3})
    # 100 examples -> 7 batches of 16 -> ceil(7 / 2) = 4 optimizer steps per epoch
    assert optimizer_steps(100, train, 1) == (4, 12)


def test_per_epoch_records_for_mnli_use_suffixes():
    spec = TaskSpec.from_config(compose(["task=mnli"]).task)
    history = [
        {"loss": 1.0, "epoch": 0.5, "step": 5},
        {"loss": 0.8, "epoch": 1.0, "step": 10},
        {"eval_validation_matched_loss": 0.9, "eval_validation_matched_accuracy": 0.6, "epoch": 1.0, "step": 10},
        {
            "eval_validation_mismatched_loss": 0.95,
            "eval_validation_mismatched_accuracy": 0.58,
            "epoch": 1.0,
            "step": 10,
        },
        {"loss": 0.6, "epoch": 2.0, "step": 20},
        {"eval_validation_matched_loss": 0.7, "eval_validation_matched_accuracy": 0.55, "epoch": 2.0, "step": 20},
        {
            "eval_validation_mismatched_loss": 0.72,
            "eval_validation_mismatched_accuracy": 0.61,
            "epoch": 2.0,
            "step": 20,
        },
    ]
    records = per_epoch_records(history, spec)
    assert [(r["epoch"], r["step"], r["accuracy"], r["accuracy_mm"]) for r in records] == [
        (1, 10, 0.6, 0.58),
        (2, 20, 0.55, 0.61),
    ]
    assert records[0]["train_loss"] == pytest.approx(0.9) and records[1]["train_loss"] == pytest.approx(0.6)
    best, final = best_and_final(records, spec)
    assert best["epoch"] == 1 and final["epoch"] == 2  # selected on matched accuracy only


def test_an_epochs_train_loss_weights_each_logged_window_by_its_steps():
    spec = TaskSpec.from_config(compose(["task=rte"]).task)
    history = [
        {"loss": 1.0, "epoch": 0.3, "step": 3},  # the mean of steps 1-3
        {"loss": 0.4, "epoch": 1.0, "step": 10},  # of steps 4-10: the window the epoch end closed
        {"eval_validation_loss": 0.7, "eval_validation_accuracy": 0.6, "epoch": 1.0, "step": 10},
        {"loss": 0.2, "epoch": 1.1, "step": 11},
        {"eval_validation_loss": 0.6, "eval_validation_accuracy": 0.7, "epoch": 2.0, "step": 20},
    ]
    records = per_epoch_records(history, spec)
    assert records[0]["train_loss"] == pytest.approx((3 * 1.0 + 7 * 0.4) / 10)  # 0.58, not (1.0 + 0.4) / 2
    assert records[1]["train_loss"] == pytest.approx(0.2)
