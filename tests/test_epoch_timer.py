"""The epoch timer's two clocks, and the per-process thread setting."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest
import torch
from hydra.errors import ConfigCompositionException

from harness.config.validation import validate_config
from harness.core.errors import ConfigError
from harness.execution.epoch_timer import EpochTimer
from harness.execution.training import set_threads
from tests.conftest import compose


def _epoch(timer: EpochTimer, epoch: int, work) -> None:
    timer.on_epoch_begin(None, SimpleNamespace(epoch=float(epoch)), None)
    work()
    timer.on_epoch_end(None, SimpleNamespace(epoch=float(epoch + 1)), None)


def _spin(seconds: float) -> None:
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def test_cpu_time_counts_work_and_not_waiting():
    timer = EpochTimer()
    _epoch(timer, 0, lambda: time.sleep(0.3))  # a neighbour's turn: wall time passes, this process's CPU does not
    _epoch(timer, 1, lambda: _spin(0.3))
    assert timer.epochs == 2.0
    assert timer.seconds >= 0.6
    assert 0.3 <= timer.cpu_seconds < 0.45  # the spin, not the sleep
    assert timer.seconds - timer.cpu_seconds >= 0.25


def test_a_checkpoint_from_before_cpu_time_leaves_it_unknown():
    timer = EpochTimer()
    timer.load_state_dict({"seconds": 12.0, "epochs": 1.0})  # what older checkpoints hold
    _epoch(timer, 1, lambda: _spin(0.05))
    assert timer.cpu_seconds is None and timer.seconds > 12.0 and timer.epochs == 2.0
    restored = EpochTimer()
    restored.load_state_dict(timer.state_dict())
    assert restored.state_dict() == timer.state_dict()


def test_set_threads_sets_torch_and_null_keeps_the_default():
    before = torch.get_num_threads()
    try:
        set_threads(None)
        assert torch.get_num_threads() == before
        set_threads(1)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("bad", ["0", "-2", "true", "two", "1.5"])
def test_threads_that_are_not_a_positive_integer_are_refused_before_the_run(bad):
    # set_threads trusts its argument: the config check (harness/config/schema.py) refuses first,
    # Hydra for a value of the wrong type, the schema's range for the others.
    with pytest.raises((ConfigError, ConfigCompositionException), match=r"train\.threads"):
        validate_config(compose([f"train.threads={bad}"]))
