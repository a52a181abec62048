"""Whether a run.py command line has already finished, known without starting run.py.

Resuming a study started run.py once per finished run, only for it to find the completed result
and exit: some 7 CPU seconds each, nearly all of them importing torch, transformers and peft, so
about 13 minutes of two jobs to step over a 200-run study near its end. Here the command line is
composed in-process (Hydra and omegaconf only) and put to the two checks run.py makes before it
skips a run (harness/execution/lifecycle.py), with its functions: the run directory holds a completed
result.json, and the config recorded there is not another config. Anything else, including a
config that does not compose, goes to run.py, which reports it.

A study asks again as each run ends (harness/studies/pool.py), so each command line's composition
is kept for the process: each costs about a fifth of a CPU second, and tests/test_paper_budget.py's
growing grid, asked five times, went from 19.2 to 1.8 CPU s.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path

from hydra.errors import HydraException
from omegaconf.errors import OmegaConfBaseException

from harness.config.compose import run_config
from harness.core.errors import HarnessError
from harness.core.paths import REPO
from harness.storage import identity
from harness.storage.results import is_completed


def run_dir_of(overrides: Sequence[str]) -> tuple[Path, dict] | None:
    """The run directory run.py would use for ``overrides`` (started in the repository, as the
    pool starts it) and the training content of its config; None when the command line does not
    compose."""
    return _composed(tuple(overrides))


@functools.cache  # the command line and conf/ decide both (data.dir, read from GLUE_DIR, is neither)
def _composed(overrides: tuple[str, ...]) -> tuple[Path, dict] | None:
    try:
        cfg = run_config(overrides)
        below = identity.run_subdir(cfg.model.name, cfg.task.name, cfg.method.name, cfg.seed, overrides)
        return REPO / cfg.runs_dir / below, identity.content(cfg)
    except (HydraException, OmegaConfBaseException, HarnessError):
        return None


def is_finished(overrides: Sequence[str]) -> bool:
    """True when run.py would find this run done and exit at once (``force=true`` never is)."""
    if any(o.lstrip("+~").split("=", 1)[0] == "force" for o in overrides):
        return False
    found = run_dir_of(overrides)
    if found is None:
        return False
    run_dir, content = found
    if not is_completed(run_dir):
        return False
    try:
        identity.check_same_config(run_dir, content)  # run.py's own check (result.json exists: no torch import)
    except HarnessError:  # a result of another config, or an unreadable record: run.py says which
        return False
    return True
