"""Schedule lengths in optimizer steps, resolved one way for every method.

A method's schedule (AFLoRA's t_i / t_f, AdaLoRA's tinit / tfinal) is given in the unit its recipe
uses: steps (the papers' DeBERTaV3 tables), epochs (the AFLoRA reference code's unit), or a
fraction of the run (the same shape for a run of any length: MiniLM, debug runs). The first key
set wins. A product of epochs or a fraction with a step count is rarely whole: each method says
how it rounds, so that its numbers stay those its earlier runs computed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from harness.errors import ConfigError

Rounding = Literal["truncate", "nearest"]
# "nearest" is Python's round(): halves go to the even neighbour (round(2.5) == 2).
_ROUND: dict[str, Callable[[float], int]] = {"truncate": int, "nearest": round}


def schedule_steps(
    cfg: Any,
    name: str,
    *,
    steps_per_epoch: int,
    total_steps: int,
    rounding: Rounding,
    steps_key: str | None = None,
) -> int:
    """``method.<name>_steps`` (or ``method.<steps_key>``) if set, else ``method.<name>_epochs`` x
    ``steps_per_epoch``, else ``method.<name>_frac`` x ``total_steps``, the fraction in [0, 1).

    A key the method's yaml does not define counts as unset. Raises ConfigError naming the key.
    """
    steps_key = steps_key or f"{name}_steps"
    to_int = _ROUND[rounding]
    if cfg.get(steps_key) is not None:
        return int(cfg[steps_key])
    if cfg.get(f"{name}_epochs") is not None:
        return to_int(cfg[f"{name}_epochs"] * steps_per_epoch)
    fraction = cfg.get(f"{name}_frac")
    if fraction is None:
        raise ConfigError(
            f"method.{name}_frac must be set (a fraction in [0, 1) of the run's steps) when "
            f"method.{steps_key} and method.{name}_epochs are null"
        )
    if not 0 <= fraction < 1:
        raise ConfigError(f"method.{name}_frac = {fraction} must lie in [0, 1)")
    return to_int(fraction * total_steps)
