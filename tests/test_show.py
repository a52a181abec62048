"""harness.show's one-screen summary of a result.json, read through harness.storage.results.load_result."""

from __future__ import annotations

import json

from harness.core.errors import USER_ERROR
from harness.show import freezing_line, main
from harness.storage.results import RESULT_FILE, write_result
from tests.result_fixtures import completed


def test_the_summary_shows_each_epoch_with_nulls_as_dashes_and_where_the_weights_are(tmp_path, capsys):
    write_result(tmp_path, completed(freezing={"ffn.A": 12, "ffn.B": None}))
    assert main([str(tmp_path / RESULT_FILE)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "tiny-bert / mnli / aflora / seed 1: completed"
    assert lines[2].split() == ["1", "0.6000", "0.7000", "-"]  # epoch 1's train_loss is null
    assert lines[3].split() == ["2", "0.7000", "0.5000", "0.6000"]
    assert "best accuracy 0.7000 at epoch 2" in lines[4]
    assert "start 400, end 100, time-weighted 212; head 66" in lines[5]
    assert "froze 1 of 2 trainable projection matrices, the last at step 12" in lines[7]
    assert lines[8] == "  epoch 2's weights in best/ (peft-adapter, 4,096 bytes)"


def test_a_malformed_or_missing_file_is_one_line_naming_it(tmp_path, capsys):
    path = tmp_path / RESULT_FILE
    data = completed().to_json()
    del data["metrics"]["best"]
    path.write_text(json.dumps(data))
    assert main([str(path)]) == USER_ERROR
    assert capsys.readouterr().err == f"error: {path}: field 'metrics.best' is missing (expected object)\n"
    assert main([str(tmp_path / "nowhere.json")]) == USER_ERROR
    assert "nowhere.json: field '<file>' cannot be read" in capsys.readouterr().err


def test_the_freezing_line_counts_the_adaptive_freezes_apart_from_the_matrices_never_trained():
    freezing = {"attn.A": 0, "attn.B": 0, "ffn1.A": 20, "ffn1.B": 50, "ffn2.A": None}
    assert freezing_line(freezing) == (
        "  froze 2 of 3 trainable projection matrices, the last at step 50; 2 were frozen from the start"
    )
    assert freezing_line({"ffn.A": None}) == "  froze 0 of 1 trainable projection matrices"
