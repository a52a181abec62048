"""AFLoRA's freezing: schedule, rules, scores, the callback in a training loop, accounting, state."""

from __future__ import annotations

import copy
import logging
import math
from types import SimpleNamespace

import pytest
import torch
from transformers import TrainerControl, TrainerState

from aflora import (
    AFLoraFreezer,
    AFLoraLayer,
    CubicSchedule,
    SensitivityScorer,
    fraction_rule,
    quantile_rule,
)
from tests.tiny_models import tiny_bert, wrap_aflora

FFN = [
    f"bert.encoder.layer.{i}.{kind}.{p}"
    for i in range(2)
    for kind in ("intermediate.dense", "output.dense")
    for p in "AB"
]


# -- schedule -------------------------------------------------------------------------------------


def test_cubic_schedule_matches_hand_computation():
    s = CubicSchedule(total_steps=100, t_i=10, t_f=30, interval=10)
    # window length T - t_i - t_f = 60
    assert s.fraction(0) == 0.0 and s.fraction(10) == 0.0
    assert s.fraction(11) == pytest.approx(1 - (1 - 1 / 60) ** 3)
    assert s.fraction(40) == pytest.approx(1 - 0.5**3)  # = 0.875
    assert s.fraction(70) == pytest.approx(1.0)
    assert s.fraction(71) == 1.0 and s.fraction(99) == 1.0
    decisions = [t for t in range(100) if s.is_decision_step(t)]
    assert decisions == [20, 30, 40, 50, 60, 70] + list(range(71, 100))


@pytest.mark.parametrize(("t_i", "t_f"), [(50, 50), (60, 50), (0, 100)])
def test_cubic_schedule_rejects_t_i_plus_t_f_not_below_total(t_i, t_f):
    with pytest.raises(ValueError, match=rf"t_i={t_i} \+ t_f={t_f} >= T=100"):
        CubicSchedule(total_steps=100, t_i=t_i, t_f=t_f)


# -- rules ----------------------------------------------------------------------------------------


SCORES = [
    torch.tensor([1.0, 2.0, 3.0, 4.0]),  # mean 2.5
    torch.tensor([0.1, 0.2, 0.3, 0.2]),  # mean 0.2
    torch.tensor([5.0, 5.0, 6.0, 8.0]),  # mean 6.0
    torch.tensor([0.5, 1.5, 0.5, 1.5]),  # mean 1.0
]  # 16 elements, sorted: .1 .2 .2 .3 .5 .5 1 1.5 1.5 2 3 4 5 5 6 8


@pytest.mark.parametrize(
    ("fraction", "expected"),
    [
        (0.5, [1, 3]),  # k = 8 -> cut 1.5: means 0.2 and 1.0 are below
        (0.4, [1]),  # k = int(6.4) = 6 -> cut 0.5: only 0.2 below
        (0.7, [0, 1, 3]),  # k = int(11.2) = 11 -> cut 3.0: means 0.2, 1.0, 2.5 are below
        (0.25, [1]),  # k = 4 -> cut 0.3: only 0.2 below
        (0.01, []),  # k = int(0.16) = 0, clamped to 1 -> cut 0.1: nothing is below
        (0.9999, [0, 1, 3]),  # k = 15 -> cut 6.0: 6.0 itself is not below it
        (1.0, [0, 1, 2, 3]),  # after T - t_f everything left freezes
    ],
)
def test_quantile_rule(fraction, expected):
    assert quantile_rule(SCORES, fraction) == expected


def test_quantile_rule_freezes_constant_matrices_at_full_fraction():
    scores = [torch.zeros(3), torch.zeros(5)]  # the cut alone (max = 0) would spare both
    assert quantile_rule(scores, 0.99) == []
    assert quantile_rule(scores, 1.0) == [0, 1]
    assert quantile_rule([], 0.5) == []


def test_fraction_rule_freezes_floor_r_n_lowest():
    means = [2.5, 0.2, 6.0, 1.0]
    assert fraction_rule(means, 0.5, n_schedulable=4, n_frozen=0) == [1, 3]  # floor(2.0) = 2 lowest
    assert fraction_rule(means, 0.74, n_schedulable=4, n_frozen=0) == [1, 3]  # floor(2.96) = 2
    assert fraction_rule(means, 0.75, n_schedulable=4, n_frozen=0) == [0, 1, 3]
    # 10 schedulable, 6 frozen already, pool of 4: r = 0.8 -> 8 frozen -> 2 more
    assert fraction_rule(means, 0.8, n_schedulable=10, n_frozen=6) == [1, 3]
    assert fraction_rule(means, 0.5, n_schedulable=10, n_frozen=6) == []
    assert fraction_rule(means, 1.0, n_schedulable=10, n_frozen=6) == [0, 1, 2, 3]
    assert fraction_rule([1.0, 1.0, 0.5], 0.7, n_schedulable=3, n_frozen=0) == [0, 2]  # ties: lower index


# -- scores ---------------------------------------------------------------------------------------


def param_with_grad(value: list[float], grad: list[float]) -> torch.nn.Parameter:
    p = torch.nn.Parameter(torch.tensor(value))
    p.grad = torch.tensor(grad)
    return p


def test_scorer_per_step_matches_hand_computation():
    scorer = SensitivityScorer(beta1=0.85, beta2=0.95, window=1)
    ipt = unc = 0.0
    for step, g in enumerate([2.0, -1.0, 4.0]):
        scorer.update(step, [("m", param_with_grad([3.0], [g]))])
        ipt = 0.85 * ipt + 0.15 * abs(g)
        unc = 0.95 * unc + 0.05 * abs(abs(g) - ipt)
    assert scorer.score("m").item() == pytest.approx(ipt * unc)


def test_scorer_window_averages_and_advances_on_multiples():
    scorer = SensitivityScorer(beta1=0.5, beta2=0.5, window=3, sensitivity="weight_grad")
    grads = [1.0, 2.0, 3.0, 4.0, 5.0]
    for step, g in enumerate(grads):
        scorer.update(step, [("m", param_with_grad([-2.0], [g]))])
        if step == 1:  # window still open: nothing advanced yet
            assert scorer.score("m").item() == 0.0
    # window of steps 0..2 closed after step 2: I = mean(|-2 g|) = 4
    ipt = 0.5 * 4.0
    unc = 0.5 * abs(4.0 - ipt)
    assert scorer.score("m").item() == pytest.approx(ipt * unc)  # steps 3, 4 still in the open window
    assert scorer.window_count == 2


# -- the callback in a training loop --------------------------------------------------------------


def tiny_aflora(seed: int = 0) -> torch.nn.Module:
    return wrap_aflora(tiny_bert(seed, dropout=False))  # no dropout: runs compare exactly


def batch(step: int) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(1000 + step)
    return {
        "input_ids": torch.randint(0, 100, (4, 8), generator=gen),
        "labels": torch.randint(0, 2, (4,), generator=gen),
    }


def train(model, freezer, steps: range, state: TrainerState, optimizer=None, snapshots=None, prune=True):
    """A plain AdamW loop calling the freezer where the HF Trainer calls it (``prune=False``: as the
    Trainer did before frozen projections left the optimizer, i.e. without ``on_optimizer_step``)."""
    args, control = SimpleNamespace(max_grad_norm=0, output_dir="unused"), TrainerControl()
    optimizer = optimizer or torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=1e-2, weight_decay=0.1
    )
    for step in steps:
        state.global_step = step
        model(**batch(step)).loss.backward()
        freezer.on_pre_optimizer_step(args, state, control)
        optimizer.step()
        if prune:
            freezer.on_optimizer_step(args, state, control, optimizer=optimizer)
        optimizer.zero_grad()
        if snapshots is not None:
            snapshots.append({n: p.detach().clone() for n, p in model.named_parameters() if "aflora_" in n})
    state.global_step = steps.stop
    return optimizer


def begin(freezer, step: int = 0, optimizer=None) -> TrainerState:
    state = TrainerState(global_step=step)
    args = SimpleNamespace(max_grad_norm=0, output_dir="unused")
    freezer.on_train_begin(args, state, TrainerControl(), optimizer=optimizer)
    return state


def param_name(proj_name: str) -> str:
    module, which = proj_name.rsplit(".", 1)
    return f"base_model.model.{module}.aflora_{which}.default"


@pytest.mark.parametrize("last_update", [True, False])
def test_training_freezes_on_schedule_and_frozen_matrices_stop_changing(last_update):
    model = tiny_aflora()
    freezer = AFLoraFreezer(model, total_steps=30, t_i=4, t_f=10, window=2, last_update=last_update)
    assert freezer.result_fields()["freezing"]["bert.encoder.layer.0.attention.self.query.A"] == 0
    snapshots = []
    state = begin(freezer)
    train(model, freezer, range(30), state, snapshots=snapshots)
    steps = freezer.result_fields()["freezing"]
    modules = [
        "attention.self.query",
        "attention.self.key",
        "attention.self.value",
        "attention.output.dense",
        "intermediate.dense",
        "output.dense",
    ]
    assert set(steps) == {f"bert.encoder.layer.{i}.{m}.{p}" for i in range(2) for m in modules for p in "AB"}
    assert all(steps[n] == 0 for n in steps if "attention" in n)  # frozen from the start (`ffn`)
    assert all(steps[n] is not None and 4 < steps[n] <= 20 for n in FFN)  # r(20) = 1: nothing is left after
    assert any(steps[n] < 20 for n in FFN)  # the cubic window froze some before the final phase
    for name in FFN:
        frozen_at, pname = steps[name], param_name(name)
        assert not torch.equal(snapshots[frozen_at - 1][pname], snapshots[0][pname])  # it trained before
        # last_update: step t's own gradient still moves it (the reference code); else t leaves it as it was
        moved_at_freeze = not torch.equal(snapshots[frozen_at][pname], snapshots[frozen_at - 1][pname])
        assert moved_at_freeze is last_update, name
        for later in snapshots[frozen_at + 1 :]:  # every step after t leaves it untouched
            assert torch.equal(later[pname], snapshots[frozen_at][pname])
    d_name = "base_model.model.bert.encoder.layer.0.intermediate.dense.aflora_d.default"
    assert not torch.equal(snapshots[-1][d_name], snapshots[-2][d_name])  # d still trains (and decays)
    assert not any(p.requires_grad for n, p in model.named_parameters() if "aflora_A" in n or "aflora_B" in n)
    # average over the 30 steps: d and b all the time, each projection for the steps it trained (= its freeze step)
    named = dict(model.named_parameters())
    vectors = sum(p.numel() for n, p in named.items() if p.requires_grad and "classifier" not in n)
    expected_avg = vectors + sum(named[param_name(n)].numel() * steps[n] for n in FFN) / 30
    summary = freezer.trainable_summary(30)
    assert summary["end"] == vectors and summary["avg"] == pytest.approx(expected_avg)
    assert summary["end"] < summary["avg"] < summary["start"]


def test_dry_run_decides_as_a_real_run_but_freezes_nothing():
    real, dry = tiny_aflora(), tiny_aflora()
    real_freezer = AFLoraFreezer(real, total_steps=30, t_i=4, t_f=10, window=2)
    dry_freezer = AFLoraFreezer(dry, total_steps=30, t_i=4, t_f=10, window=2, dry_run=True)
    trainable = {n for n, p in dry.named_parameters() if p.requires_grad}
    train(real, real_freezer, range(20), begin(real_freezer))
    train(dry, dry_freezer, range(20), begin(dry_freezer))
    frozen_by_real = {n for n, s in real_freezer.freeze_steps.items() if s not in (None, 0)}
    assert frozen_by_real  # the cubic window froze some before step 20
    assert {n for n, p in dry.named_parameters() if p.requires_grad} == trainable
    assert all(s in (None, 0) for s in dry_freezer.freeze_steps.values())
    # Until the real run first froze, both trained alike: the first non-empty decision is the same.
    step, names = next((step, names) for step, names in dry_freezer.dry_run_decisions if names)
    assert step == min(real_freezer.freeze_steps[n] for n in frozen_by_real)
    assert set(names) == {n for n in frozen_by_real if real_freezer.freeze_steps[n] == step}


def test_early_return_once_everything_is_frozen():
    model = tiny_aflora()
    freezer = AFLoraFreezer(model, total_steps=30, t_i=4, t_f=10, window=2)
    state = begin(freezer)
    freezer.freeze(FFN, step=5)
    window_count = freezer.scorer.window_count
    train(model, freezer, range(6, 10), state)
    assert freezer.scorer.window_count == window_count and not freezer.scorer.window_sum


def test_trainable_accounting_on_scripted_freezing():
    model = tiny_aflora()
    freezer = AFLoraFreezer(model, total_steps=10, t_i=2, t_f=3, window=1)
    begin(freezer)
    # per layer: d (6 x r=4), b (5 outputs of 32 and one of 64), FFN A (4x32, 4x64) and B (64x4, 32x4)
    start = 2 * (24 + 5 * 32 + 64) + 2 * (4 * 32 + 64 * 4 + 4 * 64 + 32 * 4)
    assert freezer.trainable_history == [(0, start)]
    inter_a = 4 * 32  # bert.encoder.layer.0.intermediate.dense.A: (r, in) = (4, 32)
    out_b = 32 * 4  # ... output.dense.B: (out, r) = (32, 4)
    freezer.freeze([FFN[0]], step=3)
    freezer.freeze([FFN[3], FFN[1]], step=6)
    inter_b = 64 * 4
    summary = freezer.trainable_summary(total_steps=10)
    expected_avg = (start * 3 + (start - inter_a) * 3 + (start - inter_a - out_b - inter_b) * 4) / 10
    assert summary == {"start": start, "end": start - inter_a - out_b - inter_b, "avg": pytest.approx(expected_avg)}
    assert summary["end"] < summary["avg"] < summary["start"]
    counted = sum(p.numel() for n, p in model.named_parameters() if p.requires_grad and "classifier" not in n)
    assert counted == summary["end"]
    with pytest.raises(KeyError, match="not trainable"):
        freezer.freeze([FFN[0]], step=7)


def test_warns_when_it_would_score_clipped_gradients(caplog):
    freezer = AFLoraFreezer(tiny_aflora(), total_steps=10, t_i=2, t_f=3)
    with caplog.at_level(logging.WARNING, logger="aflora.freezing"):
        freezer.on_train_begin(SimpleNamespace(max_grad_norm=1.0, output_dir="x"), TrainerState(), TrainerControl())
    assert "max_grad_norm=0" in caplog.text


def test_state_round_trip_gives_identical_decisions(tmp_path):
    model_a, model_b = tiny_aflora(seed=3), tiny_aflora(seed=3)
    freezer_a = AFLoraFreezer(model_a, total_steps=40, t_i=4, t_f=12, window=3)
    state_a = begin(freezer_a)
    opt_a = train(model_a, freezer_a, range(13), state_a)
    assert any(s not in (None, 0) for s in freezer_a.freeze_steps.values())  # some froze, some did not yet
    assert any(s is None for s in freezer_a.freeze_steps.values())
    folder = tmp_path / "checkpoint-13"
    folder.mkdir()
    freezer_a.on_save(SimpleNamespace(output_dir=str(tmp_path)), state_a, TrainerControl())

    # a fresh process: same model weights and optimizer state, state loaded from the file; the
    # optimizer is built after load_state has frozen what froze, as the harness builds it
    model_b.load_state_dict(model_a.state_dict())
    freezer_b = AFLoraFreezer(model_b, total_steps=40, t_i=4, t_f=12, window=3)
    freezer_b.load_state(folder)
    opt_b = torch.optim.AdamW([p for p in model_b.parameters() if p.requires_grad], lr=1e-2, weight_decay=0.1)
    opt_b.load_state_dict(copy.deepcopy(opt_a.state_dict()))  # a copy: the two runs continue side by side
    state_b = begin(freezer_b, step=13)
    for name, step in freezer_a.freeze_steps.items():
        frozen = dict(model_b.named_parameters())[param_name(name)].requires_grad is False
        assert frozen is (step is not None), name

    train(model_a, freezer_a, range(13, 40), state_a, optimizer=opt_a)
    train(model_b, freezer_b, range(13, 40), state_b, optimizer=opt_b)
    assert freezer_b.freeze_steps == freezer_a.freeze_steps
    assert freezer_b.trainable_history == freezer_a.trainable_history
    for (name, pa), pb in zip(model_a.named_parameters(), model_b.parameters(), strict=True):
        assert torch.equal(pa, pb), name


def test_a_version_1_freezer_state_is_refused():
    """Version 1 (an optimizer state still holding the frozen projections) is no longer read."""
    model = tiny_aflora(seed=3)
    freezer = AFLoraFreezer(model, total_steps=40, t_i=4, t_f=12, window=3)
    begin(freezer)
    with pytest.raises(ValueError, match="version"):
        freezer.load_state_dict({**freezer.state_dict(), "version": 1})


def test_on_train_begin_finds_the_state_of_the_checkpoint_it_resumes(tmp_path):
    model = tiny_aflora()
    freezer = AFLoraFreezer(model, total_steps=30, t_i=2, t_f=5, window=1)
    state = begin(freezer)
    freezer.freeze([FFN[2]], step=4)
    state.global_step = 8
    (tmp_path / "checkpoint-8").mkdir()
    freezer.on_save(SimpleNamespace(output_dir=str(tmp_path)), state, TrainerControl())

    fresh = AFLoraFreezer(tiny_aflora(), total_steps=30, t_i=2, t_f=5, window=1)
    fresh.on_train_begin(
        SimpleNamespace(max_grad_norm=0, output_dir=str(tmp_path)), TrainerState(global_step=8), TrainerControl()
    )
    assert fresh.freeze_steps == freezer.freeze_steps
    layer = fresh.model.base_model.model.bert.encoder.layer[0].output.dense  # FFN[2]: its A
    assert isinstance(layer, AFLoraLayer) and not layer.aflora_A["default"].requires_grad
    assert math.isclose(fresh.trainable_summary(30)["avg"], freezer.trainable_summary(30)["avg"])
