"""The method contract (harness/execution/methods.py): what a builder returns is what the assembled run uses.

A probe method (LoRA underneath) returns its own optimizer factory, trainable counter and callback;
a real run must train with that optimizer (built after the callback's state is back on resume),
report that count, log the callback's scalars and merge its result fields.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import torch

from baselines.lora import LoraSettings
from harness.core.paths import REPO
from harness.execution.assembly import assemble
from harness.execution.epoch_timer import EpochTimer
from harness.execution.gradients import ClipAndCheckGradients
from harness.execution.history import LogAtEpochEnd
from harness.execution.lifecycle import run as run_lifecycle
from harness.execution.methods import MethodBuild, MethodCallback, get_builder, register_method
from harness.execution.params import TrainableParamTracker
from harness.inputs.tasks import TaskSpec
from harness.storage.best_weights import SaveBestWeights
from harness.storage.checkpoints import MarkCompleteCheckpoints
from tests.conftest import compose

PROBE = "contract-probe"
PROBE_COUNT = 4242  # no real count of the tiny model: only the probe's counter gives it
EVENTS: list[str] = []  # what the harness called, in order, across the probe's builds
SEEN: dict[str, Any] = {}


class Probe(MethodCallback):
    def load_state(self, checkpoint: Path) -> None:
        EVENTS.append("load_state")

    def on_train_begin(self, args, state, control, optimizer=None, **kwargs):
        SEEN["trainer_optimizer"] = optimizer.optimizer  # the Trainer's accelerate wrapper holds it

    def on_train_end(self, args, state, control, **kwargs):
        SEEN["log_history"] = list(state.log_history)

    def result_fields(self) -> dict[str, Any]:
        return {"contract_probe": {"answer": 42}}

    def log_scalars(self) -> dict[str, float]:
        return {"contract_probe_scalar": 7.0}


def probe_optimizer(model: torch.nn.Module, train_cfg: Any, head_modules: Any) -> torch.optim.Optimizer:
    EVENTS.append("optimizer")
    SEEN["factory_optimizer"] = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=train_cfg.lr)
    return SEEN["factory_optimizer"]


@register_method(PROBE, settings=LoraSettings)
def build_probe(model, cfg, ctx) -> MethodBuild:
    lora = get_builder("lora", "baselines.lora")(model, cfg, ctx)
    return MethodBuild(
        model=lora.model, callbacks=[Probe()], optimizer=probe_optimizer, count_trainable=lambda _m: PROBE_COUNT
    )


def probe_cfg(glue_dir: Path, *overrides: str):
    return compose(
        [
            "task=rte",
            "model=tiny-bert",
            "method=lora",
            "debug=default",
            f"data.dir={glue_dir}",
            f"method.name={PROBE}",
            f"method.module={__name__}",
            *overrides,
        ]
    )


@pytest.fixture(autouse=True)
def fresh_record():
    EVENTS.clear()
    SEEN.clear()


def test_a_run_uses_the_method_build(tmp_path, glue_dir):
    assert run_lifecycle(probe_cfg(glue_dir, "train.keep_checkpoints=true"), tmp_path) == 0
    result = json.loads((tmp_path / "result.json").read_text())

    assert EVENTS == ["optimizer"]  # a fresh run: nothing to load
    assert isinstance(SEEN["factory_optimizer"], torch.optim.SGD)
    assert SEEN["trainer_optimizer"] is SEEN["factory_optimizer"]  # the Trainer stepped the method's optimizer
    assert result["params"]["trainable_start"] == result["params"]["trainable_end"] == PROBE_COUNT
    assert result["contract_probe"] == {"answer": 42}
    train_lines = [line for line in SEEN["log_history"] if "loss" in line]
    assert train_lines and all(line["contract_probe_scalar"] == 7.0 for line in train_lines)

    # Resumed from its last checkpoint: the callback's state is back before the optimizer is built.
    (tmp_path / "result.json").unlink()
    EVENTS.clear()
    assert run_lifecycle(probe_cfg(glue_dir), tmp_path) == 0
    assert json.loads((tmp_path / "result.json").read_text())["runtime"]["resumed_from"]
    assert EVENTS == ["load_state", "optimizer"]


def test_the_callbacks_in_their_order(tmp_path, glue_dir):
    cfg = probe_cfg(glue_dir, "train.save_best=true")
    task = TaskSpec.from_config(cfg.task)
    run = assemble(cfg, task, steps_per_epoch=4, total_steps=8, run_dir=tmp_path)
    kinds = [
        Probe,
        ClipAndCheckGradients,
        TrainableParamTracker,
        EpochTimer,
        LogAtEpochEnd,
        SaveBestWeights,
        MarkCompleteCheckpoints,
    ]
    assert [type(cb) for cb in run.callbacks] == kinds
    assert run.counter(run.model) == PROBE_COUNT and run.build_optimizer() is SEEN["factory_optimizer"]

    stepped = assemble(cfg, task, steps_per_epoch=4, total_steps=8)  # no run_dir: a benchmark row
    assert [type(cb) for cb in stepped.callbacks] == [Probe, ClipAndCheckGradients, TrainableParamTracker]


def test_no_hasattr_probe_of_method_objects_is_left():
    """A complement to the tests above: the harness asks the contract, never an object's attributes."""
    harness = REPO / "harness"
    for name in [
        "execution/assembly.py",
        "execution/experiment.py",
        "execution/methods.py",
        "storage/rundir.py",
        "execution/tracking.py",
        "bench/rows.py",
    ]:
        text = (harness / name).read_text()
        assert not re.search(r"hasattr\(\s*(cb|callback|built|method)\b", text), name
