"""Schedule lengths: one typed value each, in the unit it was given, turned into optimizer steps.

A method's schedule (AFLoRA's t_i / t_f, AdaLoRA's tinit / tfinal) is given in the unit its recipe
uses: steps (the papers' DeBERTaV3 tables), epochs (the AFLoRA reference code's unit), or a
fraction of the run (the same shape for a run of any length: MiniLM, debug runs). The yaml spells
a length ``<name>_steps``, ``<name>_epochs`` or ``<name>_frac`` (AdaLoRA's steps: the bare name).
The method's yaml gives a fraction; a recipe or tuning file that gives the length in steps or
epochs overrides it (steps, then epochs, then the fraction: ``one_length``), and a value given on
the command line replaces the length whatever unit the files gave it (``command_line_wins``).
(The files keep the method's fraction beside their unit, as they did when the committed runs were
fingerprinted: nulling it there would make every such run another config.)
A product of epochs or a fraction with a step count is rarely whole: each method says how it
rounds, so that its numbers stay those its earlier runs computed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from omegaconf import DictConfig

from harness.core.errors import ConfigError

Unit = Literal["steps", "epochs", "fraction"]
Rounding = Literal["truncate", "nearest"]
# "nearest" is Python's round(): halves go to the even neighbour (round(2.5) == 2).
_ROUND: dict[str, Callable[[float], int]] = {"truncate": int, "nearest": round}
_SUFFIXES: dict[str, Unit] = {"_steps": "steps", "_epochs": "epochs", "_frac": "fraction"}


@dataclass(frozen=True)
class Length:
    """A schedule length and its unit; ``key`` is the config key that gave it (for messages)."""

    value: float
    unit: Unit
    key: str

    def steps(self, *, steps_per_epoch: int, total_steps: int, rounding: Rounding) -> int:
        """This length in optimizer steps of a run of ``total_steps`` (``steps_per_epoch`` an epoch)."""
        if self.unit == "steps":
            return int(self.value)
        per = steps_per_epoch if self.unit == "epochs" else total_steps
        return _ROUND[rounding](self.value * per)


def _stem(key: str) -> str:
    for suffix in _SUFFIXES:
        if key.endswith(suffix):
            return key[: -len(suffix)]
    return key


def spellings(keys: Iterable[str], name: str) -> dict[str, Unit]:
    """The keys among ``keys`` that spell the length ``name``, with the unit each gives it."""
    found: dict[str, Unit] = {k: u for suffix, u in _SUFFIXES.items() if (k := name + suffix) in keys}
    if name in keys:  # AdaLoRA's tinit / tfinal: steps under the bare name
        found[name] = "steps"
    return found if "fraction" in found.values() else {}


_PRECEDENCE: tuple[Unit, ...] = ("steps", "epochs", "fraction")


def one_length(method: object, name: str) -> Length:
    """The length ``name`` the typed method settings ``method`` hold: its first spelling set, in
    steps, epochs, fraction order. Raises ConfigError naming the keys when none is set."""
    keys = spellings(vars(method), name)
    given = sorted(
        ((k, getattr(method, k)) for k in keys if getattr(method, k) is not None),
        key=lambda kv: _PRECEDENCE.index(keys[kv[0]]),
    )
    if not given:
        raise ConfigError(f"set one of {', '.join(f'method.{k}' for k in keys)} (all are null)")
    key, value = given[0]
    unit = keys[key]
    if isinstance(value, bool) or (unit == "steps" and not isinstance(value, int)):
        raise ConfigError(f"method.{key} = {value!r} must be a whole number of steps")
    if value < 0 or (unit == "fraction" and value >= 1):
        raise ConfigError(f"method.{key} = {value!r} must be >= 0" + (" and below 1" if unit == "fraction" else ""))
    return Length(value=value, unit=unit, key=f"method.{key}")


def command_line_wins(cfg: DictConfig, overrides: Sequence[str]) -> DictConfig:
    """Null the other spellings of every length the command line sets, so that its value is the
    length whatever unit the method, tuning or recipe files gave it. Returns ``cfg``, changed in place."""
    method = cfg.get("method")
    if method is None:
        return cfg
    for override in overrides:
        key, _, value = override.lstrip("+~").partition("=")
        if not key.startswith("method.") or value in ("", "null"):
            continue
        key = key.removeprefix("method.")
        for other in spellings(method.keys(), _stem(key)):
            if other != key:
                method[other] = None
    return cfg
