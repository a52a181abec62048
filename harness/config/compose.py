"""The config run.py would get for a command line, composed in-process: Hydra and omegaconf only,
no torch. For the tools that read a run's config without running it (the bench, a study stepping
over finished runs, the tests)."""

from __future__ import annotations

from collections.abc import Sequence

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig

from harness.config.schema import register_schema
from harness.config.validation import register_resolver
from harness.core.paths import CONF_DIR


def run_config(overrides: Sequence[str]) -> DictConfig:
    """``python run.py <overrides>``'s config (Hydra's state is global: initialised once per process)."""
    if not GlobalHydra.instance().is_initialized():
        register_schema()
        register_resolver()  # hydra.run.dir, for a caller composing with return_hydra_config
        initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3")
    return compose("config", overrides=list(overrides))
