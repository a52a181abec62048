"""Schedule lengths (harness/config/lengths.py): one value in one unit, the command line's winning, each
method's rounding."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from harness.config.lengths import Length, one_length
from harness.core.errors import ConfigError
from harness.execution.methods import method_settings
from tests.conftest import compose


@dataclass
class Spelled:
    """The three spellings of a length, as a method's settings hold them."""

    t_i_steps: int | None = None
    t_i_epochs: float | None = None
    t_i_frac: float | None = None


def steps(rounding: str = "truncate", steps_per_epoch: int = 10, total_steps: int = 8, **keys) -> int:
    return one_length(Spelled(**keys), "t_i").steps(
        steps_per_epoch=steps_per_epoch, total_steps=total_steps, rounding=rounding
    )


@pytest.mark.parametrize("rounding", ["truncate", "nearest"])
def test_each_unit_in_steps(rounding):
    assert steps(rounding, t_i_steps=7) == 7
    assert steps(rounding, t_i_epochs=2) == 20  # 2 epochs x 10 steps
    assert steps(rounding, t_i_frac=0.5) == 4  # 0.5 x 8 steps


@pytest.mark.parametrize(
    ("keys", "truncated", "nearest"),
    [
        ({"t_i_frac": 0.7}, 5, 6),  # 0.7 x 8 = 5.6: AFLoRA's t_f on a debug run (8 steps)
        ({"t_i_frac": 0.45}, 3, 4),  # 0.45 x 8 = 3.6: AdaLoRA's tfinal on the same run
        ({"t_i_frac": 0.15}, 1, 1),  # 0.15 x 8 = 1.2
        ({"t_i_epochs": 1.75}, 17, 18),  # 1.75 x 10 = 17.5; round() takes halves to the even neighbour
        ({"t_i_epochs": 0.25}, 2, 2),  # 0.25 x 10 = 2.5 -> 2 both ways (round half to even)
    ],
)
def test_each_rounding_by_hand(keys, truncated, nearest):
    assert steps("truncate", **keys) == truncated
    assert steps("nearest", **keys) == nearest


def test_a_length_states_its_unit_and_the_key_that_gave_it():
    assert one_length(Spelled(t_i_epochs=1), "t_i") == Length(value=1, unit="epochs", key="method.t_i_epochs")


def test_a_unit_the_files_set_wins_over_the_method_s_fraction():
    assert steps(t_i_steps=7, t_i_epochs=2, t_i_frac=0.5) == 7
    assert steps(t_i_epochs=2, t_i_frac=0.5) == 20


def test_a_length_out_of_range_or_unset_is_refused_naming_the_keys():
    with pytest.raises(ConfigError, match=r"^set one of method.t_i_steps, method.t_i_epochs, method.t_i_frac"):
        steps()
    with pytest.raises(ConfigError, match=r"^method.t_i_frac = 1.0 must be >= 0 and below 1$"):
        steps(t_i_frac=1.0)
    with pytest.raises(ConfigError, match=r"^method.t_i_steps = -2 must be >= 0$"):
        steps(t_i_steps=-2)


def test_the_command_line_wins_over_the_recipe_s_unit():
    """The recipe gives t_i in epochs (1); the command line's fraction is the length trained with."""
    cfg = compose(["model=deberta-v3-base", "method=aflora", "task=rte", "method.t_i_frac=0.3"])
    assert (cfg.method.t_i_steps, cfg.method.t_i_epochs, cfg.method.t_i_frac) == (None, None, 0.3)
    assert cfg.method.t_f_epochs == 14  # the other length keeps the recipe's
    settings = method_settings(cfg.method)
    assert settings.t_i == Length(value=0.3, unit="fraction", key="method.t_i_frac")
    # RTE's recipe: 20 epochs of 39 steps; the fraction of the whole run, not one epoch
    assert settings.t_i.steps(steps_per_epoch=39, total_steps=780, rounding="truncate") == 234


def test_the_recipes_give_their_lengths_in_their_units():
    cfg = compose(["model=deberta-v3-base", "method=aflora", "task=rte"])
    assert method_settings(cfg.method).t_i == Length(value=1, unit="epochs", key="method.t_i_epochs")
    adalora = method_settings(compose(["model=deberta-v3-base", "method=adalora", "task=rte"]).method)
    assert one_length(adalora, "tinit") == Length(value=600, unit="steps", key="method.tinit")
    override = compose(["model=deberta-v3-base", "method=adalora", "task=rte", "method.tinit_frac=0.1"])
    assert one_length(method_settings(override.method), "tinit").unit == "fraction"
