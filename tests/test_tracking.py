"""train.report_to hands the Trainer's logs to TensorBoard (offline here), with the harness's own scalars."""

from __future__ import annotations

import json
import os
from statistics import fmean

import pytest

from harness.core.errors import ConfigError
from harness.execution import lifecycle
from harness.execution.tracking import report_targets
from tests.conftest import compose


def scalars(run_dir) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    [events] = list(run_dir.glob("runs/*/events.out.tfevents.*"))
    acc = EventAccumulator(str(events))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_tensorboard_gets_the_loss_and_aflora_freezing(tmp_path, glue_dir):
    pytest.importorskip("tensorboard", reason="make setup installs it (the dev extra)")
    cfg = compose(
        [
            "task=rte",
            "method=aflora",
            "model=tiny-bert",
            "debug=default",
            f"data.dir={glue_dir}",
            "train.report_to=tensorboard",
            "train.logging_steps=1",
        ]
    )
    assert lifecycle.run(cfg, tmp_path) == 0
    result = json.loads((tmp_path / "result.json").read_text())
    logged = scalars(tmp_path)

    # The loss of every step, and per epoch the mean that result.json reports (float32 in the event file).
    steps_per_epoch = result["metrics"]["per_epoch"][0]["step"]
    losses = logged["train/loss"]
    assert [s for s, _ in losses] == list(range(1, result["runtime"]["steps"] + 1))
    for record in result["metrics"]["per_epoch"]:
        epoch = [
            v for s, v in losses if (record["epoch"] - 1) * steps_per_epoch < s <= record["epoch"] * steps_per_epoch
        ]
        assert fmean(epoch) == pytest.approx(record["train_loss"], rel=1e-6)
    assert [v for _, v in logged["eval/validation_accuracy"]] == pytest.approx(
        [r["accuracy"] for r in result["metrics"]["per_epoch"]]
    )

    # AFLoRA's freezing over time: the frozen count only grows, ending at what result.json records.
    frozen = [v for _, v in logged["train/aflora_frozen_projections"]]
    assert frozen == sorted(frozen) and frozen[-1] == sum(s is not None for s in result["freezing"].values())
    assert frozen[0] < frozen[-1], "the debug run must freeze something during training"
    trainable = [v for _, v in logged["train/trainable_params"]]
    assert trainable[0] == result["params"]["trainable_start"] and trainable[-1] == result["params"]["trainable_end"]


def test_report_to_none_writes_no_event_files(tmp_path, glue_dir):
    cfg = compose(["task=rte", "method=lora", "model=tiny-bert", "debug=default", f"data.dir={glue_dir}"])
    assert cfg.train.report_to == "none"
    assert lifecycle.run(cfg, tmp_path) == 0
    assert not list(tmp_path.glob("runs/*/events.out.tfevents.*"))


@pytest.mark.parametrize(
    ("value", "expected"), [("none", ["none"]), (None, ["none"]), ("tensorboard", ["tensorboard"])]
)
def test_report_targets_accepts_a_name_or_none(tmp_path, value, expected):
    pytest.importorskip("tensorboard")
    assert report_targets(value, tmp_path) == expected


def test_an_unknown_tracker_is_named(tmp_path):
    with pytest.raises(ConfigError, match=r"train.report_to: unknown \['tensorbored'\]"):
        report_targets(["tensorboard", "tensorbored"], tmp_path)


def test_wandb_and_mlflow_write_under_the_run_dir_unless_the_user_says_otherwise(tmp_path, monkeypatch):
    monkeypatch.setattr("harness.execution.tracking.importlib.util.find_spec", lambda name: object())  # as if installed
    monkeypatch.delenv("WANDB_DIR", raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracking.example")
    monkeypatch.setattr("harness.execution.tracking._set_by_harness", set())
    report_targets(["wandb", "mlflow"], tmp_path / "run1")
    assert os.environ["WANDB_DIR"] == str((tmp_path / "run1").resolve())
    assert os.environ["MLFLOW_TRACKING_URI"] == "http://tracking.example"  # the user's own, kept
    report_targets(["wandb"], tmp_path / "run2")  # the next run of a sweep in the same process
    assert os.environ["WANDB_DIR"] == str((tmp_path / "run2").resolve())
