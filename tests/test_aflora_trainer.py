"""AFLoRA in a stock HF Trainer: raw-gradient scoring, checkpoints, exact resume, the harness builder."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from transformers import Trainer, TrainerCallback, TrainingArguments

from aflora import FREEZER_STATE_FILE, AFLoraFreezer, ClipGradNormCallback
from harness.core.errors import ConfigError
from harness.core.paths import conf_file
from harness.execution.methods import method_builder, method_settings
from tests.tiny_models import cpu_training_args, tiny_bert, tiny_ctx, wrap_aflora

METHOD_YAML = conf_file("method", "aflora")


def tiny_backbone() -> torch.nn.Module:
    return tiny_bert(dropout=False)  # no dropout: an interrupted and an uninterrupted run compare exactly


def dataset(n: int = 16) -> list[dict[str, torch.Tensor]]:
    gen = torch.Generator().manual_seed(0)
    return [
        {"input_ids": torch.randint(0, 100, (8,), generator=gen), "labels": torch.randint(0, 2, (), generator=gen)}
        for _ in range(n)
    ]


def args(output_dir: Path, epochs: int = 4) -> TrainingArguments:
    return cpu_training_args(
        output_dir, per_device_train_batch_size=4, num_train_epochs=epochs, weight_decay=0.1, max_grad_norm=0.0
    )


def run(output_dir: Path, resume: str | None = None) -> tuple[torch.nn.Module, AFLoraFreezer]:
    model = wrap_aflora(tiny_backbone())
    freezer = AFLoraFreezer(model, total_steps=16, t_i=2, t_f=6, window=2)
    if resume is not None:
        freezer.load_state(resume)
    callbacks = [freezer, ClipGradNormCallback(model, 0.1)]
    Trainer(model=model, args=args(output_dir), train_dataset=dataset(), callbacks=callbacks).train(
        resume_from_checkpoint=resume
    )
    return model, freezer


def test_resume_from_a_checkpoint_reproduces_the_uninterrupted_run(tmp_path):
    full_model, full = run(tmp_path / "full")
    steps = full.result_fields()["freezing"]
    assert all(s is not None for s in steps.values())
    assert any(0 < s < 8 for s in steps.values())  # froze before the checkpoint we resume from
    assert any(s >= 8 for s in steps.values())  # and after it (step 8 is the first one after checkpoint-8)
    for k in (4, 8, 12, 16):
        assert (tmp_path / "full" / f"checkpoint-{k}" / FREEZER_STATE_FILE).is_file()

    # resume in a "new process": stock Trainer, optimizer built from requires_grad parameters
    resumed_model, resumed = run(tmp_path / "full", resume=str(tmp_path / "full" / "checkpoint-8"))
    assert resumed.result_fields() == full.result_fields()
    assert resumed.trainable_summary() == full.trainable_summary()
    for (name, a), b in zip(full_model.named_parameters(), resumed_model.parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-6), name


def test_frozen_projections_leave_the_optimizer(tmp_path):
    model = wrap_aflora(tiny_backbone())
    freezer = AFLoraFreezer(model, total_steps=16, t_i=2, t_f=6, window=2)
    trainer = Trainer(
        model=model, args=args(tmp_path), train_dataset=dataset(), callbacks=[freezer, ClipGradNormCallback(model, 0.1)]
    )
    trainer.train()
    assert all(step is not None for step in freezer.result_fields()["freezing"].values())  # every projection froze
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert {id(p) for group in trainer.optimizer.param_groups for p in group["params"]} == trainable
    assert {id(p) for p in trainer.optimizer.state} == trainable  # the frozen ones' moments are gone too


class GradSpy(TrainerCallback):
    """Records one gradient in on_pre_optimizer_step, before the callbacks listed after it."""

    def __init__(self, param):
        self.param, self.grads = param, []

    def on_pre_optimizer_step(self, args, state, control, **kwargs):
        self.grads.append(self.param.grad.detach().clone())


def test_freezer_scores_raw_gradients_and_clipping_follows(tmp_path):
    model = wrap_aflora(tiny_backbone(), b_init=0.5)
    freezer = AFLoraFreezer(model, total_steps=8, t_i=2, t_f=3, window=1)
    name = "bert.encoder.layer.0.intermediate.dense.A"
    param = model.base_model.model.bert.encoder.layer[0].intermediate.dense.aflora_A["default"]
    spy, clip = GradSpy(param), ClipGradNormCallback(model, 1e-4)
    trainer = Trainer(
        model=model, args=args(tmp_path, epochs=1), train_dataset=dataset(4), callbacks=[spy, freezer, clip]
    )
    trainer.train()
    assert clip.last_norm > 1e-4  # the clip did act
    raw = spy.grads[0].abs()
    assert raw.sum() > 0
    assert torch.allclose(freezer.scorer.ipt_avg[name], 0.15 * raw)  # Ī after one step: (1 - β1) |raw grad|


def build(cfg_overrides: dict, total_steps: int = 100, steps_per_epoch: int = 5):
    cfg = OmegaConf.merge(OmegaConf.load(METHOD_YAML), cfg_overrides)
    return method_builder(cfg)(tiny_backbone(), method_settings(cfg), tiny_ctx(total_steps, steps_per_epoch, seed=0))


def test_builder_from_the_method_yaml():
    built = build({})
    (freezer,) = built.callbacks
    assert isinstance(freezer, AFLoraFreezer)
    assert freezer.schedule.total_steps == 100 and freezer.schedule.t_i == 5 and freezer.schedule.t_f == 70
    assert freezer.schedule.interval == 10 and freezer.rule == "quantile" and freezer.scorer.sensitivity == "grad"
    assert (freezer.scorer.beta1, freezer.scorer.beta2) == (0.85, 0.95)
    config = built.model.peft_config["default"]
    assert (config.r, config.trainable_projections, config.d_init, config.b_init) == (4, "ffn", 0.1, 0.0)
    assert "classifier" in config.modules_to_save
    assert sum(s is None for s in freezer.freeze_steps.values()) == 8  # the FFN projections of 2 layers


def test_builder_step_overrides_and_schedule_error():
    (freezer,) = build({"t_i": "3 steps", "t_f": "20 steps", "freeze_rule": "fraction", "window": 1}).callbacks
    assert (freezer.schedule.t_i, freezer.schedule.t_f, freezer.rule) == (3, 20, "fraction")
    (by_fraction,) = build({}, total_steps=60).callbacks  # the yaml's 5 % / 70 % of the run
    assert (by_fraction.schedule.t_i, by_fraction.schedule.t_f) == (3, 42)
    with pytest.raises(
        ConfigError, match=r"t_i=1 epoch \(5 steps\) \+ t_f=14 epochs \(70 steps\)"
    ):  # the 20-epoch recipe on a short run
        build({"t_i": "1 epoch", "t_f": "14 epochs"}, total_steps=60)
