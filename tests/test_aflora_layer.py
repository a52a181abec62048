"""The AFLoRA layer and tuner: forward, init, trainability, merge, disable, save/load, counts."""

from __future__ import annotations

import math

import pytest
import torch
from peft import PeftModel, get_peft_model
from torch import nn
from transformers import set_seed

from aflora import AFLoraConfig, AFLoraLayer
from tests.tiny_models import (
    BERT_TARGETS,
    DEBERTA_TARGETS,
    deberta_v3_base_on_meta,
    tiny_bert,
    tiny_deberta,
    wrap_aflora,
)


def tiny_model(family: str, seed: int = 0) -> nn.Module:
    return (tiny_bert if family == "bert" else tiny_deberta)(seed).eval()


def wrap(model: nn.Module, family: str = "bert", **kwargs) -> PeftModel:
    return wrap_aflora(model, BERT_TARGETS if family == "bert" else DEBERTA_TARGETS, **kwargs)


def aflora_layers(model: nn.Module) -> dict[str, AFLoraLayer]:
    return {name: m for name, m in model.get_base_model().named_modules() if isinstance(m, AFLoraLayer)}


def randomise_vectors(model: nn.Module, seed: int = 1) -> None:
    """Give d and b non-trivial values so the adapter path is not zero."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in aflora_layers(model).values():
            for vec in (layer.aflora_d["default"], layer.aflora_b["default"]):
                vec.copy_(torch.randn(vec.shape, generator=gen))


def trainable_adapter_params(model: nn.Module) -> int:
    return sum(p.numel() for n, p in model.named_parameters() if p.requires_grad and "classifier" not in n.split("."))


INPUT_IDS = torch.randint(0, 100, (3, 9), generator=torch.Generator().manual_seed(0))


class TwoLinears(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(5, 7)
        self.other = nn.Linear(7, 7)

    def forward(self, x):
        return self.other(self.lin(x))


def test_layer_output_matches_hand_computation():
    set_seed(0)
    model = get_peft_model(TwoLinears(), AFLoraConfig(r=3, target_modules=["lin"]))
    layer = model.base_model.model.lin
    assert isinstance(layer, AFLoraLayer) and not isinstance(model.base_model.model.other, AFLoraLayer)
    with torch.no_grad():
        layer.aflora_b["default"].copy_(torch.linspace(-1.0, 2.0, 7))
        layer.aflora_d["default"].copy_(torch.tensor([0.5, -2.0, 1.5]))
    x = torch.randn(4, 5)
    w0, bias = layer.base_layer.weight, layer.base_layer.bias  # (7, 5), (7,)
    A, B = layer.aflora_A["default"], layer.aflora_B["default"]  # (3, 5), (7, 3)
    d, b = layer.aflora_d["default"], layer.aflora_b["default"]
    expected = torch.stack(
        [w0 @ xi + bias + b * (B @ (d * (A @ xi))) for xi in x]  # one example at a time, as written in §1
    )
    assert torch.allclose(layer(x), expected, atol=1e-6)
    assert A.shape == (3, 5) and B.shape == (7, 3) and d.shape == (3,) and b.shape == (7,)


def test_init_kaiming_uniform_d_b_and_seed_reproducible():
    model = wrap(tiny_model("bert"), trainable_projections="all")
    layers = aflora_layers(model)
    for layer in layers.values():
        A, B = layer.aflora_A["default"], layer.aflora_B["default"]
        # Kaiming-uniform, a=0, fan_in: bound sqrt(6 / fan_in); fan_in is `in` for A and r for B
        assert A.abs().max() <= math.sqrt(6 / layer.in_features) and A.abs().max() > 0.8 * math.sqrt(
            6 / layer.in_features
        )
        assert B.abs().max() <= math.sqrt(6 / 4) and B.abs().max() > 0.8 * math.sqrt(6 / 4)
        assert torch.all(layer.aflora_d["default"] == 0.1) and torch.all(layer.aflora_b["default"] == 0.0)
    a_first = [layer.aflora_A["default"] for layer in layers.values()]
    assert not torch.equal(a_first[0], a_first[1])  # every layer has its own A
    again = aflora_layers(wrap(tiny_model("bert"), trainable_projections="all"))
    for name, layer in layers.items():
        assert torch.equal(layer.aflora_A["default"], again[name].aflora_A["default"])
        assert torch.equal(layer.aflora_B["default"], again[name].aflora_B["default"])


@pytest.mark.parametrize("family", ["bert", "deberta"])
def test_wraps_six_linears_per_layer_not_the_pooler_and_starts_at_base_output(family):
    base = tiny_model(family)
    with torch.no_grad():
        expected = base(INPUT_IDS).logits
    model = wrap(base, family)
    names = aflora_layers(model)
    assert len(names) == 2 * 6
    assert not any("pooler" in n for n in names)
    with torch.no_grad():
        assert torch.equal(model(INPUT_IDS).logits, expected)  # b = 0 at init


@pytest.mark.parametrize(
    ("rule", "trainable"),
    [
        ("ffn", {"intermediate.dense", "output.dense"}),
        ("all", {"query", "key", "value", "attention.output.dense", "intermediate.dense", "output.dense"}),
        ("attention", {"query", "key", "value", "attention.output.dense"}),
        ("none", set()),
    ],
)
def test_trainable_projections_rule(rule, trainable):
    model = wrap(tiny_model("bert"), trainable_projections=rule)
    for name, layer in aflora_layers(model).items():
        # the longest matching suffix: "attention.output.dense" also ends with "output.dense"
        kind = max((t for t in BERT_TARGETS if name.endswith(t)), key=len)
        for which in ("A", "B"):
            assert layer.projection("default", which).requires_grad is (kind in trainable), (name, which)
            assert layer.is_projection_frozen("default", which) is (kind not in trainable)
        assert layer.aflora_d["default"].requires_grad and layer.aflora_b["default"].requires_grad
    head = model.base_model.model.classifier
    assert all(p.requires_grad for p in head.modules_to_save["default"].parameters())
    assert not any(p.requires_grad for n, p in model.named_parameters() if "base_layer" in n or "embeddings" in n)


def test_merge_equals_unmerged_and_delta_weight_by_hand():
    model = wrap(tiny_model("deberta"), "deberta", trainable_projections="all")
    randomise_vectors(model)
    layer = next(iter(aflora_layers(model).values()))
    A, B = layer.aflora_A["default"], layer.aflora_B["default"]
    d, b = layer.aflora_d["default"], layer.aflora_b["default"]
    assert torch.allclose(layer.get_delta_weight("default"), torch.diag(b) @ B @ torch.diag(d) @ A, atol=1e-6)
    w_before = layer.base_layer.weight.detach().clone()
    with torch.no_grad():
        unmerged = model(INPUT_IDS).logits
        layer.merge()
        assert torch.allclose(layer.base_layer.weight, w_before + torch.diag(b) @ B @ torch.diag(d) @ A, atol=1e-6)
        layer.unmerge()
        assert torch.allclose(layer.base_layer.weight, w_before, atol=1e-6)
        merged_model = model.merge_and_unload()
        assert not aflora_layers_in(merged_model)
        assert torch.allclose(merged_model(INPUT_IDS).logits, unmerged, atol=1e-5)


def aflora_layers_in(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, AFLoraLayer)]


def test_disable_adapter_gives_base_logits_and_keeps_frozen_projections_frozen():
    base = tiny_model("bert")
    with torch.no_grad():
        expected = base(INPUT_IDS).logits
    model = wrap(base)
    randomise_vectors(model)
    with torch.no_grad():
        assert not torch.allclose(model(INPUT_IDS).logits, expected, atol=1e-4)
        with model.disable_adapter():
            assert torch.allclose(model(INPUT_IDS).logits, expected, atol=1e-6)
    # leaving the context re-enables gradients through set_adapter: frozen projections stay frozen
    for name, layer in aflora_layers(model).items():
        square = layer.in_features == layer.out_features
        assert layer.projection("default", "A").requires_grad is not square, name


def test_freeze_projection_survives_set_adapter_and_drops_grad():
    model = wrap(tiny_model("bert"))
    layer = aflora_layers(model)["bert.encoder.layer.0.intermediate.dense"]
    model(INPUT_IDS).logits.sum().backward()
    assert layer.aflora_A["default"].grad is not None
    layer.freeze_projection("default", "A")
    assert layer.aflora_A["default"].grad is None and not layer.aflora_A["default"].requires_grad
    model.set_adapter("default")
    model.base_model.set_requires_grad("default", True)
    assert not layer.aflora_A["default"].requires_grad
    assert layer.aflora_B["default"].requires_grad
    assert layer.aflora_frozen["default"].tolist() == [True, False]


FROZEN_IN_TRAINING = {"deberta.encoder.layer.1.output.dense": "B", "deberta.encoder.layer.0.intermediate.dense": "A"}


def load_for_training(path, how: str) -> tuple[PeftModel, str]:
    """The saved adapter loaded for training by one of peft's load paths, with no other call."""
    if how == "from_pretrained":
        return PeftModel.from_pretrained(tiny_model("deberta"), path, is_trainable=True), "default"
    if how == "from_pretrained_low_cpu_mem_usage":
        loaded = PeftModel.from_pretrained(tiny_model("deberta"), path, is_trainable=True, low_cpu_mem_usage=True)
        return loaded, "default"
    base = tiny_model("deberta")
    set_seed(5)  # other adapter weights than the saved ones: the load must replace them
    model = wrap(base, "deberta")
    model.load_adapter(path, "default", is_trainable=True)  # "load_adapter": into a live adapter of that name
    return model, "default"


@pytest.mark.parametrize("how", ["from_pretrained", "from_pretrained_low_cpu_mem_usage", "load_adapter"])
def test_every_load_path_keeps_frozen_projections_frozen(tmp_path, how):
    model = wrap(tiny_model("deberta"), "deberta")
    randomise_vectors(model)
    for name, which in FROZEN_IN_TRAINING.items():
        aflora_layers(model)[name].freeze_projection("default", which)
    with torch.no_grad():
        expected = model(INPUT_IDS).logits
    model.save_pretrained(tmp_path)

    loaded, adapter = load_for_training(tmp_path, how)
    with torch.no_grad():
        assert torch.equal(loaded(INPUT_IDS).logits, expected)
    for name, layer in aflora_layers(loaded).items():
        # the flags (from the saved buffer) and requires_grad agree, with no set_adapter in between
        for which in ("A", "B"):
            frozen = FROZEN_IN_TRAINING.get(name) == which or layer.in_features == layer.out_features
            assert layer.is_projection_frozen(adapter, which) is frozen, (name, which)
            assert layer.projection(adapter, which).requires_grad is not frozen, (name, which)
    # one plain optimizer step over what requires a gradient moves the trainable matrices only
    before = {n: p.detach().clone() for n, p in loaded.named_parameters() if "aflora_" in n}
    optimizer = torch.optim.SGD([p for p in loaded.parameters() if p.requires_grad], lr=1.0)
    loaded(INPUT_IDS).logits.sum().backward()
    optimizer.step()
    moved = {n for n, p in loaded.named_parameters() if "aflora_" in n and not torch.equal(p, before[n])}
    for name, which in FROZEN_IN_TRAINING.items():
        assert f"base_model.model.{name}.aflora_{which}.{adapter}" not in moved
    assert "base_model.model.deberta.encoder.layer.1.output.dense.aflora_A.default" in moved


def test_a_second_adapter_loaded_under_its_own_name_keeps_its_frozen_projections(tmp_path):
    model = wrap(tiny_model("deberta"), "deberta")
    name = "deberta.encoder.layer.1.output.dense"
    aflora_layers(model)[name].freeze_projection("default", "B")
    model.save_pretrained(tmp_path)

    target = wrap(tiny_model("deberta"), "deberta")
    target.load_adapter(tmp_path, "second", is_trainable=True)
    layer = aflora_layers(target)[name]
    assert layer.is_projection_frozen("second", "B") and not layer.is_projection_frozen("default", "B")
    assert not layer.aflora_B["second"].requires_grad
    target.set_adapter("second")  # activating it switches its gradients on, except the frozen one's
    assert layer.aflora_A["second"].requires_grad and not layer.aflora_B["second"].requires_grad


def test_frozen_peft_weight_names_is_one_dict_per_layer_changed_in_place():
    """As in peft's own tuners: a caller holding the dict sees adapters come and go."""
    model = wrap(tiny_model("bert"))
    layers = aflora_layers(model)
    layer = layers["bert.encoder.layer.0.intermediate.dense"]
    held = layer.frozen_peft_weight_names
    assert AFLoraLayer.frozen_peft_weight_names == {}  # the class attribute peft declares stays untouched
    assert held is not layers["bert.encoder.layer.0.output.dense"].frozen_peft_weight_names
    assert held == {"default": ()}
    assert layers["bert.encoder.layer.0.attention.self.query"].frozen_peft_weight_names == {
        "default": ("aflora_A", "aflora_B")
    }
    layer.freeze_projection("default", "B")
    assert held == {"default": ("aflora_B",)}
    model.add_adapter("second", AFLoraConfig(target_modules=BERT_TARGETS, task_type="SEQ_CLS"))
    assert set(held) == {"default", "second"}
    model.delete_adapter("second")
    assert held == {"default": ("aflora_B",)} and layer.frozen_peft_weight_names is held
    assert "second" not in layer.aflora_frozen


@pytest.mark.parametrize(
    ("r", "rule", "expected"),
    [(4, "ffn", 451_872), (4, "all", 746_784), (4, "none", 83_232), (1024, "none", 156_672)],
)
def test_parameter_counts_on_deberta_v3_base_shapes(r, rule, expected):
    with torch.device("meta"):
        model = wrap(deberta_v3_base_on_meta(), "deberta", r=r, trainable_projections=rule)
    assert len(aflora_layers(model)) == 72
    assert trainable_adapter_params(model) == expected


def test_count_after_every_projection_froze_on_deberta_v3_base_shapes():
    with torch.device("meta"):
        model = wrap(deberta_v3_base_on_meta(), "deberta")
    layers = aflora_layers(model).values()
    assert (
        sum(
            layer.aflora_A["default"].numel() + layer.aflora_B["default"].numel()
            for layer in layers
            if layer.in_features != layer.out_features
        )
        == 368_640
    )
    for layer in layers:
        for which in ("A", "B"):
            layer.freeze_projection("default", which)
    assert trainable_adapter_params(model) == 83_232


def test_output_dtype_under_autocast_is_the_base_layers_as_in_peft_lora():
    """Under bf16 autocast an AFLoRA layer returns its base layer's dtype, as PEFT's LoRA layer does
    (the reference); DeBERTa's attention then masks bf16 scores with a bf16 fill value."""
    from peft import LoraConfig

    ids = torch.randint(0, 100, (2, 7))
    outputs = {}
    for name, model in {
        "aflora": wrap(tiny_model("deberta"), "deberta"),
        "lora": get_peft_model(tiny_model("deberta"), LoraConfig(target_modules=DEBERTA_TARGETS, task_type="SEQ_CLS")),
    }.items():
        layer = model.get_base_model().deberta.encoder.layer[0].attention.self.query_proj
        with torch.autocast("cpu", dtype=torch.bfloat16):
            outputs[name] = layer(torch.randn(2, 7, 32))
            loss = model(input_ids=ids, labels=torch.tensor([0, 1])).loss
        assert torch.isfinite(loss), name
    assert outputs["aflora"].dtype == outputs["lora"].dtype == torch.bfloat16
