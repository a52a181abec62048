"""Data that is wrong fails as data: one line naming the file or split, exit code 2, a failed
result; and result.json stays strict JSON whatever the metrics are."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from harness.execution import lifecycle
from harness.execution.history import UndefinedMetric, best_and_final
from harness.inputs.tasks import TaskSpec
from harness.storage.results import write_json_atomic
from tests.conftest import compose
from tests.glue_fixture import write_glue


def _set_labels(path: Path, make) -> None:
    table = pq.read_table(path)
    labels = make(table.column("label").to_pylist())
    pq.write_table(table.set_column(table.schema.get_field_index("label"), "label", labels), path)


def _shard(folder: Path, split: str) -> Path:
    return folder / f"{split}-00000-of-00001.parquet"


def nan_validation_scores(folder: Path) -> None:
    _set_labels(_shard(folder, "validation"), lambda v: pa.array([math.nan] + v[1:], pa.float32()))


def nan_training_scores(folder: Path) -> None:
    _set_labels(_shard(folder, "train"), lambda v: pa.array(v[:-1] + [math.nan], pa.float32()))


def scores_in_percent(folder: Path) -> None:
    _set_labels(_shard(folder, "train"), lambda v: pa.array([100 * x for x in v], pa.float32()))


def string_labels(folder: Path) -> None:
    _set_labels(_shard(folder, "train"), lambda v: pa.array([str(x) for x in v]))


def float_labels(folder: Path) -> None:
    _set_labels(_shard(folder, "train"), lambda v: pa.array([float(x) for x in v]))


def empty_validation(folder: Path) -> None:
    path = _shard(folder, "validation")
    pq.write_table(pq.read_table(path).slice(0, 0), path)


def stray_backup(folder: Path) -> None:
    (folder / "train-backup-old.parquet").write_bytes(_shard(folder, "train").read_bytes())


def garbage_pages(folder: Path) -> None:
    """The footer (schema) intact, the data pages overwritten: read_schema works, reading does not."""
    path = _shard(folder, "train")
    table = pq.read_table(path)
    pq.write_table(table, path, compression="snappy")
    data = bytearray(path.read_bytes())
    footer = int.from_bytes(data[-8:-4], "little") + 8
    for i in range(8, len(data) - footer - 8):
        data[i] = 0xFF
    path.write_bytes(bytes(data))


CASES = {
    # name: (task, damage, words the one-line message must contain)
    "NaN validation scores": ("stsb", nan_validation_scores, "stsb/validation: 1 missing or NaN label(s)"),
    "NaN training scores": ("stsb", nan_training_scores, "stsb/train: 1 missing or NaN label(s)"),
    "scores in percent": ("stsb", scores_in_percent, "outside 0..5"),
    "string labels": ("rte", string_labels, "rte/train: labels of type string"),
    "float labels": ("rte", float_labels, "rte/train: labels of type double"),
    "empty split": ("rte", empty_validation, "rte/validation: the split has no rows"),
    "stray file": ("rte", stray_backup, "train-backup-old.parquet: not a shard of the rte train split"),
    "garbage pages": ("rte", garbage_pages, "the parquet files of train, validation do not read"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_wrong_data_fails_as_data(tmp_path, caplog, case):
    task, damage, words = CASES[case]
    glue = write_glue(tmp_path / "glue", [task])
    damage(glue / task)
    cfg = compose([f"task={task}", "model=tiny-bert", "debug=default", f"data.dir={glue}"])
    with caplog.at_level(logging.ERROR):
        assert lifecycle.run(cfg, tmp_path / "run") == 2
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "\n" not in errors[0] and words in errors[0], errors
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert result["status"] == "failed" and words in result["error"]


def test_a_sequence_length_without_room_for_text_is_refused(tmp_path, glue_dir, caplog):
    cfg = compose(["task=rte", "model=tiny-bert", "debug=default", f"data.dir={glue_dir}", "data.max_seq_length=2"])
    with caplog.at_level(logging.ERROR):
        assert lifecycle.run(cfg, tmp_path) == 2
    assert "data.max_seq_length = 2 leaves no room for the text" in caplog.text


def test_result_json_is_strict_json(tmp_path):
    path = tmp_path / "result.json"
    write_json_atomic(path, {"metrics": {"pearson": math.nan, "list": [math.inf, 1.5]}})

    def refuse(constant):
        raise ValueError(f"not strict JSON: {constant}")

    assert json.loads(path.read_text(), parse_constant=refuse) == {"metrics": {"pearson": None, "list": [None, 1.5]}}


def test_the_best_epoch_is_chosen_among_defined_metrics():
    task = TaskSpec.from_config(compose(["task=stsb"]).task)
    records = [{"epoch": 1, "pearson": math.nan}, {"epoch": 2, "pearson": 0.2}, {"epoch": 3, "pearson": 0.1}]
    assert best_and_final(records, task)[0]["epoch"] == 2  # max() over a NaN key would depend on order
    with pytest.raises(UndefinedMetric, match="pearson is undefined"):
        best_and_final([{"epoch": 1, "pearson": math.nan}], task)
