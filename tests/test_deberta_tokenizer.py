"""The DeBERTaV3 tokenizer path, offline: a SentencePiece model laid out as microsoft/deberta-v3-base
ships it (spm.model, a two-key tokenizer_config.json, config.json, pytorch_model.bin), loaded through
``model=deberta-v3-base model.path=<dir>``, the way the paper's runs load it, and trained one step."""

from __future__ import annotations

import io
import json
import random
from pathlib import Path

import pytest
import sentencepiece as spm
import torch
from huggingface_hub import ModelCard
from omegaconf import OmegaConf
from transformers import AutoTokenizer, DebertaV2Config, DebertaV2ForSequenceClassification

from harness.execution import lifecycle
from harness.inputs.models import load_tokenizer
from tests.conftest import compose

WORDS = "the a cat dog sat on mat quickly slowly red blue green house car runs jumps over under good bad not".split()
# microsoft/deberta-v3-base's tokenizer_config.json, whole: the class comes from config.json's model_type.
UPSTREAM_TOKENIZER_CONFIG = {"do_lower_case": False, "vocab_type": "spm"}


def sentences(count: int = 400) -> list[str]:
    rng = random.Random(0)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 12))).capitalize() + "." for _ in range(count)]


def deberta_v3_layout(folder: Path) -> Path:
    """A tiny DeBERTa-v2 with a SentencePiece vocabulary trained here, in the hub repository's layout."""
    folder.mkdir()
    model = io.BytesIO()
    # DeBERTaV3's special pieces and ids: [PAD] 0, [CLS] 1, [SEP] 2, [UNK] 3 ([MASK] is added after the vocabulary).
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences()),
        model_writer=model,
        vocab_size=64,
        model_type="unigram",
        pad_id=0,
        pad_piece="[PAD]",
        bos_id=1,
        bos_piece="[CLS]",
        eos_id=2,
        eos_piece="[SEP]",
        unk_id=3,
        unk_piece="[UNK]",
        minloglevel=2,
    )
    (folder / "spm.model").write_bytes(model.getvalue())
    (folder / "tokenizer_config.json").write_text(json.dumps(UPSTREAM_TOKENIZER_CONFIG))
    tiny = OmegaConf.to_container(compose(["model=tiny-deberta"]).model.config)
    fields = {k: v for k, v in tiny.items() if k != "model_type"}
    config = DebertaV2Config(**{**fields, "vocab_size": 128})  # 64 pieces, [MASK], spare rows
    config.save_pretrained(folder)
    torch.save(DebertaV2ForSequenceClassification(config).state_dict(), folder / "pytorch_model.bin")
    return folder


@pytest.fixture(scope="module")
def deberta_dir(tmp_path_factory) -> Path:
    return deberta_v3_layout(tmp_path_factory.mktemp("deberta") / "deberta-v3-tiny")


def test_the_tokenizer_loads_as_deberta_v3s_and_encodes_as_sentencepiece_does(deberta_dir):
    cfg = compose(["model=deberta-v3-base", f"model.path={deberta_dir}"])
    tokenizer = load_tokenizer(cfg.model)
    assert type(tokenizer).__name__.startswith("DebertaV2Tokenizer")
    reference = spm.SentencePieceProcessor(model_file=str(deberta_dir / "spm.model"))
    for text in sentences(20):
        ids = tokenizer(text)["input_ids"]
        assert ids == [1, *reference.encode(text), 2], text  # [CLS] pieces [SEP]
    pair = tokenizer("The cat sat.", "A dog runs.")["input_ids"]
    assert pair == [1, *reference.encode("The cat sat."), 2, *reference.encode("A dog runs."), 2]
    assert tokenizer.pad_token_id == 0 and tokenizer.mask_token_id == reference.get_piece_size()


def test_a_deberta_v3_run_trains_through_model_path(tmp_path, glue_dir, deberta_dir):
    overrides = ["model=deberta-v3-base", f"model.path={deberta_dir}", "task=rte", "method=lora", "debug=default"]
    cfg = compose([*overrides, "train.max_steps=1", f"data.dir={glue_dir}"])
    assert lifecycle.run(cfg, tmp_path) == 0
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["status"] == "completed" and result["runtime"]["steps"] == 1
    assert result["metrics"]["final"]["accuracy"] is not None
    # best/ names the local folder it loaded from, never as a hub id, and keeps the tokenizer it used.
    best = tmp_path / "best"
    assert ModelCard.load(best / "README.md").data.base_model is None
    assert json.loads((best / "adapter_config.json").read_text())["base_model_name_or_path"] == str(deberta_dir)
    text = "The cat sat on the mat."
    assert AutoTokenizer.from_pretrained(best)(text)["input_ids"] == load_tokenizer(cfg.model)(text)["input_ids"]
