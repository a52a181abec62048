"""What ``run.py`` does around one experiment: skip finished runs, record failures, write results."""

from __future__ import annotations

import contextlib
import errno
import logging
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from harness.config.validation import validate_config
from harness.core.cli_errors import write_error
from harness.core.errors import INTERRUPTED, ConfigError, HarnessError
from harness.execution.distributed import barrier, is_main_process
from harness.execution.env import environment
from harness.execution.gradients import NonFiniteGradientError
from harness.execution.training import resolve_device
from harness.storage import identity
from harness.storage.checkpoint_folders import last_complete_checkpoint
from harness.storage.checkpoints import remove_checkpoints
from harness.storage.result_schema import FAILED, Env, RunResult
from harness.storage.results import RESULT_FILE, is_completed, write_result
from harness.storage.rundir import RunDirLocked, clean_leftovers, locked, remove_empty_folders, set_aside_run

log = logging.getLogger(__name__)


def _identity(cfg: DictConfig) -> dict:
    return {"task": cfg.task.name, "model": cfg.model.name, "method": cfg.method.name, "seed": cfg.seed}


def _claim(cfg: DictConfig, run_dir: Path, content: dict, force: bool) -> None:
    """Rank 0, once data, model and method are known to build: the directory is this config's."""
    if force:
        set_aside_run(run_dir)
    identity.write_fingerprint(run_dir, content)
    (run_dir / ".hydra").mkdir(exist_ok=True)
    OmegaConf.save(cfg, run_dir / ".hydra" / "config.yaml")  # what the checkpoints train with


def run(cfg: DictConfig, run_dir: Path, in_sweep: bool = False, variant: str = "") -> int:
    """Run (or resume) the experiment in ``run_dir``; return the process exit code.

    The config is checked first (harness/config/validation.py): a bad one is refused in one line and
    leaves nothing on disk, not even the empty folders Hydra made for the run. A directory holding a checkpoint or
    result of another config is refused (``force=true`` sets them aside and retrains). A failure
    leaves a ``failed`` result.json naming the error, except where a completed result would be
    replaced. In a sweep the error is logged and the sweep goes on; a single run re-raises
    unexpected errors with their traceback.
    """
    from harness.execution.experiment import run_experiment  # heavy imports after Hydra has parsed the CLI

    run_dir = Path(run_dir)
    main_process = is_main_process()
    try:
        validate_config(cfg)
    except ConfigError as err:
        log.error("%s", err)
        if main_process:
            remove_empty_folders(run_dir, Path(str(cfg.runs_dir)))
        return 2
    try:
        content = identity.content(cfg)
        force = bool(cfg.get("force", False))
        with locked(run_dir) if main_process else contextlib.nullcontext():
            if not force:
                identity.check_same_config(run_dir, content)
            completed = is_completed(run_dir)
            if main_process:
                clean_leftovers(run_dir, completed and not force, cfg.train.keep_checkpoints)
            if completed and not force:
                log.info(
                    "%s already holds a completed result; force=true retrains (keeping it).", run_dir / RESULT_FILE
                )
                return 0
            result = run_experiment(cfg, run_dir, claim=lambda: _claim(cfg, run_dir, content, force))
            if main_process:
                result.variant, result.fingerprint = variant, identity.digest(content)
                write_result(run_dir, result)
    except (identity.RunDirConflict, RunDirLocked) as err:  # not this run's directory: leave it as it is
        log.error("%s", err)
        return 2
    except KeyboardInterrupt:
        checkpoint = last_complete_checkpoint(run_dir)
        kept = f"the checkpoint {checkpoint.name} is kept" if checkpoint else "no checkpoint was complete yet"
        log.error("interrupted; %s: rerun the same command to resume", kept)
        return INTERRUPTED
    except (HarnessError, NonFiniteGradientError) as err:  # the user's input, or a diverged run
        log.error("%s", err)
        _record_failure(cfg, run_dir, err, variant)
        return 2
    except Exception as err:
        failed_write = write_error(err)
        if failed_write is not None:
            if failed_write.errno in (errno.ENOSPC, errno.EDQUOT):
                log.error("disk full while writing to %s (%s); free space and rerun to resume", run_dir, failed_write)
            else:
                log.error("cannot write to %s (%s); rerun to resume once it is writable", run_dir, failed_write)
            _record_failure(cfg, run_dir, err, variant)
            return 2
        _record_failure(cfg, run_dir, err, variant)
        if not in_sweep:
            raise
        log.exception("run failed; the sweep goes on")  # one bad run must not stop the others
        return 1
    barrier()  # every rank has finished writing into the checkpoints before rank 0 deletes them
    if main_process:
        if not cfg.train.keep_checkpoints:
            remove_checkpoints(run_dir)
        best, metric = result.metrics.best, result.metrics.selection_metric
        log.info("Best %s %s at epoch %d; wrote %s", metric, best.numbers[metric], best.epoch, run_dir / RESULT_FILE)
    return 0


def _record_failure(cfg: DictConfig, run_dir: Path, err: BaseException, variant: str) -> None:
    if not is_main_process() or is_completed(run_dir):  # a failure never replaces a completed result
        return
    try:
        config = OmegaConf.to_container(cfg, resolve=True)
    except Exception:  # an unresolvable config is itself the error being recorded
        config = None
    try:
        env = Env(**environment(resolve_device("cpu")))
    except Exception:
        env = None  # unknown; the failure itself is what must be recorded
    message = f"{type(err).__name__}: {err}"
    failed = RunResult(status=FAILED, error=message, **_identity(cfg), config=config, env=env, variant=variant)
    try:
        write_result(run_dir, failed)
    except OSError as write_err:  # e.g. the disk is still full: say so, keep the original error
        log.error("could not record the failure in %s: %s", run_dir / RESULT_FILE, write_err)
