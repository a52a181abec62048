"""Baseline builders: exact parameter counts on DeBERTaV3-base shapes, and what trains on a tiny BERT.

The counts are golden numbers derived by hand (docs/method.md, "What is reported") and checked against what peft built;
the DeBERTaV3-base models are built on the meta device (shapes only, no memory, no init time).
"""

from __future__ import annotations

import dataclasses
import importlib.util

import pytest
import torch
from omegaconf import OmegaConf
from peft.tuners.vera import VeraLayer
from transformers import TrainerControl, TrainerState

from harness.core.errors import ConfigError
from harness.core.paths import conf_file
from harness.execution.methods import BuildContext, get_builder, method_settings
from tests.tiny_models import DEBERTA_TARGETS, deberta_v3_base_on_meta, tiny_bert, tiny_ctx

SHADOW = "original_module"  # peft's frozen copy of a modules_to_save module


def method_cfg(name: str, **overrides):
    """``conf/method/<name>.yaml`` with ``overrides`` given as on the command line."""
    return OmegaConf.merge(OmegaConf.load(conf_file("method", name)), overrides)


def build(name: str, model, ctx: BuildContext, **overrides):
    cfg = method_cfg(name, **overrides)
    return get_builder(name, cfg.module)(model, method_settings(cfg), ctx)


def adapter_count(model) -> int:
    """Trainable parameters with the classifier head (and peft's shadow copies) left out."""
    return sum(
        p.numel()
        for n, p in model.named_parameters()
        if p.requires_grad and "classifier" not in n.split(".") and SHADOW not in n.split(".")
    )


# --- DeBERTaV3-base shapes -----------------------------------------------------------------------


DEBERTA_CTX = BuildContext(
    target_modules=DEBERTA_TARGETS, head_modules=["classifier"], total_steps=3900, steps_per_epoch=78, seed=1
)


# Per encoder layer, as (in, out): q, k, v, attention output 768 -> 768, then the FFN 768 -> 3072 -> 768.
MODULES = [(768, 768)] * 4 + [(768, 3072), (3072, 768)]


def per_model(per_module) -> int:
    return 12 * sum(per_module(i, o) for i, o in MODULES)


def test_lora_count_deberta():
    if importlib.util.find_spec("baselines.lora") is None:
        pytest.skip("baselines/lora.py not written yet")
    with torch.device("meta"):
        built = build("lora", deberta_v3_base_on_meta(), DEBERTA_CTX)
    # r x in (A) + out x r (B), r = 8
    assert per_model(lambda i, o: 8 * (i + o)) == 1_327_104
    assert adapter_count(built.model) == 1_327_104


def test_vera_count_deberta():
    with torch.device("meta"):
        built = build("vera", deberta_v3_base_on_meta(), DEBERTA_CTX)
    # d (r = 1024) + b (out) per module; the shared A, B are buffers, not parameters
    assert per_model(lambda i, o: 1024 + o) == 156_672
    assert adapter_count(built.model) == 156_672
    wrapped = [n for n, m in built.model.named_modules() if isinstance(m, VeraLayer)]
    assert len(wrapped) == 72 and not any("pooler" in n for n in wrapped)


def test_elora_count_deberta():
    with torch.device("meta"):
        built = build("elora", deberta_v3_base_on_meta(), DEBERTA_CTX)
    # ELoRA = the AFLoRA path with frozen per-module projections: d (1024) + b (out) train
    assert per_model(lambda i, o: 1024 + o) == 156_672
    assert adapter_count(built.model) == 156_672
    n_frozen_projections = sum(
        1 for n, p in built.model.named_parameters() if ("aflora_A" in n or "aflora_B" in n) and not p.requires_grad
    )
    assert n_frozen_projections == 2 * 72


def test_adalora_counts_deberta():
    with torch.device("meta"):
        built = build("adalora", deberta_v3_base_on_meta(), DEBERTA_CTX)
    (allocator,) = built.callbacks
    # A rank-r module holds r right singular vectors (r x in), r left ones (out x r) and r values.
    start = per_model(lambda i, o: 12 * (i + o) + 12)
    assert start == 1_991_520
    assert allocator.trainable_parameters(built.model) == start == adapter_count(built.model)
    assert allocator.tuner.rankallocator.init_bgt == 72 * 12
    assert allocator.tuner.rankallocator.target_bgt == 576  # the paper's budget: 72 modules x 8

    # At the final budget the count depends on where the 576 triplets went: spread evenly (8 per
    # module) it is LoRA-r8's count plus the 576 singular values.
    layers = dict(allocator.adapted_modules())
    assert len(layers) == 72
    allocator.rank_pattern = {f"{n}.lora_E.default": [True] * 8 + [False] * 4 for n in layers}
    even = per_model(lambda i, o: 8 * (i + o) + 8)
    assert even == 1_327_104 + 576 == 1_327_680
    assert allocator.trainable_parameters(built.model) == even
    assert sum(allocator.ranks().values()) == 576

    # Uneven: every FFN module keeps its 12 (24 x 12 = 288 triplets), the 48 square modules share
    # the other 288 (6 each).
    pattern = {
        f"{n}.lora_E.default": [True] * 12 if m.in_features != m.out_features else [True] * 6 + [False] * 6
        for n, m in layers.items()
    }
    allocator.rank_pattern = pattern
    assert sum(allocator.ranks().values()) == 576
    assert allocator.trainable_parameters(built.model) == 24 * 12 * 3841 + 288 * 1537


def test_full_count_deberta():
    if importlib.util.find_spec("baselines.full") is None:
        pytest.skip("baselines/full.py not written yet")
    with torch.device("meta"):
        model = deberta_v3_base_on_meta()
        for p in model.parameters():
            p.requires_grad_(False)
        built = build("full", model, DEBERTA_CTX)
    total = sum(p.numel() for p in built.model.parameters())
    assert all(p.requires_grad for p in built.model.parameters())
    assert adapter_count(built.model) == total - (768 * 2 + 2)  # everything but the classifier


def test_head_count_deberta():
    with torch.device("meta"):
        built = build("head", deberta_v3_base_on_meta(), DEBERTA_CTX)
    trainable = {n: p.numel() for n, p in built.model.named_parameters() if p.requires_grad}
    assert adapter_count(built.model) == 0
    assert trainable == {"classifier.weight": 768 * 2, "classifier.bias": 2}  # the linear probe alone


# --- a tiny BERT: what trains -------------------------------------------------------------------


def batch(generator: torch.Generator, size: int = 8, length: int = 12) -> dict:
    return {
        "input_ids": torch.randint(1, 100, (size, length), generator=generator),
        "attention_mask": torch.ones(size, length, dtype=torch.long),
        "labels": torch.randint(0, 2, (size,), generator=generator),
    }


def train_steps(built, steps: int, lr: float = 1e-2) -> None:
    """A minimal Trainer-like loop: backward, step, the callbacks' on_optimizer_step, zero_grad."""
    model = built.model
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=0.0)
    state, control = TrainerState(), TrainerControl()
    generator = torch.Generator().manual_seed(0)
    for step in range(steps):
        state.global_step = step
        model(**batch(generator)).loss.backward()
        optimizer.step()
        for callback in built.callbacks:
            callback.on_optimizer_step(None, state, control)
        optimizer.zero_grad()


# Which tensors each method trains, by name (the head trains through peft's modules_to_save copy).
TRAINED = {
    "adalora": ("lora_A", "lora_B", "lora_E", "modules_to_save"),
    "vera": ("vera_lambda_b", "vera_lambda_d", "modules_to_save"),
    "elora": ("aflora_d", "aflora_b", "modules_to_save"),
    "lora": ("lora_A", "lora_B", "modules_to_save"),
    "head": ("classifier",),  # no adapter: the backbone's own classifier
}


@pytest.mark.parametrize("method", ["adalora", "vera", "elora", "lora", "full", "head"])
def test_only_method_parameters_change(method):
    if method in ("lora", "full") and importlib.util.find_spec(f"baselines.{method}") is None:
        pytest.skip(f"baselines/{method}.py not written yet")
    model = tiny_bert()
    if method == "full":
        model.requires_grad_(False)  # the builder must switch everything on
    built = build(method, model, tiny_ctx(total_steps=4))
    before = {n: t.detach().clone() for n, t in built.model.state_dict().items()}
    train_steps(built, steps=4)
    after = built.model.state_dict()
    changed = {n for n in before if not torch.equal(before[n], after[n])}
    params = dict(built.model.named_parameters())
    if method == "full":
        expected = set(params)
    else:
        expected = {n for n in params if any(key in n for key in TRAINED[method])}
        assert {n for n, p in params.items() if p.requires_grad} == expected
    assert changed == expected, (sorted(expected - changed)[:5], sorted(changed - expected)[:5])


def test_elora_projections_stay_at_their_random_init():
    built = build("elora", tiny_bert(), tiny_ctx())
    named = dict(built.model.named_parameters())
    projections = {n: p.detach().clone() for n, p in named.items() if "aflora_A" in n or "aflora_B" in n}
    assert len(projections) == 2 * 12 and not any(named[n].requires_grad for n in projections)
    # per-module random matrices (the reference code's ELoRA), not one pair shared as in VeRA
    a0 = named["base_model.model.bert.encoder.layer.0.attention.self.query.aflora_A.default"]
    a1 = named["base_model.model.bert.encoder.layer.1.attention.self.query.aflora_A.default"]
    assert not torch.equal(a0, a1)
    d = [p for n, p in named.items() if "aflora_d" in n]
    b = [p for n, p in named.items() if "aflora_b" in n]
    assert all(p.numel() == 1024 and torch.all(p == 0.1) for p in d)  # d starts at 0.1
    assert all(torch.all(p == 0) for p in b)  # b starts at 0: the model starts as the backbone
    train_steps(built, steps=3)
    for n, p in built.model.named_parameters():
        if n in projections:
            assert torch.equal(p, projections[n]), n
    assert not all(torch.all(p == 0.1) for p in d)


def test_vera_projections_follow_the_run_seed():
    def vera_a(seed: int) -> torch.Tensor:
        built = build("vera", tiny_bert(), tiny_ctx(seed=seed))
        return built.model.base_model.vera_A["default"].clone()

    assert torch.equal(vera_a(1), vera_a(1))
    assert not torch.equal(vera_a(1), vera_a(2))
    pinned = build("vera", tiny_bert(), tiny_ctx(seed=2), projection_prng_key=1)
    assert torch.equal(pinned.model.base_model.vera_A["default"], vera_a(1))


def test_vera_refuses_a_bare_dense_target():
    # a bare "dense" also takes pooler.dense
    ctx = dataclasses.replace(tiny_ctx(), target_modules=["query", "key", "value", "dense"])
    with pytest.raises(ConfigError, match="pooler.dense"):
        build("vera", tiny_bert(), ctx)
