"""make glue: the sweep walks the tasks whose data is present and says which it skips."""

from __future__ import annotations

from harness.report.paper import PAPER_TASKS
from harness.sweep import available_tasks, missing_splits
from tests.glue_fixture import write_glue


def test_tasks_without_data_are_skipped_with_a_message(tmp_path, capsys):
    write_glue(tmp_path, ["rte", "mrpc", "mnli", "qnli"])
    (tmp_path / "qnli" / "train-00000-of-00001.parquet").unlink()  # like ../shared/glue's QNLI
    (tmp_path / "mnli" / "validation_mismatched-00000-of-00001.parquet").unlink()
    assert available_tasks(PAPER_TASKS, str(tmp_path)) == ["mrpc", "rte"]
    err = capsys.readouterr().err
    assert "skipping qnli" in err and "lacks the split(s) train" in err
    assert "skipping mnli" in err and "validation_mismatched" in err
    assert all(f"skipping {t}" in err for t in ("cola", "sst2", "stsb", "qqp"))


def test_missing_splits_lists_each_absent_split(tmp_path):
    write_glue(tmp_path, ["mnli"])
    assert missing_splits("mnli", tmp_path) == []
    assert missing_splits("cola", tmp_path) == ["train", "validation"]


def test_without_a_local_copy_every_task_goes_to_the_hub(capsys):
    assert available_tasks(PAPER_TASKS, None) == PAPER_TASKS
    assert capsys.readouterr().err == ""
