"""run.py end to end on tiny models and fixture data; and on real RTE with MiniLM when present."""

from __future__ import annotations

import json

import pytest

from tests.conftest import run_cli, run_dir_of
from tests.test_result_schema import KEY_ORDER

TINY = ["debug=default", "train.epochs=2", "train.logging_steps=2"]


def read(run_dir):
    return json.loads((run_dir / "result.json").read_text())


@pytest.mark.parametrize("method", ["lora", pytest.param("full", marks=pytest.mark.slow)])
@pytest.mark.integration
def test_smoke_run_writes_a_complete_result(tmp_path, glue_dir, warm_cli, method):
    proc = warm_cli(["task=rte", "model=tiny-bert", f"method={method}", f"runs_dir={tmp_path}", *TINY], glue_dir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_dir = run_dir_of(tmp_path, "tiny-bert", "rte", method)
    result = read(run_dir)
    assert list(result) == KEY_ORDER  # every key, in the order the schema writes them
    assert result["status"] == "completed" and result["error"] is None
    metrics = result["metrics"]
    assert [r["epoch"] for r in metrics["per_epoch"]] == [1, 2]
    assert 0 <= metrics["best"]["accuracy"] <= 1
    assert metrics["best"]["accuracy"] == max(r["accuracy"] for r in metrics["per_epoch"])
    # 32 examples at batch 8 for 2 epochs = 8 optimizer steps, as the harness predicted
    assert result["runtime"]["steps"] == 8 and metrics["final"]["step"] == 8
    params = result["params"]
    assert params["head"] == 32 * 2 + 2  # tiny-bert hidden 32 -> 2 labels
    if method == "full":
        assert params["trainable_start"] == params["total"] - params["head"]
    else:  # LoRA r=8 on 2 layers: 4 square 32x32 + (32->64) + (64->32) per layer
        assert params["trainable_start"] == 2 * (4 * 8 * 64 + 2 * 8 * 96)
    assert not list(run_dir.glob("checkpoint-*")), "checkpoints are removed once the run completed"


def test_completed_run_is_not_retrained_unless_forced(tmp_path, glue_dir, caplog):
    import logging

    from harness.execution.lifecycle import run as run_lifecycle
    from tests.conftest import compose

    cfg = compose(["task=rte", "model=tiny-bert", "method=lora", f"data.dir={glue_dir}", *TINY])
    assert run_lifecycle(cfg, tmp_path) == 0
    before = (tmp_path / "result.json").read_text()
    with caplog.at_level(logging.INFO):
        assert run_lifecycle(cfg, tmp_path) == 0
    assert "already holds a completed result" in caplog.text
    assert (tmp_path / "result.json").read_text() == before

    forced = compose(["task=rte", "model=tiny-bert", "method=lora", f"data.dir={glue_dir}", "force=true", *TINY])
    assert run_lifecycle(forced, tmp_path) == 0
    kept = list(tmp_path.glob("previous-*/result.previous.json"))
    assert len(kept) == 1 and kept[0].read_text() == before
    assert json.loads((tmp_path / "result.json").read_text())["status"] == "completed"


@pytest.mark.integration
def test_missing_task_data_fails_clearly_without_a_completed_result(tmp_path, glue_dir, warm_cli):
    from tests.glue_fixture import write_glue

    only_rte = write_glue(tmp_path / "glue", ["rte"])
    proc = warm_cli(["task=cola", "model=tiny-bert", "method=lora", f"runs_dir={tmp_path}", *TINY], only_rte)
    assert proc.returncode == 2
    assert "cola/train-*.parquet: no such file" in proc.stdout + proc.stderr
    result = read(run_dir_of(tmp_path, "tiny-bert", "cola", "lora"))
    assert result["status"] == "failed" and "cola/train" in result["error"]


@pytest.mark.parametrize("group,bad", [("task", "rtee"), ("model", "gpt5"), ("method", "lorax")])
@pytest.mark.integration
def test_unknown_names_list_the_valid_ones(tmp_path, group, bad):
    proc = run_cli([f"{group}={bad}", f"runs_dir={tmp_path}"], None)
    assert proc.returncode != 0
    output = proc.stdout + proc.stderr
    assert f"Could not find '{group}/{bad}'" in output and "Available options" in output
    assert not list(tmp_path.rglob("result.json"))


@pytest.mark.integration
def test_minilm_on_real_rte_for_a_few_steps(tmp_path, shared_glue, warm_cli):
    proc = warm_cli(
        [
            "task=rte",
            "model=minilm",
            "method=lora",
            f"runs_dir={tmp_path}",
            "train.max_steps=3",
            "train.batch_size=8",
            "train.max_train_samples=64",
            "train.max_eval_samples=32",
            "data.max_seq_length=128",
        ],
        shared_glue,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = read(run_dir_of(tmp_path, "minilm", "rte", "lora"))
    assert result["status"] == "completed" and result["runtime"]["steps"] == 3
    assert result["params"]["total"] > 22_000_000  # the real 22.7M-parameter MiniLM, not a tiny model
