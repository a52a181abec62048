"""Where each run of a study stands, read from its run directory without starting run.py.

``python -m harness.study STUDY --status`` prints one line per run, in the study's order, then a
count. A run is *finished* when run.py would step over it (harness/studies/finished_runs.py); a run
with a checkpoint marked complete resumes from the epoch that checkpoint saved (the Trainer's own
``trainer_state.json``); a failed run shows its recorded error. Nothing here imports torch, so a
long study's progress reads while it trains (each command line composes in about a fifth of a CPU second).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.storage.checkpoint_folders import last_complete_checkpoint
from harness.storage.result_schema import COMPLETED, FAILED
from harness.storage.results import RESULT_FILE, ResultFileError, read_result_file
from harness.studies.finished_runs import is_finished, run_dir_of
from harness.studies.pool import Run

FINISHED, PARTLY_TRAINED, NOT_STARTED, REFUSED = "finished", "partly trained", "not started", "refused"  # and FAILED


@dataclass(frozen=True)
class RunProgress:
    kind: str  # one of the five above, for the count
    detail: str  # what the line says


def saved_epoch(checkpoint: Path) -> str:
    """'epoch E of N saved', from the checkpoint's trainer_state.json."""
    try:
        state = json.loads((checkpoint / "trainer_state.json").read_text())
        return f"epoch {state['epoch']:g} of {state['num_train_epochs']} saved"
    except (OSError, ValueError, KeyError, TypeError):
        return f"{checkpoint.name} saved"


def progress_of(run: Run) -> RunProgress:
    found = run_dir_of(run.overrides)
    if found is None:
        return RunProgress(REFUSED, "refused: does not compose (run.py says why)")
    run_dir = found[0]
    if is_finished(run.overrides):
        return RunProgress(FINISHED, FINISHED)
    if (run_dir / RESULT_FILE).is_file():  # not this config's completed result: what else it holds
        try:
            result = read_result_file(run_dir / RESULT_FILE)
        except ResultFileError as err:
            return RunProgress(REFUSED, f"refused: {err}")
        if result["status"] == COMPLETED:
            return RunProgress(REFUSED, "refused: holds another config's result (run.py names the keys)")
        if result["status"] == FAILED:
            error = str(result.get("error") or "no error recorded").splitlines()[0]
            return RunProgress(FAILED, f"failed: {error}")
    checkpoint = last_complete_checkpoint(run_dir)
    if checkpoint is not None:
        return RunProgress(PARTLY_TRAINED, saved_epoch(checkpoint))
    if run_dir.exists():
        return RunProgress(NOT_STARTED, "started, no epoch saved yet")
    return RunProgress(NOT_STARTED, NOT_STARTED)


def status_lines(runs: Sequence[Run]) -> list[str]:
    """One line per run (where it stands, then its command line), then the count of each kind."""
    progress = [progress_of(run) for run in runs]
    width = max((len(p.detail) for p in progress), default=0)
    lines = [f"{p.detail:<{width}}  {' '.join(run.overrides)}" for p, run in zip(progress, runs, strict=True)]
    counts = Counter(p.kind for p in progress)
    kinds = [f"{counts[k]} {k}" for k in (FINISHED, PARTLY_TRAINED, FAILED, NOT_STARTED, REFUSED) if counts[k]]
    lines.append(f"{len(runs)} runs: {', '.join(kinds) or 'none'}")
    return lines
