"""The one check of a composed config: every key typed and in range, before a run touches the disk.

Hydra merges the values into the typed schema (``harness/config/schema.py``) as it composes, refusing
unknown keys and values of the wrong type. ``validate_config`` adds the ranges of each group (the
dataclasses' ``__post_init__``), the method's own settings (``harness.execution.methods.method_settings``),
how the task's fields fit together (``harness.inputs.tasks.TaskSpec``) and the run directory's names.
run.py runs it while Hydra resolves the run directory (``${run_subdir:...}`` in conf/config.yaml),
so a refused config leaves nothing behind: Hydra has made no folder and opened no log yet. In a
sweep (``-m``) a refused job must not stop the others: ``harness.execution.lifecycle`` refuses it instead,
writing no result (Hydra's run.log of the job stays).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from harness.config.schema import DataConfig, ModelConfig, TaskConfig, TrainConfig
from harness.core.errors import ConfigError
from harness.inputs.tasks import task_spec
from harness.storage.identity import run_subdir

GROUPS = {"task": TaskConfig, "model": ModelConfig, "train": TrainConfig, "data": DataConfig}


def _typed(schema: type, node: Any, key: str) -> Any:
    try:
        return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(schema), node))
    except OmegaConfBaseException as err:
        where = f"{key}.{err.full_key}" if getattr(err, "full_key", None) else key
        raise ConfigError(f"{where}: {str(err).splitlines()[0]}") from None


def validate_config(cfg: DictConfig) -> None:
    """Raise ConfigError, in one line naming the key, for anything wrong in ``cfg``."""
    from harness.execution.methods import method_settings  # imports the method's module: torch, peft

    try:
        OmegaConf.to_container(cfg, resolve=True)
    except Exception as err:  # an interpolation that does not resolve
        raise ConfigError(f"the config does not resolve: {str(err).splitlines()[0]}") from None
    for key, schema in GROUPS.items():
        _typed(schema, cfg[key], key)
    run_subdir(cfg.model.name, cfg.task.name, cfg.method.name, cfg.seed, [])  # folder names, seed
    task_spec(cfg)
    method_settings(cfg.method)


def checked_run_subdir(model: Any, task: Any, method: Any, seed: Any, overrides: Sequence[str], *, _root_) -> str:
    """``${run_subdir:...}``: the run directory below runs_dir, once the config it is for passes
    ``validate_config``. The command line's own checks (``run_subdir``: no added or deleted keys, a
    seed in range) come first: they need no library, where validating the config imports torch."""
    subdir = run_subdir(model, task, method, seed, overrides)
    if OmegaConf.select(_root_, "hydra.mode") != RunMode.MULTIRUN:
        run_config = OmegaConf.masked_copy(_root_, [k for k in _root_ if k != "hydra"])
        validate_config(run_config)
    return subdir


def register_resolver() -> None:
    """``${run_subdir:...}`` for conf/config.yaml's hydra.run.dir and hydra.sweep.subdir."""
    if not OmegaConf.has_resolver("run_subdir"):
        OmegaConf.register_new_resolver("run_subdir", checked_run_subdir)
