"""Checkpoints that are either complete or ignored.

The Trainer writes a checkpoint as many files; a process killed half-way leaves a folder that
looks like a checkpoint but is not one. The marker below is written after the Trainer and every
method callback have saved their state (it must be the last callback), and only marked
checkpoints are resumed from. Older checkpoints are removed only once a newer one is marked,
so a crash at any moment leaves at least one good checkpoint.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from transformers import TrainerCallback

from harness.distributed import barrier

MARKER = "checkpoint-complete"
_STEP = re.compile(r"^checkpoint-(\d+)$")


def _checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    found = []
    for path in Path(run_dir).glob("checkpoint-*"):
        match = _STEP.match(path.name)
        if match and path.is_dir():
            found.append((int(match.group(1)), path))
    return sorted(found)


def last_complete_checkpoint(run_dir: Path) -> Path | None:
    complete = [path for _, path in _checkpoints(run_dir) if (path / MARKER).exists()]
    return complete[-1] if complete else None


def remove_checkpoints(run_dir: Path) -> None:
    for _, path in _checkpoints(run_dir):
        shutil.rmtree(path, ignore_errors=True)


class MarkCompleteCheckpoints(TrainerCallback):
    """Marks the checkpoint just saved as complete, then drops the older ones (rank 0 only)."""

    def on_save(self, args, state, control, **kwargs):
        barrier()  # every rank has written its part (e.g. its RNG state) before the mark
        if not state.is_world_process_zero:
            return
        current = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if not current.is_dir():
            return
        (current / MARKER).write_text(f"{state.global_step}\n")
        for _, path in _checkpoints(Path(args.output_dir)):
            if path != current:
                shutil.rmtree(path, ignore_errors=True)
