"""The best epoch's weights, kept in ``<run_dir>/best/`` with a model card.

Saved, with the run's tokenizer, when the epoch is evaluated, if it is the best so far by the same
rule as result.json's ``metrics.best`` (the task's selection metric, earliest epoch on ties), so no checkpoint has to be
kept for it. A PEFT model saves its adapter with the classifier (``modules_to_save``), the probe its
classifier alone, and a fully fine-tuned model itself (harness/storage/weights_format.py). Each save goes to
``best.partial/`` and then replaces ``best/`` by two renames; a crash between them leaves the old
copy as ``best.stale/``, which the next start puts back. A resumed run re-derives "best so far" from
the Trainer's log history, so it saves exactly what an uninterrupted run saves.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from peft import PeftModel
from torch import nn
from transformers import TrainerCallback

from harness.execution.history import best_and_final, per_epoch_records
from harness.inputs.tasks import TaskSpec
from harness.storage.model_card import RunFacts, write_model_card
from harness.storage.weights_format import PEFT_ADAPTER, format_of, save_head, trained_parameters

log = logging.getLogger(__name__)

BEST_DIR = "best"
SELECTION_FILE = "best_epoch.json"  # which epoch these weights are, for result.json and harness.predict
_PARTIAL, _STALE = "best.partial", "best.stale"


def saved_epoch(run_dir: Path) -> dict[str, Any] | None:
    path = Path(run_dir) / BEST_DIR / SELECTION_FILE
    return json.loads(path.read_text()) if path.exists() else None


def weights_summary(run_dir: Path, best_epoch: int) -> dict[str, Any] | None:
    """result.json's ``weights``: where the best epoch's weights are and their size, or None when
    ``best/`` holds no weights of that epoch (e.g. a run resumed from before they were saved)."""
    saved = saved_epoch(run_dir)
    if saved is None or saved["epoch"] != best_epoch:
        log.warning("%s does not hold the best epoch's (%d) weights", Path(run_dir) / BEST_DIR, best_epoch)
        return None
    folder = Path(run_dir) / BEST_DIR
    return {
        "path": BEST_DIR,
        "epoch": saved["epoch"],
        "format": format_of(folder),
        "bytes": sum(f.stat().st_size for f in folder.glob("*.safetensors")),
    }


class SaveBestWeights(TrainerCallback):
    """Saves the model into ``<run_dir>/best/`` whenever an evaluation makes its epoch the best (rank 0)."""

    def __init__(self, run_dir: Path, task: TaskSpec, facts: RunFacts, trainable: Callable[[nn.Module], int]):
        self.run_dir = Path(run_dir)
        self.task = task
        self.facts = facts
        self.trainable = trainable
        self.selection_key = f"eval_{task.selection_split}_{task.selection_metric}"

    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            _finish_interrupted_save(self.run_dir)

    def on_evaluate(self, args, state, control, metrics=None, model=None, processing_class=None, **kwargs):
        # The Trainer evaluates each split in turn; the selection metric comes with the first
        # (data.protocol=heldout: with the selection split, evaluated last).
        if not state.is_world_process_zero or self.selection_key not in (metrics or {}):
            return
        records = per_epoch_records(state.log_history, self.task)
        best, latest = best_and_final(records, self.task)
        if best["epoch"] == latest["epoch"]:
            self.save(model, best, processing_class)

    def save(self, model: nn.Module, best: dict[str, Any], tokenizer: Any = None) -> None:
        """``tokenizer`` (the Trainer's processing class) is saved beside the weights, so the folder
        loads with the tokenizer the run used (AutoTokenizer.from_pretrained(best/))."""
        partial, final = self.run_dir / _PARTIAL, self.run_dir / BEST_DIR
        shutil.rmtree(partial, ignore_errors=True)
        head = None if isinstance(model, PeftModel) else trained_parameters(model)
        if head is not None:
            partial.mkdir()
            save_head(head, partial)
        else:
            model.save_pretrained(partial)  # safetensors; a PeftModel writes only its adapter and modules_to_save
        form = format_of(partial)
        if form == PEFT_ADAPTER:  # where the backbone loaded from (offline too); the card names the hub id
            _set_json_field(partial / "adapter_config.json", "base_model_name_or_path", self.facts.base_location)
        if tokenizer is not None:
            tokenizer.save_pretrained(partial)
        write_model_card(partial, self.facts, best, self.trainable(model), form)
        metric = self.task.selection_key
        selection = {"epoch": best["epoch"], "step": best["step"], "metric": metric, "value": best[metric]}
        (partial / SELECTION_FILE).write_text(json.dumps(selection) + "\n")
        for path in partial.iterdir():
            path.chmod(0o644)  # safetensors writes 0600; like result.json, the weights are meant to be shared
        stale = self.run_dir / _STALE
        if final.exists():
            final.rename(stale)
        partial.rename(final)
        shutil.rmtree(stale, ignore_errors=True)
        log.info("epoch %d is the best so far (%s %s): weights in %s", best["epoch"], metric, best[metric], final)


def _set_json_field(path: Path, key: str, value: Any) -> None:
    data = json.loads(path.read_text())
    data[key] = value
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def _finish_interrupted_save(run_dir: Path) -> None:
    """Put back the previous best weights if a crash fell between the two renames of a save."""
    final, stale = run_dir / BEST_DIR, run_dir / _STALE
    if stale.exists() and not final.exists():
        stale.rename(final)
    shutil.rmtree(stale, ignore_errors=True)
    shutil.rmtree(run_dir / _PARTIAL, ignore_errors=True)
