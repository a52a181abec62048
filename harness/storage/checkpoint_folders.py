"""Which folders of a run directory are the Trainer's checkpoints, and which are marked complete.

Plain file-system reads, without torch or transformers (harness/storage/checkpoints.py, which writes
and verifies the mark, needs both): run.py's start-up checks a run directory with them, and a
study's ``--status`` reads every run directory without importing either.
"""

from __future__ import annotations

import re
from pathlib import Path

from harness.storage.checkpoint_manifest import MARKER

_STEP = re.compile(r"^checkpoint-(\d+)$")  # the Trainer's f"{PREFIX_CHECKPOINT_DIR}-{global_step}"


def checkpoints_by_step(run_dir: Path) -> list[tuple[int, Path]]:
    """(step, folder) of every checkpoint folder of ``run_dir``, complete or not, oldest first."""
    found = []
    for path in Path(run_dir).glob("checkpoint-*"):
        match = _STEP.match(path.name)
        if match and path.is_dir():
            found.append((int(match.group(1)), path))
    return sorted(found)


def checkpoint_dirs(run_dir: Path) -> list[Path]:
    """Every checkpoint folder of ``run_dir``, complete or not, oldest first."""
    return [path for _, path in checkpoints_by_step(run_dir)]


def has_checkpoints(run_dir: Path) -> bool:
    return bool(checkpoints_by_step(run_dir))


def last_complete_checkpoint(run_dir: Path) -> Path | None:
    complete = [path for path in checkpoint_dirs(run_dir) if (path / MARKER).exists()]
    return complete[-1] if complete else None
