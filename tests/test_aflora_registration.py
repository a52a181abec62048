"""AFLoRA's registration with peft: the PeftType member, the method mappings, config validation."""

from __future__ import annotations

import pickle

import pytest
from peft import PeftConfig
from peft.mapping import PEFT_TYPE_TO_CONFIG_MAPPING, PEFT_TYPE_TO_PREFIX_MAPPING, PEFT_TYPE_TO_TUNER_MAPPING
from peft.utils import PeftType

import aflora
from aflora import AFLoraConfig, AFLoraModel
from aflora.peft_type import add_peft_type
from tests.tiny_models import BERT_TARGETS


def test_peft_type_member_behaves_like_a_builtin_one():
    member = PeftType.AFLORA
    assert member is aflora.PEFT_TYPE
    assert PeftType("AFLORA") is member  # lookup by value: how peft reads adapter_config.json
    assert PeftType["AFLORA"] is member
    assert "AFLORA" in list(PeftType)  # what register_peft_method checks
    assert member == "AFLORA" and member.value == "AFLORA" and member.name == "AFLORA"
    assert isinstance(member, str) and isinstance(member, PeftType)
    assert list(PeftType).count(member) == 1
    assert len(PeftType) == len(PeftType.__members__)
    assert pickle.loads(pickle.dumps(member)) is member
    assert {"AFLORA": 1}[member] == 1  # hashes like the plain string


def test_add_peft_type_is_idempotent_and_leaves_existing_members_alone():
    before = len(PeftType)
    assert add_peft_type("AFLORA") is PeftType.AFLORA
    assert add_peft_type("LORA") is PeftType.LORA
    assert len(PeftType) == before


@pytest.mark.parametrize("name", ["aflora", "A-B", "1X", ""])
def test_add_peft_type_rejects_bad_names(name):
    with pytest.raises(ValueError, match="upper-case identifier"):
        add_peft_type(name)


def test_method_registered_with_peft():
    assert PEFT_TYPE_TO_CONFIG_MAPPING[PeftType.AFLORA] is AFLoraConfig
    assert PEFT_TYPE_TO_TUNER_MAPPING[PeftType.AFLORA] is AFLoraModel
    assert PEFT_TYPE_TO_PREFIX_MAPPING[PeftType.AFLORA] == "aflora_"
    # by the plain string too, as peft looks it up when loading
    assert PEFT_TYPE_TO_CONFIG_MAPPING["AFLORA"] is AFLoraConfig


def test_config_defaults_and_json_round_trip(tmp_path):
    config = AFLoraConfig(target_modules=BERT_TARGETS, task_type="SEQ_CLS", modules_to_save=["classifier"])
    assert (config.r, config.trainable_projections, config.d_init, config.b_init) == (4, "ffn", 0.1, 0.0)
    assert config.peft_type is PeftType.AFLORA
    config.save_pretrained(tmp_path)
    loaded = PeftConfig.from_pretrained(tmp_path)
    assert type(loaded) is AFLoraConfig
    assert loaded.peft_type is PeftType.AFLORA
    assert loaded.target_modules == set(BERT_TARGETS)
    assert (loaded.r, loaded.trainable_projections, loaded.modules_to_save) == (4, "ffn", ["classifier"])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"r": 0}, r"AFLoraConfig.r must be a positive integer, got 0"),
        ({"r": 2.5}, r"AFLoraConfig.r must be a positive integer"),
        (
            {"trainable_projections": "mlp"},
            r"trainable_projections must be one of \('ffn', 'all', 'attention', 'none'\)",
        ),
        ({"bias": "lora_only"}, r"bias must be one of \('none', 'all', 'aflora_only'\)"),
        ({"target_modules": None}, r"target_modules must name the linear layers"),
        ({"target_modules": []}, r"target_modules must name the linear layers"),
        ({"layers_pattern": "layer"}, r"layers_pattern needs layers_to_transform"),
    ],
)
def test_config_errors_name_key_and_allowed_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        AFLoraConfig(**{"target_modules": BERT_TARGETS, **kwargs})


@pytest.mark.parametrize(
    ("rule", "square", "rectangular"),
    [("ffn", True, False), ("all", False, False), ("attention", False, True), ("none", True, True)],
)
def test_trainable_projections_rule_uses_layer_shape(rule, square, rectangular):
    config = AFLoraConfig(target_modules=BERT_TARGETS, trainable_projections=rule)
    assert config.projections_frozen_at_start(768, 768) is square
    assert config.projections_frozen_at_start(768, 3072) is rectangular
