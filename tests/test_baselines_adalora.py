"""AdaLoRA: the allocator callback really prunes, the regulariser reaches the loss, resume is exact."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from datasets import Dataset
from transformers import Trainer, TrainerControl, TrainerState

from baselines.adalora import ALLOCATOR_FILE, resolve_schedule
from harness.core.errors import ConfigError
from harness.execution.methods import method_settings
from tests.test_baselines import batch, build, method_cfg
from tests.tiny_models import cpu_training_args, tiny_bert, tiny_ctx

N_MODULES = 12  # tiny BERT: 2 layers x 6 linear types


def tiny_adalora(total_steps: int, seed: int = 0, **overrides):
    knobs = {"init_r": 4, "target_r": 2, **overrides}
    return build("adalora", tiny_bert(seed), tiny_ctx(total_steps=total_steps), **knobs)


def test_ranks_shrink_on_the_cubic_schedule():
    total, tinit, tfinal = 20, 2, 5
    built = tiny_adalora(total, tinit=f"{tinit} steps", tfinal=f"{tfinal} steps", deltaT=1)
    (allocator,) = built.callbacks
    model = built.model
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2, weight_decay=0.0)
    state, control = TrainerState(), TrainerControl()
    generator = torch.Generator().manual_seed(0)
    start = allocator.trainable_parameters(model)
    totals = []
    for step in range(total):
        state.global_step = step
        model(**batch(generator)).loss.backward()
        optimizer.step()
        allocator.on_optimizer_step(None, state, control)
        optimizer.zero_grad()
        totals.append(sum(allocator.ranks().values()))

    # The budget by hand (AdaLoRA eq. 12): init 12 x 4 = 48 triplets, target 12 x 2 = 24, cubic in
    # between, fixed from step total - tfinal on; with deltaT = 1 every step re-allocates.
    init, target = N_MODULES * 4, N_MODULES * 2
    for step, kept in enumerate(totals):
        if step <= tinit:
            assert kept == init, step
        elif step < total - tfinal:
            progress = (step - tinit) / (total - tfinal - tinit)
            assert kept == int((init - target) * (1 - progress) ** 3 + target), step
        else:
            assert kept == target, step
    assert totals[-1] < totals[0]

    ranks = allocator.ranks()
    assert len(ranks) == N_MODULES and max(ranks.values()) <= 4
    # the accounting follows the pruning: r x (in + out + 1) per module of the tiny BERT
    shapes = {name: m.in_features + m.out_features + 1 for name, m in allocator.adapted_modules()}
    assert allocator.trainable_parameters(model) == sum(r * shapes[n] for n, r in ranks.items()) < start
    # pruned singular values are zero in the model itself (peft masks them every step of the final phase)
    for name, m in allocator.adapted_modules():
        kept = torch.tensor(allocator.rank_pattern[f"{name}.lora_E.default"])
        assert torch.all(m.lora_E["default"].detach().view(-1)[~kept] == 0)
    # the pattern stays out of peft's config between steps: checkpoints keep the full-rank shapes
    assert allocator.config.rank_pattern is None
    assert allocator.result_fields()["ranks"] == ranks


def test_orthogonal_regulariser_reaches_the_loss():
    gamma = 0.3
    built = tiny_adalora(10, tinit="2 steps", tfinal="2 steps", orth_reg_weight=gamma)
    inputs = batch(torch.Generator().manual_seed(0))
    out = built.model(**inputs)
    plain = F.cross_entropy(out.logits, inputs["labels"])
    # AdaLoRA's R(P, Q): the mean over all singular-vector matrices of ||A A^T - I||_F (right
    # vectors, lora_A, r x in) and ||B^T B - I||_F (left vectors, lora_B, out x r)
    terms = []
    for _, m in built.callbacks[0].adapted_modules():
        a, b = m.lora_A["default"], m.lora_B["default"]
        terms.append(torch.linalg.norm(a @ a.T - torch.eye(a.shape[0])))
        terms.append(torch.linalg.norm(b.T @ b - torch.eye(b.shape[1])))
    reg = torch.stack(terms).mean()
    assert reg > 0.5  # N(0, 0.02) init: far from orthonormal
    assert out.loss.item() == pytest.approx((plain + gamma * reg).item(), rel=1e-5)
    assert out.loss.item() > plain.item() + 0.1


def settings(**overrides):
    return method_settings(method_cfg("adalora", **overrides))


def test_schedule_from_steps_or_fractions():
    cfg = settings(tinit="600 steps", tfinal="1800 steps")
    assert resolve_schedule(cfg, tiny_ctx(3900, 78)) == (600, 1800)  # RTE: 50 epochs x 78 steps
    with pytest.raises(ConfigError, match=r"method.tinit = 600 and method.tfinal = 1800.*total_steps = 40"):
        resolve_schedule(cfg, tiny_ctx(40))  # a debug run with the DeBERTa recipe's steps
    assert resolve_schedule(settings(), tiny_ctx(400)) == (60, 180)  # the yaml's 15 % / 45 %
    # Rounded to the nearest step, as every AdaLoRA run so far: 0.15 x 8 = 1.2 -> 1, 0.45 x 8 = 3.6 -> 4.
    assert resolve_schedule(settings(), tiny_ctx(8)) == (1, 4)
    with pytest.raises(ConfigError, match=r"^method.tinit = '150%' must be below 100% of the run$"):
        settings(tinit="150%")


def test_total_step_must_match_the_trainer():
    built = tiny_adalora(10)
    state = TrainerState(max_steps=12)
    with pytest.raises(ConfigError, match="12 optimizer steps.*total_step = 10"):
        built.callbacks[0].on_train_begin(None, state, TrainerControl())


def _dataset(n: int = 32) -> Dataset:
    g = torch.Generator().manual_seed(1)
    data = batch(g, size=n)
    return Dataset.from_dict({k: v.tolist() for k, v in data.items()})


def _trainer(built, out_dir, resume_steps=None) -> Trainer:
    args = cpu_training_args(
        out_dir,
        num_train_epochs=3,
        per_device_train_batch_size=8,
        lr_scheduler_type="constant",
        eval_strategy="no",
        dataloader_num_workers=0,
    )
    return Trainer(model=built.model, args=args, train_dataset=_dataset(), callbacks=built.callbacks)


def test_trainer_drives_allocation_and_resumes_exactly(tmp_path):
    # 32 examples / batch 8 = 4 steps per epoch, 3 epochs = 12 steps; masking from step 2 on.
    kw = {"tinit": "1 step", "tfinal": "3 steps", "deltaT": 1}
    full = tiny_adalora(12, **kw)
    _trainer(full, tmp_path / "a").train()
    assert sum(full.callbacks[0].ranks().values()) == N_MODULES * 2
    ckpt = tmp_path / "a" / "checkpoint-4"
    assert (ckpt / ALLOCATOR_FILE).exists()

    # a fresh process: rebuild, restore the allocator, let the Trainer load weights + optimizer
    resumed = tiny_adalora(12, **kw)
    resumed.callbacks[0].load_state(ckpt)
    assert resumed.callbacks[0].rank_pattern is not None  # pruning had started by step 4
    _trainer(resumed, tmp_path / "b").train(resume_from_checkpoint=str(ckpt))

    assert resumed.callbacks[0].ranks() == full.callbacks[0].ranks()
    a = dict(full.model.named_parameters())
    for n, p in resumed.model.named_parameters():
        if "lora_" in n:
            torch.testing.assert_close(p, a[n], rtol=1e-4, atol=1e-6, msg=n)


def test_load_state_needs_the_allocator_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=ALLOCATOR_FILE):
        tiny_adalora(10).callbacks[0].load_state(tmp_path)
