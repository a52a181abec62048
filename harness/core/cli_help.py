"""``python run.py --help``: the resolver that lists a config group's options from ``conf/``.

conf/hydra/help/run.yaml writes the help by hand (what each main key means) and names each user
group's options with ``${conf_options:<group>}``, so the list is the files that exist and never
goes stale. Hydra's default help would list every group, the ones the harness selects on its own
(protocol, tuning, recipe) among them, as if they were choices.
"""

from __future__ import annotations

from omegaconf import OmegaConf

from harness.core.paths import CONF_DIR


def conf_options(group: str) -> str:
    """The options of ``conf/<group>/``, comma-separated: ``conf_options("model")``."""
    return ", ".join(sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml")))


def register_resolver() -> None:
    if not OmegaConf.has_resolver("conf_options"):
        OmegaConf.register_new_resolver("conf_options", conf_options)


register_resolver()
