"""result.json's one definition (harness/storage/result_schema.py): what a run writes is what the report
reads back, field for field; a bad file names its dotted field; a method's own fields survive."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.report import parse_result
from harness.storage.result_schema import (
    COMPLETED,
    FAILED,
    SCHEMA_VERSION,
    RunResult,
)
from harness.storage.results import RESULT_FILE, ResultFileError, is_completed, load_result, write_result
from tests.result_fixtures import completed

# The top-level keys of every result.json since variant and fingerprint, in the order they are written.
KEY_ORDER = [
    "schema_version",
    "status",
    "error",
    "task",
    "model",
    "method",
    "seed",
    "config",
    "metrics",
    "params",
    "runtime",
    "weights",
    "freezing",
    "env",
    "variant",
    "fingerprint",
]


def write_file(root: Path, result: RunResult) -> Path:
    run_dir = root / result.model / result.task / result.method / f"seed{result.seed}"
    write_result(run_dir, result)
    return run_dir / RESULT_FILE


def write_dict(root: Path, data: dict) -> Path:
    path = root / "m" / data["task"] / data["method"] / f"seed{data['seed']}" / RESULT_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


# ---------------------------------------------------------------- round trip


def test_written_result_reads_back_equal(tmp_path: Path) -> None:
    result = completed()
    path = write_file(tmp_path, result)
    assert RunResult.from_json(json.loads(path.read_text())) == result
    run = parse_result(path)  # the report's reader: the same type, checked
    assert run.result == result
    assert (run.status, run.task, run.method, run.seed) == (COMPLETED, "mnli", "aflora", 1)


def test_load_result_is_the_checked_reader_of_one_file(tmp_path: Path) -> None:
    path = write_file(tmp_path, completed())
    assert load_result(path) == completed() and is_completed(path.parent)
    data = completed().to_json()
    data["runtime"]["seconds_per_epoch"] = "slow"
    with pytest.raises(ResultFileError, match=r"field 'runtime.seconds_per_epoch' has type str"):
        load_result(write_dict(tmp_path, data))
    unfinished = write_dict(tmp_path, {**data, "status": "running"})
    with pytest.raises(ResultFileError, match=r"field 'status' is 'running' \(expected 'completed' or 'failed'\)"):
        load_result(unfinished)
    unfinished.write_text('{"status": "completed", ')  # not JSON: the run is not taken as done
    assert not is_completed(unfinished.parent)


def test_file_layout_is_the_one_of_existing_results(tmp_path: Path) -> None:
    data = json.loads(write_file(tmp_path, completed()).read_text())
    assert list(data) == KEY_ORDER
    assert data["schema_version"] == SCHEMA_VERSION == 1
    # history records stay flat, in the order the harness logged them
    assert list(data["metrics"]["per_epoch"][0]) == [
        "epoch",
        "step",
        "accuracy",
        "accuracy_mm",
        "loss",
        "eval_seconds",
        "train_loss",
    ]
    assert data["params"]["trainable_history"] == [[0, 400], [15, 100]]
    assert data["runtime"]["load_average"] == {"start": [0.5, 0.4, 0.3], "end": [1.0, 0.5, 0.3]}
    assert data["runtime"]["train_seconds"] == 20 and isinstance(data["runtime"]["train_seconds"], int)
    assert data["weights"] == {"path": "best", "epoch": 2, "format": "peft-adapter", "bytes": 4096}


def test_a_file_from_before_the_newer_fields_still_reads(tmp_path: Path) -> None:
    data = completed().to_json()
    for key in ("weights", "variant", "fingerprint"):
        del data[key]
    for key in ("train_cpu_seconds", "cpu_seconds_per_epoch", "threads", "load_average", "train_examples"):
        del data["runtime"][key]
    result = parse_result(write_dict(tmp_path, data)).result
    assert result.weights is None and result.variant is None and result.runtime.threads is None
    assert result.metrics == completed().metrics


# ---------------------------------------------------------------- the failure path


def test_failed_run_is_written_and_read_by_the_same_type(tmp_path: Path) -> None:
    from harness.execution.lifecycle import _record_failure
    from tests.conftest import compose

    cfg = compose(["task=rte", "model=tiny-bert", "method=lora", "debug=default"])
    _record_failure(cfg, tmp_path, ValueError("the data is wrong"), "train.lr=1")
    data = json.loads((tmp_path / RESULT_FILE).read_text())
    assert list(data) == KEY_ORDER  # the same keys as a completed run, the unknown ones null
    result = RunResult.from_json(data)
    assert (result.status, result.error) == (FAILED, "ValueError: the data is wrong")
    assert (result.task, result.model, result.method, result.seed) == ("rte", "tiny-bert", "lora", 1)
    assert result.metrics is result.params is result.runtime is None
    assert result.config["train"]["max_train_samples"] == 32 and result.env.torch
    assert result.variant == "train.lr=1"
    run = parse_result(tmp_path / RESULT_FILE)
    assert (run.status, run.error, run.result) == (FAILED, result.error, result)
    assert run.method == "lora [train.lr=1]"


def test_a_failure_never_replaces_a_completed_result(tmp_path: Path) -> None:
    from harness.execution.lifecycle import _record_failure
    from tests.conftest import compose

    write_result(tmp_path, completed())
    before = (tmp_path / RESULT_FILE).read_text()
    _record_failure(compose(["task=rte", "model=tiny-bert", "method=lora"]), tmp_path, ValueError("x"), "")
    assert (tmp_path / RESULT_FILE).read_text() == before


# ---------------------------------------------------------------- method fields


def test_method_fields_survive_the_round_trip(tmp_path: Path) -> None:
    result = completed()
    result.add_method_fields({"freezing": {"layer.0.intermediate.dense.A": 12, "layer.0.output.dense.B": None}})
    result.add_method_fields({"ranks": {"layer.0.query": 3}, "sora_schedule": {"threshold": 1e-3}})
    data = json.loads(write_file(tmp_path, result).read_text())
    # declared ones in their place; a method's own at the top level, before variant and fingerprint
    assert list(data) == [*KEY_ORDER[:-2], "ranks", "sora_schedule", *KEY_ORDER[-2:]]
    assert data["freezing"] == {"layer.0.intermediate.dense.A": 12, "layer.0.output.dense.B": None}
    assert data["ranks"] == {"layer.0.query": 3}
    back = parse_result(tmp_path / "tiny-bert" / "mnli" / "aflora" / "seed1" / RESULT_FILE).result
    assert back == result
    assert back.method_fields == {"ranks": {"layer.0.query": 3}, "sora_schedule": {"threshold": 1e-3}}


def test_a_method_cannot_overwrite_the_harness_fields() -> None:
    with pytest.raises(ValueError, match="'metrics'"):
        completed().add_method_fields({"metrics": {}})


# ---------------------------------------------------------------- errors name the dotted field


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d["runtime"].pop("train_seconds"), "runtime.train_seconds"),
        (lambda d: d["runtime"].pop("seconds_per_epoch"), "runtime.seconds_per_epoch"),  # required, may be null
        (lambda d: d["runtime"]["load_average"].update(start="high"), "runtime.load_average.start"),
        (lambda d: d["runtime"].update(steps=True), "runtime.steps"),  # a count is never a boolean
        (lambda d: d["metrics"]["per_epoch"][1].update(step="20"), "metrics.per_epoch[1].step"),
        (lambda d: d["metrics"]["per_epoch"][0].pop("epoch"), "metrics.per_epoch[0].epoch"),
        (lambda d: d["metrics"]["per_epoch"][0].update(loss="low"), "metrics.per_epoch[0].loss"),
        (lambda d: d["metrics"]["best"].update(accuracy=None), "metrics.best.accuracy"),
        (lambda d: d["metrics"]["best"].update(accuracy_mm=71.0), "metrics.best.accuracy_mm"),
        (lambda d: d["params"]["trainable_history"].append([30]), "params.trainable_history[2]"),
        (lambda d: d["params"]["trainable_history"][0].__setitem__(1, 4.5), "params.trainable_history[0][1]"),
        (lambda d: d["params"].update(trainable_history=[]), "params.trainable_history"),
        (lambda d: d["weights"].pop("bytes"), "weights.bytes"),
        (lambda d: d["env"].update(hostname=7), "env.hostname"),
        (lambda d: d.update(freezing={"layer.0.A": "never"}), "freezing.layer.0.A"),
        (lambda d: d.update(config=None), "config"),  # a completed run records its config
        (lambda d: d.update(schema_version=SCHEMA_VERSION + 1), "schema_version"),  # newer code wrote it
    ],
)
def test_a_bad_field_is_named_with_its_dotted_path(tmp_path: Path, mutate, field: str) -> None:
    data = completed().to_json()
    mutate(data)
    path = write_dict(tmp_path, data)
    with pytest.raises(ResultFileError) as err:
        parse_result(path)
    assert err.value.field == field
    assert str(err.value).startswith(f"{path}: field '{field}' ") and "\n" not in str(err.value)


def test_messages_say_what_was_expected(tmp_path: Path) -> None:
    data = completed().to_json()
    data["runtime"]["seconds_per_epoch"] = "slow"
    with pytest.raises(ResultFileError, match=r"'runtime.seconds_per_epoch' has type str \(expected number or null\)"):
        parse_result(write_dict(tmp_path, data))
    del data["runtime"]
    with pytest.raises(ResultFileError, match=r"'runtime' is missing or null"):
        parse_result(write_dict(tmp_path, data))


def test_a_failed_run_needs_no_metrics_but_its_identity_is_checked(tmp_path: Path) -> None:
    data = {"status": FAILED, "error": "boom", "task": "rte", "model": "m", "method": "x", "seed": 1}
    assert parse_result(write_dict(tmp_path, data)).result.metrics is None
    data["seed"] = True
    with pytest.raises(ResultFileError) as err:
        parse_result(write_dict(tmp_path, data))
    assert err.value.field == "seed"
