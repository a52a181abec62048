"""Every check of a config that needs no data, model or disk: run before a run touches its directory."""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from harness.errors import ConfigError
from harness.identity import run_subdir
from harness.tasks import TaskSpec
from harness.training import resolve_device, validate_train_config


def validate_config(cfg: DictConfig) -> None:
    try:
        OmegaConf.to_container(cfg, resolve=True)
    except Exception as err:  # an interpolation that does not resolve
        raise ConfigError(f"the config does not resolve: {str(err).splitlines()[0]}") from None
    run_subdir(cfg.model.name, cfg.task.name, cfg.method.name, cfg.seed, [])  # names and seed
    TaskSpec.from_config(cfg.task, cfg.data.get("protocol", "paper"))  # data.protocol too
    validate_train_config(cfg.train)
    resolve_device(cfg.train.device)
    length = cfg.data.max_seq_length
    if isinstance(length, bool) or not isinstance(length, int) or length <= 0:
        raise ConfigError(f"data.max_seq_length = {length!r} must be a positive integer")
    if not isinstance(cfg.data.pad_to_max_length, bool):
        raise ConfigError(f"data.pad_to_max_length = {cfg.data.pad_to_max_length!r} must be true or false")
