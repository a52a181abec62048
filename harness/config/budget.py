"""``budget=<name>``: a protocol chosen by name (conf/budget/), refused where it has no files.

A budget other than the default replaces a model's protocol and tuning files by
``conf/protocol/<model>-<budget>/<task>.yaml`` and ``conf/tuning/<model>-<budget>/<method>.yaml``
(conf/budget/paper.yaml). Hydra keeps those defaults optional, so a missing file would train the
run on the base config without a word; this check makes the choice explicit.
"""

from __future__ import annotations

from collections.abc import Mapping

from harness.core.errors import ConfigError
from harness.core.paths import REPO, conf_file

DEFAULT_BUDGET = "short"


def check_budget(choices: Mapping[str, str | None]) -> None:
    """Raise ConfigError naming the missing file when a non-default budget lacks the run's protocol or tuning."""
    budget = choices.get("budget") or DEFAULT_BUDGET
    if budget == DEFAULT_BUDGET:
        return
    for group in ("protocol", "tuning"):
        option = choices.get(group)
        if option is None or not conf_file(group, option).is_file():
            path = conf_file(group, option or "?").relative_to(REPO)
            raise ConfigError(
                f"budget={budget} is not defined for model={choices.get('model')} task={choices.get('task')} "
                f"method={choices.get('method')}: no {path}"
            )
