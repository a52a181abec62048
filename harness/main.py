"""What ``run.py`` does around one experiment: skip finished runs, record failures, write results."""

from __future__ import annotations

import datetime as dt
import errno
import logging
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from harness.checkpoints import remove_checkpoints
from harness.distributed import barrier, is_main_process
from harness.env import environment
from harness.errors import HarnessError
from harness.gradients import NonFiniteGradientError
from harness.results import RESULT_FILE, failed_result, is_completed, write_json_atomic
from harness.training import resolve_device

log = logging.getLogger(__name__)


def _identity(cfg: DictConfig) -> dict:
    return {"task": cfg.task.name, "model": cfg.model.name, "method": cfg.method.name, "seed": cfg.seed}


def _set_aside_previous(run_dir: Path) -> None:
    """force=true: keep the old result under a dated name and start from no checkpoint."""
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    (run_dir / RESULT_FILE).rename(run_dir / f"result.previous-{stamp}.json")
    remove_checkpoints(run_dir)


def main(cfg: DictConfig, run_dir: Path, in_sweep: bool = False) -> int:
    """Run (or resume) the experiment in ``run_dir``; return the process exit code.

    A failure always leaves a ``failed`` result.json naming the error. In a sweep the error is
    logged and the sweep goes on; a single run re-raises unexpected errors with their traceback.
    """
    from harness.experiment import run_experiment  # heavy imports after Hydra has parsed the CLI

    if is_completed(run_dir):
        if not cfg.get("force", False):
            log.info("%s already holds a completed result; force=true retrains (keeping it).", run_dir / RESULT_FILE)
            return 0
        if is_main_process():  # the other ranks train too; they resume from what rank 0 resumes from
            _set_aside_previous(run_dir)
    try:
        result = run_experiment(cfg, run_dir)
        if is_main_process():
            write_json_atomic(run_dir / RESULT_FILE, result)
    except (HarnessError, NonFiniteGradientError) as err:  # the user's input, or a diverged run
        _record_failure(cfg, run_dir, err)
        log.error("%s", err)
        return 2
    except Exception as err:
        _record_failure(cfg, run_dir, err)
        if isinstance(err, OSError) and err.errno == errno.ENOSPC:
            log.error("disk full while writing to %s (%s); free space and rerun to resume", run_dir, err)
            return 2
        if not in_sweep:
            raise
        log.exception("run failed; the sweep goes on")  # one bad run must not stop the others
        return 1
    barrier()  # every rank has finished writing into the checkpoints before rank 0 deletes them
    if is_main_process():
        if not cfg.train.keep_checkpoints:
            remove_checkpoints(run_dir)
        best = result["metrics"]["best"]
        metric = result["metrics"]["selection_metric"]
        log.info("Best %s %.4f at epoch %d; wrote %s", metric, best[metric], best["epoch"], run_dir / RESULT_FILE)
    return 0


def _record_failure(cfg: DictConfig, run_dir: Path, err: BaseException) -> None:
    if not is_main_process():
        return
    try:
        config = OmegaConf.to_container(cfg, resolve=True)
    except Exception:  # an unresolvable config is itself the error being recorded
        config = None
    try:
        env = environment(resolve_device("cpu"))
    except Exception:
        env = {}
    message = f"{type(err).__name__}: {err}"
    try:
        write_json_atomic(run_dir / RESULT_FILE, failed_result(_identity(cfg), message, config, env))
    except OSError as write_err:  # e.g. the disk is still full: say so, keep the original error
        log.error("could not record the failure in %s: %s", run_dir / RESULT_FILE, write_err)
