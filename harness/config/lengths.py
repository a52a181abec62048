"""Schedule lengths: one config value each, which states its unit.

A method's schedule (AFLoRA's ``t_i`` / ``t_f``, AdaLoRA's ``tinit`` / ``tfinal``) is given in the
unit its source uses: ``600 steps`` (the papers' DeBERTaV3 tables), ``1 epoch`` or ``14 epochs``
(the AFLoRA reference code's unit), or ``5%`` of the run's optimizer steps (the same shape for a run
of any length: MiniLM, debug runs). It is one key, so a value given on the command line replaces
the files' as any other key does, whatever unit they used: ``method.t_i=30%``.

A product of epochs or a fraction with a step count is rarely whole: each method says how it
rounds, so that its numbers stay those its earlier runs computed.

Runs fingerprinted before lengths were one key spelled each as up to three keys
(``t_i_steps`` / ``t_i_epochs`` / ``t_i_frac``; AdaLoRA's steps under the bare name), the first
set of steps, epochs, fraction winning. ``from_former_spellings`` reads such a record as the one
length it trained with, so those runs still resume and are still recognised as done.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from harness.core.errors import ConfigError

Unit = Literal["steps", "epochs", "fraction"]
Rounding = Literal["truncate", "nearest"]
# "nearest" is Python's round(): halves go to the even neighbour (round(2.5) == 2).
_ROUND: dict[str, Callable[[float], int]] = {"truncate": int, "nearest": round}
_TEXT = re.compile(r"^\s*(?P<number>\d+(\.\d*)?|\.\d+)\s*(?P<unit>steps?|epochs?|%)\s*$")
_UNITS: dict[str, Unit] = {"step": "steps", "steps": "steps", "epoch": "epochs", "epochs": "epochs", "%": "fraction"}
EXAMPLES = "'600 steps', '1 epoch' or '5%' (of the run's steps)"


def _plain(number: Decimal) -> str:
    """``number`` without exponent or trailing zeros: 1.50 -> '1.5', 100 -> '100'."""
    return format(number.normalize(), "f")


@dataclass(frozen=True)
class Length:
    """A schedule length: ``number`` in ``unit`` (a fraction's number is its percentage, as written),
    and ``key``, the config key that gave it (for messages)."""

    number: Decimal
    unit: Unit
    key: str

    @classmethod
    def parse(cls, key: str, text: Any) -> Length:
        """``text`` ('600 steps', '1 epoch', '14 epochs', '5%') as a Length; ConfigError naming ``key`` otherwise."""
        match = _TEXT.match(text) if isinstance(text, str) else None
        if match is None:
            raise ConfigError(f"{key} = {text!r} must be a length with its unit: {EXAMPLES}")
        number, unit = Decimal(match["number"]), _UNITS[match["unit"]]
        if unit == "steps" and number != number.to_integral_value():
            raise ConfigError(f"{key} = {text!r} must be a whole number of steps")
        if unit == "fraction" and number >= 100:
            raise ConfigError(f"{key} = {text!r} must be below 100% of the run")
        return cls(number=number, unit=unit, key=key)

    def __str__(self) -> str:
        """The canonical text: '600 steps', '1 epoch', '14 epochs', '5%'."""
        if self.unit == "fraction":
            return f"{_plain(self.number)}%"
        singular = self.number == 1
        return f"{_plain(self.number)} {self.unit[:-1] if singular else self.unit}"

    @property
    def value(self) -> float:
        """Steps, epochs, or the fraction of the run (0.05 for '5%', the same float as the literal 0.05)."""
        return float(self.number / 100) if self.unit == "fraction" else float(self.number)

    def steps(self, *, steps_per_epoch: int, total_steps: int, rounding: Rounding) -> int:
        """This length in optimizer steps of a run of ``total_steps`` (``steps_per_epoch`` an epoch)."""
        if self.unit == "steps":
            return int(self.number)
        per = steps_per_epoch if self.unit == "epochs" else total_steps
        return _ROUND[rounding](self.value * per)


def canonical(value: Any) -> Any:
    """A length's canonical text ('1.0 epochs' -> '1 epoch'); any other value as it is."""
    try:
        return str(Length.parse("", value))
    except ConfigError:
        return value


# --- runs recorded before a length was one key ------------------------------------------------

# In the former precedence: steps (AdaLoRA's under the bare name), then epochs, then the fraction.
_FORMER_UNITS: tuple[tuple[str, Unit], ...] = (
    ("_steps", "steps"),
    ("", "steps"),
    ("_epochs", "epochs"),
    ("_frac", "fraction"),
)


def _former_length(number: Any, unit: Unit) -> str:
    decimal = Decimal(repr(number))  # the shortest text of the float, as the yaml wrote it: 0.05 -> '0.05'
    return str(Length(number=decimal * 100 if unit == "fraction" else decimal, unit=unit, key=""))


def from_former_spellings(content: dict[str, Any]) -> dict[str, Any]:
    """A flat training content (dotted key -> value) with every length of the former spellings
    (``method.<name>_frac`` marks one) as the single key ``method.<name>`` that now holds it: the
    first set of ``<name>_steps`` or the bare ``<name>`` (AdaLoRA), ``<name>_epochs``, ``<name>_frac``."""
    migrated = dict(content)
    for fraction_key in [k for k in content if k.startswith("method.") and k.endswith("_frac")]:
        name = fraction_key.removesuffix("_frac")
        spelled = [(name + suffix, unit) for suffix, unit in _FORMER_UNITS]
        given = [(content[key], unit) for key, unit in spelled if content.get(key) is not None]
        for key, _ in spelled:
            migrated.pop(key, None)
        if given:
            migrated[name] = _former_length(*given[0])
    return migrated
