"""The three forms a run's best weights take in ``best/``, by what its method trained.

- ``peft-adapter``: a PeftModel's ``save_pretrained``: the adapter, with the classifier
  (``modules_to_save``). Loaded onto the backbone the run's config names.
- ``classifier-head``: only the classifier trained (the linear probe, ``method=head``), so only its
  tensors are kept, in ``head.safetensors``: a few kilobytes, where the whole model would repeat the
  unchanged backbone (87 MB for MiniLM). Loaded onto the backbone the run's config names.
- ``transformers-model``: everything trained (full fine-tuning): the whole model's ``save_pretrained``.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from harness.core.errors import HarnessError

PEFT_ADAPTER, CLASSIFIER_HEAD, WHOLE_MODEL = "peft-adapter", "classifier-head", "transformers-model"
HEAD_FILE = "head.safetensors"


def format_of(folder: Path) -> str:
    """Which of the three forms ``folder`` holds."""
    if (folder / "adapter_config.json").exists():
        return PEFT_ADAPTER
    if (folder / HEAD_FILE).exists():
        return CLASSIFIER_HEAD
    return WHOLE_MODEL


def trained_parameters(model: nn.Module) -> dict[str, torch.Tensor] | None:
    """The tensors that trained, when the backbone did not (a frozen backbone need not be saved
    again); None when every parameter trained."""
    parameters = dict(model.named_parameters())
    trained = {name: p for name, p in parameters.items() if p.requires_grad}
    if len(trained) == len(parameters):
        return None  # decided before any copy: a fully fine-tuned model is not moved to the CPU for nothing
    return {name: p.detach().cpu().contiguous() for name, p in trained.items()}


def save_head(tensors: dict[str, torch.Tensor], folder: Path) -> None:
    save_file(tensors, folder / HEAD_FILE)


def load_head(model: nn.Module, folder: Path) -> nn.Module:
    """``model`` (the backbone as the run built it) with the saved classifier's tensors in place."""
    tensors = load_file(folder / HEAD_FILE)
    missing = set(tensors) - set(dict(model.named_parameters()))
    if missing:
        raise HarnessError(f"{folder / HEAD_FILE}: tensors {sorted(missing)} are not parameters of the model")
    model.load_state_dict(tensors, strict=False)
    return model
