"""SoRA: the proximal step and the penalty by hand, the gated forward against peft's LoRA, pruning
and the retained count on DeBERTaV3-base shapes, an exact resume through the Trainer."""

from __future__ import annotations

import pytest
import torch
from datasets import Dataset
from omegaconf import OmegaConf
from peft import get_peft_model_state_dict
from torch import nn
from transformers import Trainer, set_seed

from baselines.sora import GATE, GATE_GROUP, gate_of, lora_layers, threshold_
from harness.core.errors import ConfigError
from harness.core.paths import CONF_DIR
from tests.conftest import compose
from tests.test_baselines import DEBERTA_CTX, batch, build, per_model
from tests.tiny_models import cpu_training_args, deberta_v3_base_on_meta, tiny_bert, tiny_ctx

TRAIN = {"lr": 0.1, "head_lr": 0.1, "weight_decay": 0.5, "head_weight_decay": 0.5, "optimizer": "adamw_torch"}


def tiny_sora(seed: int = 0, **overrides):
    knobs = {"r": 4, "alpha": 8, **overrides}
    return build("sora", tiny_bert(seed, dropout=False), tiny_ctx(), **knobs)


def first_layer(model):
    return lora_layers(model)[0][1]


def set_gate(layer, values) -> None:
    """A real gate in place of a meta-device one (the count reads only the gates)."""
    getattr(layer, GATE)["default"] = nn.Parameter(torch.tensor(values, dtype=torch.float32))


# --- the proximal step and the penalty ------------------------------------------------------------


def test_threshold_by_hand():
    values = [0.5, 0.15, 0.05, -0.05, -0.15, -0.5, 0.0, 0.1]
    xi = 0.1
    soft = torch.tensor(values)
    threshold_(soft, xi, "soft")  # the paper's prox: sign(g) max(|g| - xi, 0)
    torch.testing.assert_close(soft, torch.tensor([0.4, 0.05, 0.0, 0.0, -0.05, -0.4, 0.0, 0.0]))
    reference = torch.tensor(values)
    threshold_(reference, xi, "reference")
    # SparseAdamW's three lines: +-0.15 shift to +-0.05, which the third line then zeroes; exactly
    # xi is neither above it nor inside (-xi, xi), so 0.1 stays.
    torch.testing.assert_close(reference, torch.tensor([0.4, 0.0, 0.0, 0.0, 0.0, -0.4, 0.0, 0.1]))
    untouched = torch.tensor(values)
    threshold_(untouched, 0.0, "reference")  # xi = 0: no proximal step at all
    assert torch.equal(untouched, torch.tensor(values))
    with pytest.raises(ConfigError, match="threshold"):
        threshold_(torch.tensor(values), xi, "hard")


@pytest.mark.parametrize("optimizer", ["adamw_torch", "adamw_reference"])
def test_proximal_step_follows_the_adam_step_by_hand(optimizer):
    built = tiny_sora(sparse_lambda_2=0.05)
    model = built.model
    train_cfg = OmegaConf.create({**TRAIN, "optimizer": optimizer})
    opt = built.optimizer(model, train_cfg, ["classifier"])
    gate_groups = [g for g in opt.param_groups if g.get(GATE_GROUP)]
    assert len(gate_groups) == 1 and gate_groups[0]["weight_decay"] == 0.0 and gate_groups[0]["lr"] == 0.1
    assert len(gate_groups[0]["params"]) == 12  # one gate per adapted module
    others = [p for g in opt.param_groups if not g.get(GATE_GROUP) for p in g["params"]]
    assert not {id(p) for p in others} & {id(p) for p in gate_groups[0]["params"]}

    gate = gate_of(first_layer(model), "default")
    with torch.no_grad():
        gate.copy_(torch.tensor([0.5, 0.15, -0.3, 0.02]))
    gate.grad = torch.tensor([1.0, -2.0, 0.0, 0.5])
    a = first_layer(model).lora_A["default"].weight
    a_before = a.detach().clone()
    a.grad = torch.ones_like(a)  # an ordinary parameter: an Adam step, no threshold
    opt.step()
    # First Adam step: m_hat = grad, sqrt(v_hat) = |grad|, so g <- g - lr * sign(grad) (no weight
    # decay on the gates); then xi = 0.05 off, never scaled by lr: [0.4, 0.25, -0.3, -0.03] -> below.
    torch.testing.assert_close(gate.detach(), torch.tensor([0.35, 0.2, -0.25, 0.0]), atol=1e-4, rtol=0)
    # A, an ordinary parameter, takes the plain step of its optimizer: lr 0.1 x sign(grad) and train's
    # weight decay 0.5 (torch: decay first; transformers 4.31's: on the updated value), no threshold
    if optimizer == "adamw_torch":
        expected = a_before * (1 - 0.1 * 0.5) - 0.1
    else:
        expected = (a_before - 0.1) * (1 - 0.1 * 0.5)
    torch.testing.assert_close(a.detach(), expected, atol=1e-5, rtol=0)


def test_gate_lr_and_validation():
    built = tiny_sora(gate_lr=0.003)
    opt = built.optimizer(built.model, OmegaConf.create(TRAIN), ["classifier"])
    assert [g["lr"] for g in opt.param_groups if g.get(GATE_GROUP)] == [0.003]
    for bad in ({"sparse_lambda": -1}, {"sparse_lambda_2": -1e-3}, {"gate_lr": 0.0}, {"threshold": "hard"}):
        with pytest.raises(ConfigError):
            tiny_sora(**bad)
    with pytest.raises(ConfigError, match="gate_init"):
        tiny_sora(gate_init="zeros")


def test_penalty_gradient_by_hand():
    built = tiny_sora(sparse_lambda=12.0)
    (gates_cb,) = built.callbacks
    assert gates_cb.n_entries == 12 * 4
    gate = gates_cb.gates[0]
    with torch.no_grad():
        gate.copy_(torch.tensor([0.5, -0.2, 0.0, 1.0]))
    gate.grad = torch.tensor([0.1, 0.1, 0.1, 0.1])
    for other in gates_cb.gates[1:]:
        other.grad = None
    gates_cb.add_penalty_gradient()
    # d/dg of 12 * sum|g| / 48 = 0.25 * sign(g); sign(0) = 0 as torch.abs's gradient at 0
    torch.testing.assert_close(gate.grad, torch.tensor([0.35, -0.15, 0.1, 0.35]))
    assert gates_cb.gates[1].grad is not None  # a gate without a gradient gets the penalty's alone
    torch.testing.assert_close(gates_cb.gates[1].grad.abs(), torch.full((4,), 0.25))


# --- the gated forward ----------------------------------------------------------------------------


def test_gate_one_is_peft_lora_exactly_and_the_forward_by_hand():
    inputs = batch(torch.Generator().manual_seed(3))
    lora = build("lora", tiny_bert(0, dropout=False), tiny_ctx(), r=4, alpha=8)
    sora = tiny_sora(0, gate_init="ones")
    generator = torch.Generator().manual_seed(1)
    lora_params, sora_params = dict(lora.model.named_parameters()), dict(sora.model.named_parameters())
    with torch.no_grad():
        for name, p in lora_params.items():
            assert torch.equal(p, sora_params[name]), name  # the same seed built the same LoRA
            if "lora_B" in name:  # B = 0 at the start would hide the adapter from the comparison
                values = torch.randn(p.shape, generator=generator)
                p.copy_(values)
                sora_params[name].copy_(values)
    lora.model.eval(), sora.model.eval()
    assert torch.equal(lora.model(**inputs).logits, sora.model(**inputs).logits)

    # One layer by hand: base(x) + alpha / r * B (g * (A x)), with a gate that is not all ones.
    layer = first_layer(sora.model)
    gate = gate_of(layer, "default")
    with torch.no_grad():
        gate.copy_(torch.tensor([0.5, 0.0, -2.0, 1.5]))
    x = torch.randn(3, 32, generator=generator)
    a, b = layer.lora_A["default"].weight, layer.lora_B["default"].weight
    by_hand = layer.base_layer(x) + (8 / 4) * (((x @ a.T) * gate) @ b.T)
    torch.testing.assert_close(layer(x), by_hand)
    # peft's merge folds the gate in: the merged model computes the same function
    before = sora.model(**inputs).logits
    merged = sora.model.merge_and_unload()
    torch.testing.assert_close(merged(**inputs).logits, before, rtol=1e-5, atol=1e-5)


# --- pruning and the retained count ---------------------------------------------------------------


def test_retained_count_on_deberta_v3_base_shapes():
    with torch.device("meta"):
        built = build("sora", deberta_v3_base_on_meta(), DEBERTA_CTX)
    (gates_cb,) = built.callbacks
    layers = dict(gates_cb.layers)
    assert len(layers) == 72
    # Gates on the meta device hold no values: give them real ones.
    for layer in layers.values():
        set_gate(layer, [1.0] * 8)
    # Every rank kept: r_max x (in + out) per module, LoRA r = 8's 1,327,104, plus the 576 gates.
    assert per_model(lambda i, o: 8 * (i + o + 1)) == 1_327_104 + 576
    assert built.count_trainable(built.model) == 1_327_680
    # Every square module keeps 4 ranks, every FFN module all 8: 48 x 4 x 1,537 + 24 x 8 x 3,841.
    for layer in layers.values():
        kept = 8 if layer.in_features != layer.out_features else 4
        set_gate(layer, [1.0] * kept + [0.0] * (8 - kept))
    assert built.count_trainable(built.model) == 48 * 4 * 1537 + 24 * 8 * 3841 == 1_032_576
    assert sum(gates_cb.ranks().values()) == 48 * 4 + 24 * 8
    assert gates_cb.result_fields()["ranks"]["deberta.encoder.layer.0.intermediate.dense"] == 8
    # The AFLoRA paper's SoRA row (r = 4, 0.47M): r_max = 4 with every rank kept would be 663,840.
    with torch.device("meta"):
        r4 = build("sora", deberta_v3_base_on_meta(), DEBERTA_CTX, r=4)
    for _, layer in r4.callbacks[0].layers:
        set_gate(layer, [1.0] * 4)
    assert r4.count_trainable(r4.model) == per_model(lambda i, o: 4 * (i + o + 1)) == 663_840


# --- saving, loading, resuming --------------------------------------------------------------------


def test_the_gates_save_and_load_with_the_adapter(tmp_path):
    built = tiny_sora(0)
    with torch.no_grad():
        for _, layer in built.callbacks[0].layers:
            gate_of(layer, "default").mul_(3.0)
    saved = get_peft_model_state_dict(built.model)
    assert sum("lora_gate" in k for k in saved) == 12
    built.model.save_pretrained(tmp_path)
    fresh = tiny_sora(5)  # another seed: other A and gates
    fresh.model.load_adapter(tmp_path, adapter_name="default", is_trainable=True)  # as the Trainer resumes
    a, b = dict(built.model.named_parameters()), dict(fresh.model.named_parameters())
    for name, p in b.items():
        if "lora_" in name:
            assert torch.equal(p, a[name]), name
    assert all(p.requires_grad for n, p in b.items() if "lora_gate" in n)


def _dataset(n: int = 32) -> Dataset:
    data = batch(torch.Generator().manual_seed(1), size=n)
    return Dataset.from_dict({k: v.tolist() for k, v in data.items()})


def _train(out_dir, resume=None, **knobs):
    set_seed(0)
    # xi large enough to zero gates within a few steps of lr 1e-2
    built = tiny_sora(0, sparse_lambda=10.0, sparse_lambda_2=0.02, **knobs)
    args = cpu_training_args(
        out_dir, num_train_epochs=3, per_device_train_batch_size=8, lr_scheduler_type="constant", eval_strategy="no"
    )
    optimizer = built.optimizer(built.model, OmegaConf.create({**TRAIN, "lr": 1e-2, "head_lr": 1e-2}), ["classifier"])
    trainer = Trainer(
        model=built.model,
        args=args,
        train_dataset=_dataset(),
        callbacks=built.callbacks,
        optimizers=(optimizer, None),
    )
    trainer.train(resume_from_checkpoint=resume)
    return built


def test_trainer_resume_is_exact(tmp_path):
    # 32 examples / batch 8 = 4 steps an epoch, 3 epochs; resume from the first epoch's checkpoint
    straight = _train(tmp_path / "a")
    ranks = straight.callbacks[0].ranks()
    assert sum(ranks.values()) < 12 * 4, "some gate must have reached zero"
    assert sum(ranks.values()) > 0
    resumed = _train(tmp_path / "b", resume=str(tmp_path / "a" / "checkpoint-4"))
    assert resumed.callbacks[0].ranks() == ranks
    a = dict(straight.model.named_parameters())
    for name, p in resumed.model.named_parameters():
        if p.requires_grad:
            assert torch.equal(p, a[name]), name


# --- the official code's protocol on DeBERTaV3 (docs/method.md, "SoRA") --------------------------


def test_the_deberta_recipes_leave_the_classifier_as_the_official_code_does_and_minilm_trains_it():
    tasks = sorted(p.stem for p in (CONF_DIR / "recipe" / "deberta-v3-base" / "sora").glob("*.yaml"))
    assert len(tasks) == 8
    for task in tasks:
        assert compose(["model=deberta-v3-base", "method=sora", f"task={task}"]).method.train_head is False, task
    assert compose(["model=minilm", "method=sora", "task=rte"]).method.train_head is True  # the study's protocol


def test_a_frozen_head_is_kept_saved_and_unchanged_by_training(tmp_path):
    frozen = _train(tmp_path / "frozen", train_head=False)
    classifier = {n: p for n, p in frozen.model.named_parameters() if ".modules_to_save." in n}
    assert classifier and not any(p.requires_grad for p in classifier.values())
    set_seed(0)
    untrained = tiny_sora(0, train_head=False)
    before = dict(untrained.model.named_parameters())
    for name, p in classifier.items():
        assert torch.equal(p, before[name]), name  # three epochs left the classifier as it was built
    assert any(not torch.equal(p, before[n]) for n, p in frozen.model.named_parameters() if GATE in n)  # they trained
    frozen.model.save_pretrained(tmp_path / "saved")  # the random classifier the adapter predicts with
    assert any("classifier" in k for k in get_peft_model_state_dict(frozen.model))
