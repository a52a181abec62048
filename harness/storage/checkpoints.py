"""Checkpoints that are either complete or ignored.

The Trainer writes a checkpoint as many files; a process killed half-way leaves a folder that
looks like a checkpoint but is not one. The marker below is written after the Trainer and every
method callback have saved their state (it must be the last callback), and only marked
checkpoints are resumed from. Older checkpoints are removed only once a newer one is marked,
so a crash at any moment leaves at least one good checkpoint.

The marker is a manifest of the checkpoint's files (harness/storage/checkpoint_manifest.py), checked
before a resume: a file lost or changed after the mark makes the checkpoint damaged, never a
resume that quietly starts a fresh optimizer or other random draws.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file
from transformers import TrainerCallback
from transformers.trainer import TRAINER_STATE_NAME
from transformers.trainer_pt_utils import safe_globals
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR
from transformers.utils import (
    ADAPTER_SAFE_WEIGHTS_NAME,
    ADAPTER_WEIGHTS_NAME,
    SAFE_WEIGHTS_INDEX_NAME,
    SAFE_WEIGHTS_NAME,
    WEIGHTS_INDEX_NAME,
    WEIGHTS_NAME,
)

from harness.core.errors import HarnessError
from harness.execution.distributed import barrier
from harness.execution.methods import MethodCallback
from harness.storage.checkpoint_folders import checkpoint_dirs
from harness.storage.checkpoint_manifest import (
    UnreadableManifest,
    manifest_problems,
    missing,
    read_manifest,
    write_manifest,
)

log = logging.getLogger(__name__)

# The files a resume cannot do without: the Trainer's state and, under one of the names the
# Trainer looks for (Trainer._load_from_checkpoint), the weights. Checked on markers without a manifest.
_WEIGHTS = (
    ADAPTER_SAFE_WEIGHTS_NAME,
    ADAPTER_WEIGHTS_NAME,
    SAFE_WEIGHTS_NAME,
    WEIGHTS_NAME,
    SAFE_WEIGHTS_INDEX_NAME,
    WEIGHTS_INDEX_NAME,
)
_VERIFIED = (".json", ".safetensors", ".pt", ".pth", ".bin")  # what the Trainer and callbacks load on resume


class DamagedCheckpoint(HarnessError):
    """A file of a complete checkpoint does not load."""


def _load(path: Path) -> None:
    if path.suffix == ".json":
        json.loads(path.read_text())
    elif path.suffix == ".safetensors":
        load_file(path)
    else:
        with safe_globals():  # the numpy types of the RNG state, as the Trainer loads it
            torch.load(path, map_location="cpu", weights_only=True)


def verify_checkpoint(checkpoint: Path) -> None:
    """Check ``checkpoint`` against its manifest; raise DamagedCheckpoint naming what is missing or
    changed. A checkpoint marked before manifests gets the older checks, and a warning saying so."""
    try:
        files = read_manifest(checkpoint)
    except UnreadableManifest as err:
        raise DamagedCheckpoint(f"checkpoint {checkpoint}: {err}") from None
    if files is None:
        log.warning(
            "checkpoint %s has no manifest (marked by an older harness): only the files it holds are checked",
            checkpoint,
        )
        _verify_without_manifest(checkpoint)
        return
    problem = manifest_problems(checkpoint, files)
    if problem:
        raise DamagedCheckpoint(f"checkpoint {checkpoint}: {problem}")


def _verify_without_manifest(checkpoint: Path) -> None:
    """The files the resume cannot do without are there, and every file the resume reads loads.

    The message keeps only the error's first line (``error_line``): torch's own suggests
    ``weights_only=False``, which would execute whatever a damaged or planted file contains.
    """
    absent = [name for name in (TRAINER_STATE_NAME,) if not (checkpoint / name).is_file()]
    if not any((checkpoint / name).is_file() for name in _WEIGHTS):
        absent.append(f"its weights ({ADAPTER_SAFE_WEIGHTS_NAME} or {SAFE_WEIGHTS_NAME})")
    if absent:
        raise DamagedCheckpoint(f"checkpoint {checkpoint}: {missing(absent)}")
    files = [p for p in sorted(checkpoint.iterdir()) if p.suffix in _VERIFIED and p.name != "training_args.bin"]
    for path in files:
        try:
            _load(path)
        except Exception as err:
            raise DamagedCheckpoint(f"checkpoint {checkpoint}: {path.name} is damaged ({error_line(err)})") from None


def error_line(err: BaseException) -> str:
    """``Type: first line`` of an error, without torch's advice to load with ``weights_only=False``."""
    text = str(err).strip()
    first = text.splitlines()[0][:160] if text else ""
    if "weights_only" in text.lower() or "weights only" in text.lower():
        first = "not a tensor file that loads safely"
    return f"{type(err).__name__}: {first}"


def remove_checkpoints(run_dir: Path, keep: Path | None = None) -> None:
    for path in checkpoint_dirs(run_dir):
        if path != keep:
            shutil.rmtree(path, ignore_errors=True)


def saved_checkpoint(args, state) -> Path | None:
    """In ``on_save``: the folder the Trainer has just written, or None when there is none."""
    path = Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"
    return path if path.is_dir() else None


class JsonStateCallback(MethodCallback):
    """A callback whose small state travels with every checkpoint as one JSON file.

    Subclasses name the file and say what their state is; rank 0 writes it in ``on_save`` and
    the harness calls ``load_state(checkpoint)`` before resuming (the ``MethodCallback`` contract).
    """

    state_file: str

    def state_dict(self) -> dict:
        raise NotImplementedError

    def load_state_dict(self, saved: dict) -> None:
        raise NotImplementedError

    def on_save(self, args, state, control, **kwargs):
        ckpt = saved_checkpoint(args, state)
        if state.is_world_process_zero and ckpt is not None:
            (ckpt / self.state_file).write_text(json.dumps(self.state_dict()))

    def load_state(self, checkpoint_dir: str | Path) -> None:
        path = Path(checkpoint_dir) / self.state_file
        if path.exists():
            self.load_state_dict(json.loads(path.read_text()))


class MarkCompleteCheckpoints(TrainerCallback):
    """Marks the checkpoint just saved as complete, then drops the older ones (rank 0 only)."""

    def on_save(self, args, state, control, **kwargs):
        barrier()  # every rank has written its part (e.g. its RNG state) before the mark
        current = saved_checkpoint(args, state)
        if not state.is_world_process_zero or current is None:
            return
        write_manifest(current, state.global_step)
        remove_checkpoints(Path(args.output_dir), keep=current)
