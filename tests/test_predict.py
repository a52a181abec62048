"""harness.predict writes the GLUE server's test files; harness.submission zips them."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from omegaconf import OmegaConf

from harness import predict, submission
from harness.core.paths import conf_file
from harness.execution import lifecycle
from harness.inputs.tasks import TaskSpec
from harness.storage import identity
from harness.storage.result_schema import FAILED
from harness.storage.results import load_result, write_result
from harness.submission import ALL_FILES, HEADER, LABEL_NAMES, TEST_FILES, prediction_strings
from tests.conftest import compose
from tests.glue_fixture import split_table, write_glue
from tests.result_fixtures import completed

N_TEST = 20


def glue_with_test_splits(root: Path, tasks: list[str]) -> Path:
    """The fixture's tasks plus test splits whose labels are -1, as GLUE's are (AX: MNLI's columns)."""
    write_glue(root, tasks)
    for i, task in enumerate(tasks):
        for test in TEST_FILES[task]:
            table = split_table("mnli" if test.data_task == "ax" else task, N_TEST + i, seed=500 + i)
            table = table.set_column(table.column_names.index("label"), "label", [[-1] * table.num_rows])
            (root / test.data_task).mkdir(exist_ok=True)
            pq.write_table(table, root / test.data_task / f"{test.split}-00000-of-00001.parquet")
    return root


def trained_run(run_dir: Path, glue: Path, task: str, method: str = "lora") -> Path:
    cfg = compose([f"task={task}", f"method={method}", "model=tiny-bert", "debug=default", f"data.dir={glue}"])
    assert lifecycle.run(cfg, run_dir) == 0
    return run_dir


def conf_task(task: str) -> TaskSpec:
    return TaskSpec.from_config(OmegaConf.load(conf_file("task", task)))


def rows(path: Path) -> tuple[str, list[list[str]]]:
    header, *lines = path.read_text().splitlines()
    return header, [line.split("\t") for line in lines]


@pytest.mark.parametrize("task", ["rte", "stsb", "mnli", "cola"])
def test_predict_writes_the_server_files(tmp_path, task, caplog):
    glue = glue_with_test_splits(tmp_path / "glue", [task])
    run_dir = trained_run(tmp_path / "run", glue, task)
    with caplog.at_level("INFO"):
        assert predict.main([str(run_dir), "--threads", "1"]) == 0
    checks = [r.getMessage() for r in caplog.records if r.getMessage().startswith("validation ")]
    assert checks and not any("DIFFERS" in line for line in checks)  # the reload gave result.json's metrics
    # In a log (no terminal, no progress bar) a line says what each long step is about to do.
    steps = [r.getMessage() for r in caplog.records if r.getMessage().startswith(("evaluating ", "predicting "))]
    assert [s.split(":")[0] for s in steps] == [
        f"evaluating {task}'s {split}" for split in conf_task(task).eval_splits
    ] + [f"predicting {test.file}" for test in TEST_FILES[task]]

    written = sorted(p.name for p in (run_dir / "predictions").iterdir())
    assert written == sorted(t.file for t in TEST_FILES[task])
    for test in TEST_FILES[task]:
        header, table = rows(run_dir / "predictions" / test.file)
        n = pq.read_metadata(glue / test.data_task / f"{test.split}-00000-of-00001.parquet").num_rows
        assert header == HEADER and [int(i) for i, _ in table] == list(range(n))
        values = [p for _, p in table]
        if task == "stsb":
            assert all(0.0 <= float(v) <= 5.0 for v in values)
        else:
            assert set(values) <= set(LABEL_NAMES.get(task, ("0", "1")))


def test_labels_and_scores_as_the_server_wants_them():
    assert prediction_strings("rte", np.array([1, 0])) == ["not_entailment", "entailment"]
    assert prediction_strings("mnli", np.array([2, 0, 1])) == ["contradiction", "entailment", "neutral"]
    assert prediction_strings("sst2", np.array([1, 0])) == ["1", "0"]
    assert prediction_strings("stsb", np.array([-0.7, 2.5, 6.1, 3.14159])) == ["0.000", "2.500", "5.000", "3.142"]


def test_predict_refuses_a_run_without_weights_or_not_completed(tmp_path, capsys):
    write_result(tmp_path, completed(weights=None))
    assert predict.main([str(tmp_path)]) == 2
    assert "no saved weights (result.json records none" in capsys.readouterr().err
    write_result(tmp_path, completed(status=FAILED, error="ValueError: boom"))
    assert predict.main([str(tmp_path)]) == 2
    assert "has not completed (status 'failed': ValueError: boom)" in capsys.readouterr().err
    assert predict.main([str(tmp_path / "nowhere")]) == 2
    assert "no result.json" in capsys.readouterr().err


def test_weights_git_does_not_keep_are_recreated_by_the_command_the_error_names(tmp_path, capsys):
    glue = glue_with_test_splits(tmp_path / "glue", ["rte"])
    overrides = ["task=rte", "method=lora", "model=tiny-bert", "seed=1", "debug=default"]
    run_dir = tmp_path / "runs" / "tiny-bert" / "rte" / "lora" / "seed1" / "debug=default"
    assert lifecycle.run(compose([*overrides, f"data.dir={glue}"]), run_dir, variant="debug=default") == 0
    shutil.rmtree(run_dir / "best")  # as a fresh clone has it: git keeps result.json alone

    capsys.readouterr()
    assert predict.main([str(run_dir)]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    command = re.search(r"Train the run again to recreate them: (python run\.py [^\n]*?) with the same GLUE_DIR", line)
    assert "save_best=false" not in line and command, line
    words = shlex.split(command.group(1))
    assert sorted(words[2:]) == sorted([*overrides, f"runs_dir={predict.RETRAINED}"])
    retrained = tmp_path / line.rsplit("make predict RUN=", 1)[1]
    assert retrained.relative_to(tmp_path / predict.RETRAINED) == run_dir.relative_to(tmp_path / "runs")

    # That command (with the data) trains the same config again, and its weights reproduce the run.
    cfg = compose([*words[2:-1], f"data.dir={glue}"])
    assert identity.content(cfg) == identity.recorded_content(run_dir)
    assert lifecycle.run(cfg, retrained, variant="debug=default") == 0
    original, again = (load_result(d / "result.json").metrics.best.numbers for d in (run_dir, retrained))
    assert "accuracy" in again and {k: v for k, v in again.items() if not k.endswith("seconds")} == {
        k: v for k, v in original.items() if not k.endswith("seconds")
    }
    assert predict.main([str(retrained), "--no-check"]) == 0


def fake_predictions(model_dir: Path, tasks: list[str]) -> list[Path]:
    run_dirs = []
    for task in tasks:
        run_dir = model_dir / task / "aflora" / "seed1"
        (run_dir / submission.PREDICTIONS_DIR).mkdir(parents=True)
        for test in TEST_FILES[task]:
            (run_dir / submission.PREDICTIONS_DIR / test.file).write_text(f"{HEADER}\n0\t{test.file}\n")
        run_dirs.append(run_dir)
    return run_dirs


def test_submission_zips_every_file_at_the_root(tmp_path):
    run_dirs = fake_predictions(tmp_path, list(TEST_FILES))
    out = tmp_path / "sub.zip"
    assert submission.main([*map(str, run_dirs), "--out", str(out)]) == 0
    with zipfile.ZipFile(out) as zf:
        assert sorted(zf.namelist()) == sorted(ALL_FILES) and len(ALL_FILES) == 11
        assert zf.read("AX.tsv").decode() == f"{HEADER}\n0\tAX.tsv\n"  # MNLI's run supplies AX


def test_submission_names_missing_tasks_and_clashes(tmp_path, capsys):
    run_dirs = [str(d) for d in fake_predictions(tmp_path, ["rte", "mnli"])]
    out = tmp_path / "sub.zip"
    assert submission.main([*run_dirs, "--out", str(out)]) == 2
    assert "CoLA.tsv" in capsys.readouterr().err and not out.exists()
    assert submission.main([*run_dirs, "--out", str(out), "--partial"]) == 0
    with zipfile.ZipFile(out) as zf:
        assert sorted(zf.namelist()) == ["AX.tsv", "MNLI-m.tsv", "MNLI-mm.tsv", "RTE.tsv"]
    assert submission.main([*run_dirs, run_dirs[0], "--out", str(out), "--partial"]) == 2  # two RTE.tsv
    assert "RTE.tsv comes from two runs" in capsys.readouterr().err


# --- the local GLUE copy (skipped without it) ------------------------------------------------------


def hub_label_names(path: Path) -> list[str]:
    """The ClassLabel names the hub stored in the parquet file's metadata: an independent reference."""
    info = json.loads(pq.read_schema(path).metadata[b"huggingface"])
    return info["info"]["features"]["label"]["names"]


LARGE_TEST_SPLITS = ["cola", "sst2", "mrpc", "qnli", "rte"]  # over 1,000 rows each: 15-35 s apiece here


@pytest.mark.parametrize(
    "task", ["stsb", "wnli", "mnli", *(pytest.param(t, marks=pytest.mark.slow) for t in LARGE_TEST_SPLITS)]
)
def test_predict_on_the_real_test_splits(tmp_path, shared_glue, task):
    """A run trained on the fixture predicts the local copy's real test split(s) (MNLI: AX only here)."""
    glue = glue_with_test_splits(tmp_path / "glue", [task])
    real = [t for t in TEST_FILES[task] if (shared_glue / t.data_task).is_dir()]
    for test in real:
        fixture = glue / test.data_task / f"{test.split}-00000-of-00001.parquet"
        fixture.unlink()
        fixture.symlink_to(shared_glue / test.data_task / f"{test.split}-00000-of-00001.parquet")
    run_dir = trained_run(tmp_path / "run", glue, task)
    assert predict.main([str(run_dir), "--no-check"]) == 0
    assert real, f"the local copy has no test split for {task}"
    for test in real:
        parquet = shared_glue / test.data_task / f"{test.split}-00000-of-00001.parquet"
        header, table = rows(run_dir / "predictions" / test.file)
        assert header == HEADER and len(table) == pq.read_metadata(parquet).num_rows
        assert [int(i) for i, _ in table] == pq.read_table(parquet, columns=["idx"]).column("idx").to_pylist()
        if task in LABEL_NAMES:  # the names the hub stored with the data, an independent reference
            assert list(LABEL_NAMES[task]) == hub_label_names(parquet)
            assert {p for _, p in table} <= set(LABEL_NAMES[task])


def test_label_names_are_the_hubs(shared_glue):
    for task, data_task in (("rte", "rte"), ("qnli", "qnli"), ("mnli", "ax")):
        assert list(LABEL_NAMES[task]) == hub_label_names(shared_glue / data_task / "test-00000-of-00001.parquet")
