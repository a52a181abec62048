"""Where the repository's own files live: one definition for every module that starts run.py or
reads conf/. Imports nothing heavy, so the light tools (the study, the GPU check) can use it."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CONF_DIR = REPO / "conf"
RUN_PY = REPO / "run.py"


def conf_file(group: str, name: str) -> Path:
    """``conf/<group>/<name>.yaml``, e.g. ``conf_file("task", "rte")``."""
    return CONF_DIR / group / f"{name}.yaml"
