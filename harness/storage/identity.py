"""Run identity: which directory a config trains in, and what must match to reuse that directory.

A run directory is ``<runs_dir>/<model>/<task>/<method>/seed<seed>[/<variant>]``. The variant
lists the command line's overrides of every other key that changes what is trained, e.g.
``seed1/train.lr=0.01``, so a sweep over any key gives one directory per value. Each value is
written as Hydra's sweeper writes it (``canonical_value``): ``train.lr=1e-2``, ``0.01`` and
``1.0e-2``, under ``-m`` or not, all train in ``train.lr=0.01/``, and the report reads the folders
with the same function.

Every run directory also records the fingerprint of its config (``fingerprint.json``): the
resolved config minus the keys of ``NOT_IDENTITY``, which say where, how fast or how verbosely a
run trains but never what it computes. A checkpoint or result is reused only when the config
asking for it has the same fingerprint content. A key that only one side has (added to or
removed from the defaults in between) is not a difference: it cannot have been set differently.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import OverrideParseException
from omegaconf import DictConfig, OmegaConf

from harness.config.lengths import canonical, from_former_spellings
from harness.config.schema import MAX_SEED, SCHEMA_DEFAULTS, check_count
from harness.core.errors import ConfigError
from harness.storage.checkpoint_folders import has_checkpoints
from harness.storage.results import RESULT_FILE, ResultFileError, read_result_file, write_json_atomic

log = logging.getLogger(__name__)

FINGERPRINT_FILE = "fingerprint.json"
STANDARD_AXES = ("task", "model", "method", "seed")  # the run directory's path names these
NOT_IDENTITY = (
    "runs_dir",
    "force",
    "data.dir",  # where the same GLUE files lie on this machine
    "train.device",
    "train.threads",
    "train.logging_steps",
    "train.keep_checkpoints",
    "train.report_to",
    "hydra",
)
# Mappings handed on as they are, where '+' adds a real setting: transformers' model config.
OPEN_MAPPINGS = ("model.config",)
_PLAIN_VALUE = re.compile(r"^[\w.+\-%]{1,40}$")  # '%': a schedule length, method.t_i=30%
_MAX_VARIANT = 120  # characters; a longer variant is replaced by its hash


def _excluded(key: str, prefixes: Iterable[str]) -> bool:
    return any(key == p or key.startswith(p + ".") for p in prefixes)


# --- the directory -----------------------------------------------------------------------------


def _override_key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


@functools.cache
def _override_parser() -> OverridesParser:
    return OverridesParser.create()


def canonical_value(override: str) -> str:
    """The value of ``key=value`` as Hydra's sweeper writes it into a ``-m`` job's overrides:
    ``1e-2``, ``1.0e-2`` and ``0.01`` are all ``0.01``, ``2e-5`` is ``2e-05``. The one spelling of a
    value in a folder name, whether the command line ran with ``-m`` or not; a text that is not an
    override (a hash, ``config-<hash>``) is kept as it is."""
    if "=" not in override:
        return ""
    raw = override.split("=", 1)[1]
    try:
        parsed = _override_parser().parse_override(override)
    except OverrideParseException:
        return raw
    return raw if parsed.is_sweep_override() else parsed.get_value_element_as_str()


def canonical_variant(text: str) -> str:
    """A variant folder's name (or a result's recorded variant) with every value canonical: a folder
    named before values were (``train.lr=1e-3``) reads as the config it trained (``train.lr=0.001``)."""
    items = [f"{_override_key(item)}={canonical_value(item)}" if "=" in item else item for item in text.split(",")]
    return ",".join(items) if text else ""


def variant(overrides: Iterable[str]) -> str:
    """``key=value,...`` of the overrides outside the standard axes and NOT_IDENTITY ('' if none).

    Every value is canonical (``canonical_value``); one that is not a short plain word (a path, a
    list) is written as a hash of itself.
    """
    items = []
    for override in overrides:
        key = _override_key(override)
        if key in STANDARD_AXES or _excluded(key, NOT_IDENTITY):  # but model.path is not an axis
            continue
        value = canonical_value(override)
        if not _PLAIN_VALUE.match(value):
            value = "h" + hashlib.sha256(value.encode()).hexdigest()[:8]
        items.append(f"{key}={value}")
    text = ",".join(sorted(items))
    if len(text) > _MAX_VARIANT:
        text = "config-" + hashlib.sha256(text.encode()).hexdigest()[:12]
    return text


def folder_name(key: str, value: Any, inside: str = "runs_dir") -> str:
    """``value`` as the name of a folder or file inside ``inside`` (runs_dir, a report's output),
    refused in one line naming ``key`` when it could leave that folder."""
    name = str(value)
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\x00" in name:
        raise ConfigError(f"{key} = {name!r} cannot name a folder inside {inside} (no '/', '..' or empty names)")
    return name


def run_subdir(model: Any, task: Any, method: Any, seed: Any, overrides: Iterable[str]) -> str:
    """``<model>/<task>/<method>/seed<seed>[/<variant>]``: the run directory below runs_dir."""
    check_count("seed", seed, 0, MAX_SEED)
    for override in overrides:
        if override.startswith(("+", "~")) and not _excluded(_override_key(override), OPEN_MAPPINGS):
            raise ConfigError(
                f"{override!r}: the harness adds and deletes no keys ('+', '~'); "
                "override an existing key without them (python run.py --help lists every key)"
            )
    parts = [folder_name(f"{k}.name", v) for k, v in (("model", model), ("task", task), ("method", method))]
    parts.append(f"seed{seed}")
    suffix = variant(overrides)
    return "/".join([*parts, suffix] if suffix else parts)


# --- the fingerprint ---------------------------------------------------------------------------


def _flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, dict):
        flat: dict[str, Any] = {}
        for key, value in node.items():
            flat.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    return {prefix: node}


# A builder module that moved keeps the name it had when the first runs were fingerprinted, so
# their fingerprints stay what they were (the module says where the code lives, not what it computes).
FORMER_MODULES = {"baselines.aflora": "aflora.builder"}


def _as_fingerprinted(key: str, value: Any) -> Any:
    if key == "method.module":
        return FORMER_MODULES.get(value, value)
    return canonical(value) if key.startswith("method.") else value  # '1.0 epochs' trains as '1 epoch'


def content(config: DictConfig | dict) -> dict[str, Any]:
    """The training content of a config: dotted key -> resolved value, NOT_IDENTITY removed, and
    so are the keys the typed schema adds while they hold its default (``harness.config.schema.SCHEMA_DEFAULTS``):
    the configs fingerprinted before the schema did not have them. Schedule lengths are read in
    their one-key form, whichever form the config wrote (``harness.config.lengths``)."""
    if isinstance(config, DictConfig):
        config = OmegaConf.to_container(config, resolve=True)
    flat = from_former_spellings(_flatten(config))
    return {
        k: _as_fingerprinted(k, v)
        for k, v in sorted(flat.items())
        if not _excluded(k, NOT_IDENTITY) and not (k in SCHEMA_DEFAULTS and v == SCHEMA_DEFAULTS[k])
    }


def digest(training_content: dict[str, Any]) -> str:
    text = json.dumps(training_content, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def differences(recorded: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """``key: recorded -> current`` for every key both configs set, to different values."""
    return [
        f"{key}: {recorded[key]!r} -> {current[key]!r}"
        for key in sorted(recorded.keys() & current.keys())
        if recorded[key] != current[key]
    ]


def write_fingerprint(run_dir: Path, training_content: dict[str, Any]) -> None:
    payload = {"fingerprint": digest(training_content), "content": training_content}
    write_json_atomic(Path(run_dir) / FINGERPRINT_FILE, payload)


def _legacy_content(run_dir: Path) -> dict[str, Any] | None:
    """A directory from before fingerprints: its result's config, else the one its checkpoints
    trained with (``.hydra/config.yaml``, which Hydra no longer overwrites)."""
    try:
        result = read_result_file(run_dir / RESULT_FILE)
        if isinstance(result.get("config"), dict):
            return content(result["config"])
    except ResultFileError:
        pass
    saved = run_dir / ".hydra" / "config.yaml"
    if has_checkpoints(run_dir) and saved.is_file():
        try:
            return content(OmegaConf.load(saved))
        except Exception as err:  # an unreadable record cannot refuse anything; say so
            log.warning("%s: cannot read the config its checkpoints trained with (%s)", saved, err)
    return None


def recorded_content(run_dir: Path) -> dict[str, Any] | None:
    """The training content the run directory's checkpoints or result belong to (None: nothing)."""
    path = Path(run_dir) / FINGERPRINT_FILE
    if path.is_file():
        try:
            return from_former_spellings(json.loads(path.read_text())["content"])
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise ConfigError(f"{path}: unreadable ({err}); force=true sets the run directory aside") from err
    return _legacy_content(Path(run_dir))


class RunDirConflict(ConfigError):
    """The run directory holds a checkpoint or result of another config."""


def check_same_config(run_dir: Path, current: dict[str, Any]) -> None:
    """Refuse, naming the differing keys, when ``run_dir`` holds a checkpoint or result of another config."""
    if not (Path(run_dir) / RESULT_FILE).exists() and not has_checkpoints(run_dir):
        return  # nothing to lose or to mistake for this config's
    recorded = recorded_content(run_dir)
    if recorded is None:
        return
    diff = differences(recorded, current)
    if diff:
        raise RunDirConflict(
            f"{run_dir} holds a run of another config ({'; '.join(diff)}): "
            "force=true sets it aside and retrains, or choose another runs_dir"
        )
