"""Models and settings the AFLoRA and baseline tests share.

A tiny BERT (or DeBERTa-v2) trains in seconds on a CPU; DeBERTaV3-base shapes, built on the meta
device (no memory, no init time), give the exact parameter counts the paper quotes. One copy here
keeps every test counting and training on the same shapes and target modules.
"""

from __future__ import annotations

from pathlib import Path

import torch
from peft import PeftModel, get_peft_model
from torch import nn
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    DebertaV2Config,
    DebertaV2ForSequenceClassification,
    TrainingArguments,
    set_seed,
)

from aflora import AFLoraConfig
from harness.execution.methods import BuildContext

# Full suffixes: a bare "dense" would also take pooler.dense.
DENSE_SUFFIXES = ["attention.output.dense", "intermediate.dense", "output.dense"]
BERT_TARGETS = ["query", "key", "value", *DENSE_SUFFIXES]
DEBERTA_TARGETS = ["query_proj", "key_proj", "value_proj", *DENSE_SUFFIXES]

TINY = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64, "vocab_size": 100}
NO_DROPOUT = {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}  # two runs compare exactly


def tiny_bert(seed: int = 0, dropout: bool = True) -> BertForSequenceClassification:
    set_seed(seed)
    return BertForSequenceClassification(BertConfig(**TINY, **({} if dropout else NO_DROPOUT)))


def tiny_deberta(seed: int = 0) -> DebertaV2ForSequenceClassification:
    set_seed(seed)
    return DebertaV2ForSequenceClassification(DebertaV2Config(**TINY, relative_attention=True))


def wrap_aflora(model: nn.Module, targets: list[str] = BERT_TARGETS, **config) -> PeftModel:
    return get_peft_model(model, AFLoraConfig(target_modules=targets, task_type="SEQ_CLS", **config))


def tiny_ctx(total_steps: int = 4, steps_per_epoch: int = 2, seed: int = 1) -> BuildContext:
    """What a method builder is told about a run on tiny_bert."""
    return BuildContext(
        target_modules=BERT_TARGETS,
        head_modules=["classifier"],
        total_steps=total_steps,
        steps_per_epoch=steps_per_epoch,
        seed=seed,
    )


def deberta_v3_base_on_meta() -> DebertaV2ForSequenceClassification:
    """microsoft/deberta-v3-base's shapes (its config.json, written out so no test needs the hub).

    Built on the meta device: shapes and requires_grad are all a parameter count needs. Wrap it
    under `torch.device("meta")` too, so the adapters cost nothing either.
    """
    config = DebertaV2Config(
        hidden_size=768,
        num_hidden_layers=12,
        num_attention_heads=12,
        intermediate_size=3072,
        vocab_size=128100,
        relative_attention=True,
        pos_att_type=["p2c", "c2p"],
        position_biased_input=False,
        max_relative_positions=-1,
        position_buckets=256,
        norm_rel_ebd="layer_norm",
        share_att_key=True,
        num_labels=2,
    )
    with torch.device("meta"):
        return DebertaV2ForSequenceClassification(config)


def cpu_training_args(output_dir: Path, **overrides) -> TrainingArguments:
    """A stock Trainer on the CPU that checkpoints every epoch and logs nowhere."""
    settings = {
        "learning_rate": 1e-2,
        "save_strategy": "epoch",
        "logging_strategy": "no",
        "report_to": "none",
        "use_cpu": True,
        "seed": 0,
        "disable_tqdm": True,
        **overrides,
    }
    return TrainingArguments(output_dir=str(output_dir), **settings)
