"""Frozen adapters folded into the base weight (aflora/folded.py): gradients, and when the layer folds."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from aflora import AFLoraLayer
from aflora import layer as layer_module
from aflora.folded import FoldedAdapterLinear, fold_pays_off, folded_linear
from tests.tiny_models import tiny_bert, wrap_aflora


def folded_inputs(bias: bool = True, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Double-precision inputs for gradcheck: x (2, 3, in), W0, bias, A, B frozen; d, b trainable."""
    gen = torch.Generator().manual_seed(seed)
    out, inp, r = 6, 5, 3

    def rand(*shape, grad=False):
        return torch.randn(*shape, generator=gen, dtype=torch.float64).requires_grad_(grad)

    return (
        rand(2, 3, inp, grad=True),
        rand(out, inp),
        rand(out, grad=True) if bias else None,
        rand(r, inp),
        rand(out, r),
        rand(r, grad=True),
        rand(out, grad=True),
    )


@pytest.mark.parametrize("bias", [True, False])
def test_gradients_of_x_bias_d_and_b_match_finite_differences(bias):
    assert torch.autograd.gradcheck(FoldedAdapterLinear.apply, folded_inputs(bias))


def test_output_and_gradients_equal_the_layer_by_layer_formula():
    x, w0, bias, a, b_proj, d, b = folded_inputs()
    grad_y = torch.randn(2, 3, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1))

    def grads(fn):
        for t in (x, bias, d, b):
            t.grad = None
        y = fn()
        y.backward(grad_y)
        return [y.detach(), *(t.grad.clone() for t in (x, bias, d, b))]

    folded = grads(lambda: FoldedAdapterLinear.apply(x, w0, bias, a, b_proj, d, b))
    by_hand = grads(lambda: x @ w0.T + bias + b * ((d * (x @ a.T)) @ b_proj.T))
    for got, want in zip(folded, by_hand, strict=True):
        torch.testing.assert_close(got, want)


def test_refuses_a_trainable_projection_instead_of_dropping_its_gradient():
    x, w0, bias, a, b_proj, d, b = folded_inputs()
    with pytest.raises(RuntimeError, match="no gradient for W0, A or B"):
        FoldedAdapterLinear.apply(x, w0, bias, a.requires_grad_(), b_proj, d, b)


def test_fold_pays_off_from_the_multiply_add_counts():
    # Per unit of r, folding adds 2·in·out per step (W forward and backward) and saves (in + out)
    # per token (the layer-by-layer path's second pass): MiniLM's FFN (384 -> 1536) breaks even at
    # 614.4 tokens, a square layer at in tokens.
    assert not fold_pays_off(614, 384, 1536)
    assert fold_pays_off(615, 384, 1536)
    assert fold_pays_off(384, 384, 384) and not fold_pays_off(383, 384, 384)


class FoldCounter:
    """Counts the folded forwards aflora.layer runs."""

    def __init__(self):
        self.calls = 0

    def __call__(self, *args):
        self.calls += 1
        return folded_linear(*args)


@pytest.fixture
def fold_counter(monkeypatch) -> FoldCounter:
    counter = FoldCounter()
    monkeypatch.setattr(layer_module, "folded_linear", counter)
    return counter


def frozen_model(**config) -> nn.Module:
    """A tiny BERT with AFLoRA, every projection frozen, non-trivial d and b, no dropout."""
    model = wrap_aflora(tiny_bert(seed=0, dropout=False), trainable_projections="none", **config)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for module in layers(model):
            for vec in (module.aflora_d["default"], module.aflora_b["default"]):
                vec.copy_(torch.randn(vec.shape, generator=gen))
    return model


def layers(model: nn.Module) -> list[AFLoraLayer]:
    return [m for m in model.modules() if isinstance(m, AFLoraLayer)]


def step_gradients(model: nn.Module, tokens: int) -> dict[str, torch.Tensor]:
    """Loss and every trainable gradient of one forward/backward on (2, tokens // 2) random ids."""
    gen = torch.Generator().manual_seed(2)
    ids = torch.randint(5, 100, (2, tokens // 2), generator=gen)
    model.zero_grad(set_to_none=True)
    out = model(input_ids=ids, labels=torch.tensor([0, 1]))
    out.loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
    return {"loss": out.loss.detach(), **grads}


def test_frozen_model_folds_and_trains_exactly_as_the_layer_by_layer_path(fold_counter):
    model = frozen_model()
    tokens = 64  # >= 2·32·64/96 ≈ 42.7 (FFN) and >= 32 (attention): every layer folds
    folded = step_gradients(model, tokens)
    assert fold_counter.calls == len(layers(model)) == 12
    for module in layers(model):
        module.fold_frozen_projections = False
    by_layer = step_gradients(model, tokens)
    assert fold_counter.calls == 12
    assert folded.keys() == by_layer.keys() and any(".aflora_d." in n for n in folded)
    for name in folded:
        torch.testing.assert_close(folded[name], by_layer[name], rtol=1e-4, atol=1e-6, msg=name)


def test_short_batches_take_the_layer_by_layer_path(fold_counter):
    model = frozen_model()
    step_gradients(model, tokens=40)  # >= 32 for the square attention layers, < 42.7 for the FFN ones
    square = sum(m.in_features == m.out_features for m in layers(model))
    assert fold_counter.calls == square == 8


def test_trainable_projection_or_base_weight_is_not_folded(fold_counter):
    model = frozen_model()
    first, second = layers(model)[:2]
    first.aflora_A["default"].requires_grad_(True)
    second.base_layer.weight.requires_grad_(True)
    grads = step_gradients(model, tokens=64)
    assert fold_counter.calls == 10
    assert any(n.endswith("aflora_A.default") for n in grads)  # the gradients the fold could not give
    assert any(n.endswith("base_layer.weight") for n in grads)


def test_trainable_bias_gets_its_gradient_through_the_fold(fold_counter):
    model = frozen_model(bias="aflora_only")
    grads = step_gradients(model, tokens=64)
    assert fold_counter.calls == 12
    assert sum(n.endswith("base_layer.bias") for n in grads) == 12


def test_folded_forward_without_gradients_equals_the_layer_by_layer_path(fold_counter):
    model = frozen_model().eval()
    ids = torch.randint(5, 100, (2, 32), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        folded = model(input_ids=ids).logits
        assert fold_counter.calls == 12
        for module in layers(model):
            module.fold_frozen_projections = False
        torch.testing.assert_close(model(input_ids=ids).logits, folded, rtol=1e-4, atol=1e-6)


def test_autocast_takes_the_layer_by_layer_path(fold_counter):
    model = frozen_model()
    ids = torch.randint(5, 100, (2, 32), generator=torch.Generator().manual_seed(2))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(input_ids=ids).logits
    assert fold_counter.calls == 0 and torch.isfinite(logits).all()
