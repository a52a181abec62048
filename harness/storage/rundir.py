"""Housekeeping of one run directory: one process at a time, nothing lost, no leftovers.

- ``locked``: a run holds an exclusive lock on its directory; a second process refuses at once.
- ``set_aside``: moves files out of the way (``force=true``, a damaged checkpoint) into a new
  ``previous-<time>[-n]/`` folder, never overwriting an earlier one; result.json is renamed
  ``result.previous.json`` there so that the report does not count it.
- ``resumable_checkpoint``: the newest complete checkpoint that loads; a damaged one is set
  aside (``damaged-<time>/``) and the run resumes from an earlier one or starts from scratch.
- ``clean_leftovers``: temporary files of an interrupted atomic write, and the checkpoints of a
  run killed between writing its result and deleting them.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import fcntl
import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from transformers import TrainerCallback

from harness.core.errors import ConfigError
from harness.execution.methods import MethodCallback
from harness.storage.best_weights import BEST_DIR
from harness.storage.checkpoint_folders import checkpoint_dirs, last_complete_checkpoint
from harness.storage.checkpoints import DamagedCheckpoint, error_line, remove_checkpoints, verify_checkpoint
from harness.storage.epoch_predictions import PREDICTIONS_DIR
from harness.storage.identity import FINGERPRINT_FILE
from harness.storage.results import RESULT_FILE

log = logging.getLogger(__name__)


class RunDirLocked(ConfigError):
    """Another process is running in this run directory."""


def remove_empty_folders(run_dir: Path, runs_dir: Path) -> None:
    """Remove ``run_dir`` and its parents below ``runs_dir`` while they are empty (Hydra makes the
    run directory before run.py refuses a config: nothing of a refused run stays behind)."""
    folder, top = Path(run_dir).absolute(), Path(runs_dir).absolute()
    while folder != top and top in folder.parents:
        try:
            folder.rmdir()  # only an empty folder: never anything a run wrote
        except OSError:
            return
        folder = folder.parent


@contextlib.contextmanager
def locked(run_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``run_dir`` (released when the process ends, however it ends)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(run_dir, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            if err.errno not in (errno.EWOULDBLOCK, errno.EACCES):
                raise
            raise RunDirLocked(
                f"{run_dir} is in use by another process: wait for it to finish, or choose another runs_dir"
            ) from None
        yield
    finally:
        os.close(fd)  # releases the lock


def _new_folder(run_dir: Path, what: str) -> Path:
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    for n in range(1, 1000):
        folder = run_dir / (f"{what}-{stamp}" if n == 1 else f"{what}-{stamp}-{n}")
        try:
            folder.mkdir()
            return folder
        except FileExistsError:
            continue
    raise FileExistsError(f"{run_dir}: too many {what}-{stamp}* folders")


def set_aside(run_dir: Path, paths: list[Path], what: str = "previous") -> Path | None:
    """Move ``paths`` (files or folders of ``run_dir``) into a new ``<what>-<time>`` folder."""
    paths = [p for p in paths if p.exists()]
    if not paths:
        return None
    folder = _new_folder(run_dir, what)
    for path in paths:
        name = "result.previous.json" if path.name == RESULT_FILE else path.name
        os.replace(path, folder / name)
    return folder


def set_aside_run(run_dir: Path) -> Path | None:
    """force=true: the result, its best weights and predictions, the fingerprint and every checkpoint,
    so the run starts from scratch."""
    earlier = [
        run_dir / RESULT_FILE,
        run_dir / BEST_DIR,
        run_dir / PREDICTIONS_DIR,
        run_dir / FINGERPRINT_FILE,
        *checkpoint_dirs(run_dir),
    ]
    folder = set_aside(run_dir, earlier, "previous")
    if folder:
        log.info("force=true: set the earlier run aside in %s; training from scratch", folder)
    return folder


def load_callback_states(callbacks: Iterable[TrainerCallback], checkpoint: Path) -> None:
    """The state of each ``MethodCallback`` (the method's, the harness's tracker and timer) from
    ``checkpoint``; the others keep none. One that does not load sets the checkpoint aside and
    fails in one line (the callbacks may be half-loaded: the rerun starts clean)."""
    for callback in callbacks:
        if not isinstance(callback, MethodCallback):
            continue
        try:
            callback.load_state(checkpoint)
        except Exception as err:
            folder = set_aside(checkpoint.parent, [checkpoint], "damaged")
            raise DamagedCheckpoint(
                f"checkpoint {checkpoint}: the state of {type(callback).__name__} does not load "
                f"({error_line(err)}); set aside in {folder}: rerun to resume from an earlier checkpoint "
                "or from scratch"
            ) from None


def clean_leftovers(run_dir: Path, completed: bool, keep_checkpoints: bool) -> None:
    """Temporary files of interrupted writes; checkpoints a completed run no longer needs."""
    for name in (RESULT_FILE, FINGERPRINT_FILE):
        for tmp in run_dir.glob(f".{name}.*"):
            tmp.unlink(missing_ok=True)
    if completed and not keep_checkpoints and checkpoint_dirs(run_dir):
        log.info("%s: removing the checkpoints of a run that completed", run_dir)
        remove_checkpoints(run_dir)


def resumable_checkpoint(run_dir: Path) -> Path | None:
    """The newest complete checkpoint whose files all load; a damaged one is set aside, saying so."""
    while (checkpoint := last_complete_checkpoint(run_dir)) is not None:
        try:
            verify_checkpoint(checkpoint)
            return checkpoint
        except DamagedCheckpoint as err:
            folder = set_aside(run_dir, [checkpoint], "damaged")
            log.warning("%s; set it aside in %s and resume from an earlier checkpoint or from scratch", err, folder)
    return None
