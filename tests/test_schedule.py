"""Schedule lengths (harness/schedule.py): steps, else epochs, else a fraction; each method's rounding."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from harness.errors import ConfigError
from harness.schedule import schedule_steps


def length(rounding: str = "truncate", steps_per_epoch: int = 10, total_steps: int = 8, **keys) -> int:
    cfg = OmegaConf.create({"t_i_steps": None, "t_i_epochs": None, "t_i_frac": None, **keys})
    OmegaConf.set_struct(cfg, True)  # as Hydra hands it over
    return schedule_steps(cfg, "t_i", steps_per_epoch=steps_per_epoch, total_steps=total_steps, rounding=rounding)


@pytest.mark.parametrize("rounding", ["truncate", "nearest"])
def test_the_first_key_set_wins(rounding):
    assert length(rounding, t_i_steps=7, t_i_epochs=2, t_i_frac=0.5) == 7
    assert length(rounding, t_i_epochs=2, t_i_frac=0.5) == 20  # 2 epochs x 10 steps
    assert length(rounding, t_i_frac=0.5) == 4  # 0.5 x 8 steps


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
    assert length("truncate", **keys) == truncated
    assert length("nearest", **keys) == nearest


def test_a_steps_key_of_another_name_and_keys_the_yaml_does_not_define():
    cfg = OmegaConf.create({"tinit": None, "tinit_frac": 0.15})  # AdaLoRA's keys: no tinit_epochs
    OmegaConf.set_struct(cfg, True)
    resolve = dict(steps_per_epoch=10, total_steps=400, rounding="nearest", steps_key="tinit")
    assert schedule_steps(cfg, "tinit", **resolve) == 60
    cfg.tinit = 600
    assert schedule_steps(cfg, "tinit", **resolve) == 600


def test_errors_name_the_key():
    with pytest.raises(ConfigError, match=r"^method.t_i_frac = 1.0 must lie in \[0, 1\)$"):
        length(t_i_frac=1.0)
    with pytest.raises(ConfigError, match=r"method.t_i_frac = -0.1 must lie"):
        length(t_i_frac=-0.1)
    with pytest.raises(ConfigError, match=r"^method.t_i_frac must be set .* method.t_i_steps and method.t_i_epochs"):
        length()
