"""Schedule lengths (harness/config/lengths.py): one key with its unit, the command line's value
winning, each method's rounding, and the runs recorded in the former three-key spelling."""

from __future__ import annotations

from decimal import Decimal

import pytest

from harness.config.lengths import Length, canonical, from_former_spellings
from harness.core.errors import ConfigError
from harness.execution.methods import method_settings
from harness.storage import identity
from tests.conftest import compose


def steps(text: str, rounding: str = "truncate", steps_per_epoch: int = 10, total_steps: int = 8) -> int:
    return Length.parse("method.t_i", text).steps(
        steps_per_epoch=steps_per_epoch, total_steps=total_steps, rounding=rounding
    )


@pytest.mark.parametrize("rounding", ["truncate", "nearest"])
def test_each_unit_in_steps(rounding):
    assert steps("7 steps", rounding) == 7
    assert steps("2 epochs", rounding) == 20  # 2 epochs x 10 steps
    assert steps("50%", rounding) == 4  # 0.5 x 8 steps


@pytest.mark.parametrize(
    ("text", "truncated", "nearest"),
    [
        ("70%", 5, 6),  # 0.7 x 8 = 5.6: AFLoRA's t_f on a debug run (8 steps)
        ("45%", 3, 4),  # 0.45 x 8 = 3.6: AdaLoRA's tfinal on the same run
        ("15%", 1, 1),  # 0.15 x 8 = 1.2
        ("1.75 epochs", 17, 18),  # 1.75 x 10 = 17.5; round() takes halves to the even neighbour
        ("0.25 epochs", 2, 2),  # 0.25 x 10 = 2.5 -> 2 both ways (round half to even)
    ],
)
def test_each_rounding_by_hand(text, truncated, nearest):
    assert steps(text, "truncate") == truncated
    assert steps(text, "nearest") == nearest


@pytest.mark.parametrize(
    ("percent", "literal"), [("5%", 0.05), ("70%", 0.7), ("15%", 0.15), ("7.5%", 0.075), ("33.3%", 0.333)]
)
def test_a_percentage_is_the_float_of_its_decimal_fraction(percent, literal):
    """The runs fingerprinted with ``t_i_frac: 0.05`` multiplied that float: '5%' must give the same one
    (33.3 / 100 in floats is 0.33299999999999996, not 0.333)."""
    assert Length.parse("method.t_i", percent).value == literal


@pytest.mark.parametrize(
    ("text", "canonical_text"),
    [
        ("1 epoch", "1 epoch"),
        ("1.0 epochs", "1 epoch"),
        ("14 epoch", "14 epochs"),
        ("1.50epochs", "1.5 epochs"),
        ("600 steps", "600 steps"),
        ("1 step", "1 step"),
        ("100 steps", "100 steps"),
        (" 5 % ", "5%"),
        ("5.0%", "5%"),
    ],
)
def test_a_length_has_one_canonical_text(text, canonical_text):
    length = Length.parse("method.t_i", text)
    assert str(length) == canonical_text
    assert Length.parse("method.t_i", str(length)) == length  # the text reads back as the same length
    assert canonical(text) == canonical_text


def test_a_length_knows_its_unit_and_key():
    assert Length.parse("method.t_f", "14 epochs") == Length(number=Decimal(14), unit="epochs", key="method.t_f")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("600", "must be a length with its unit: '600 steps', '1 epoch' or '5%'"),
        (600, "must be a length with its unit"),
        ("0.05", "must be a length with its unit"),
        ("-2 steps", "must be a length with its unit"),
        ("2 weeks", "must be a length with its unit"),
        ("1.5 steps", "must be a whole number of steps"),
        ("100%", "must be below 100% of the run"),
    ],
)
def test_a_length_without_a_unit_or_out_of_range_is_refused_naming_the_key(value, message):
    with pytest.raises(ConfigError, match=rf"^method\.t_i = {value!r} {message}"):
        Length.parse("method.t_i", value)


def test_the_command_line_wins_over_the_recipe_s_unit():
    """The recipe gives t_i in epochs (1); the command line's percentage is the length trained with
    (before lengths were one key, ``method.t_i_frac=0.3`` lost to the recipe's ``t_i_epochs``)."""
    cfg = compose(["model=deberta-v3-base", "method=aflora", "task=rte", "method.t_i=30%"])
    settings = method_settings(cfg.method)
    assert str(settings.warmup) == "30%"
    assert str(settings.final) == "14 epochs"  # the other length keeps the recipe's
    # RTE's recipe: 20 epochs of 39 steps; the fraction of the whole run, not one epoch
    assert settings.warmup.steps(steps_per_epoch=39, total_steps=780, rounding="truncate") == 234


def test_the_recipes_give_their_lengths_in_their_units():
    aflora = method_settings(compose(["model=deberta-v3-base", "method=aflora", "task=rte"]).method)
    assert (str(aflora.warmup), str(aflora.final)) == ("1 epoch", "14 epochs")
    adalora = method_settings(compose(["model=deberta-v3-base", "method=adalora", "task=rte"]).method)
    assert [str(length) for length in adalora.lengths] == ["600 steps", "1800 steps"]
    short = method_settings(compose(["model=minilm", "method=adalora", "task=rte"]).method)
    assert [str(length) for length in short.lengths] == ["15%", "45%"]


def test_a_length_with_no_unit_is_refused_when_the_config_is_checked():
    with pytest.raises(ConfigError, match=r"^method\.t_f = '0.7' must be a length with its unit"):
        method_settings(compose(["method=aflora", "method.t_f=0.7"]).method)


# --- the former spelling ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("former", "length"),
    [
        ({"t_i_steps": None, "t_i_epochs": None, "t_i_frac": 0.05}, "5%"),
        ({"t_i_steps": None, "t_i_epochs": 1, "t_i_frac": 0.05}, "1 epoch"),  # a unit the files set won
        ({"t_i_steps": 3, "t_i_epochs": 1, "t_i_frac": 0.05}, "3 steps"),  # steps, then epochs, then fraction
        ({"t_i_steps": None, "t_i_epochs": 0.5, "t_i_frac": 0.05}, "0.5 epochs"),
        ({"t_i": 600, "t_i_frac": 0.15}, "600 steps"),  # AdaLoRA's steps under the bare name
        ({"t_i": None, "t_i_frac": 0.45}, "45%"),
    ],
)
def test_a_former_spelling_reads_as_the_length_it_trained_with(former, length):
    content = {f"method.{key}": value for key, value in former.items()} | {"method.r": 4, "train.lr": 0.01}
    assert from_former_spellings(content) == {"method.t_i": length, "method.r": 4, "train.lr": 0.01}


def test_a_run_fingerprinted_in_the_former_spelling_is_the_same_config_as_today_s():
    """The paper-budget AFLoRA grid's content as its fingerprint.json recorded it (t_i_epochs beside
    the method's fraction) against the same command line composed today: no difference, and a
    changed length is one."""
    overrides = ["model=minilm", "method=aflora", "task=mrpc", "budget=paper"]
    today = identity.content(compose(overrides))
    recorded = {k: v for k, v in today.items() if k not in ("method.t_i", "method.t_f")}
    recorded |= {"method.t_i_steps": None, "method.t_i_epochs": 1, "method.t_i_frac": 0.05}
    recorded |= {"method.t_f_steps": None, "method.t_f_epochs": 14, "method.t_f_frac": 0.7}
    assert identity.differences(from_former_spellings(recorded), today) == []
    assert identity.content(recorded) == today
    changed = identity.content(compose([*overrides, "method.t_f=13 epochs"]))
    assert identity.differences(from_former_spellings(recorded), changed) == ["method.t_f: '14 epochs' -> '13 epochs'"]
