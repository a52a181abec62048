"""Runs survive a SIGKILL, repeat exactly, refuse bad input, stop on NaN, and lose nothing."""

from __future__ import annotations

import ast
import errno
import json
import logging
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from harness.core.paths import REPO
from harness.execution import lifecycle
from harness.storage.results import write_json_atomic
from tests.conftest import compose, run_cli, run_dir_of
from tests.glue_fixture import write_glue
from tools.resume_across import KILL_AFTER_FIRST_CHECKPOINT, RUN, comparable

# RUN (tools/resume_across.py): 6 optimizer steps an epoch, 24 in all; the killed run resumes at step 6.
METHOD_ARGS = {
    "lora": ["method=lora"],
    # the schedule in steps so that freezing happens inside 24 steps
    "aflora": ["method=aflora", "method.t_i=3steps", "method.t_f=6steps", "method.window=2"],
    "adalora": ["method=adalora", "method.deltaT=2"],
    # a threshold that zeroes some gates inside 24 steps, so the resumed run must prune alike
    "sora": ["method=sora", "method.sparse_lambda_2=0.05"],
}


def result_of(runs: Path, method: str) -> dict:
    return json.loads((run_dir_of(runs, "tiny-bert", "rte", method) / "result.json").read_text())


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, glue_dir, warm_cli):
    """One uninterrupted run per method, shared by the resume and repeat tests."""
    cache = {}

    def get(method: str) -> dict:
        if method not in cache:
            runs = tmp_path_factory.mktemp(f"straight-{method}")
            proc = warm_cli([*RUN, *METHOD_ARGS[method], f"runs_dir={runs}"], glue_dir)
            assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
            cache[method] = result_of(runs, method)
        return cache[method]

    return get


@pytest.mark.parametrize("method", ["aflora", "adalora", "sora"])
@pytest.mark.integration
def test_resume_after_sigkill_matches_uninterrupted_run(tmp_path, glue_dir, uninterrupted, warm_cli, method):
    args = [*RUN, *METHOD_ARGS[method], f"runs_dir={tmp_path}"]
    killed = warm_cli(args, glue_dir, prelude=KILL_AFTER_FIRST_CHECKPOINT)
    assert killed.returncode == -9, killed.stderr[-3000:]
    run_dir = run_dir_of(tmp_path, "tiny-bert", "rte", method)
    assert not (run_dir / "result.json").exists()
    assert list(run_dir.glob("checkpoint-6/checkpoint-complete"))

    resumed = warm_cli(args, glue_dir)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    result = result_of(tmp_path, method)
    assert result["runtime"]["resumed_from"].endswith("checkpoint-6")
    reference = uninterrupted(method)
    assert comparable(result) == comparable(reference)
    if method == "aflora":
        assert any(step for step in result["freezing"].values()), "the run must have frozen something"
    if method == "sora":
        assert sum(result["ranks"].values()) < 12 * 8, "some gate must have reached zero"


@pytest.mark.integration
def test_same_command_twice_gives_identical_metrics(tmp_path, glue_dir, uninterrupted, warm_cli):
    proc = warm_cli([*RUN, *METHOD_ARGS["aflora"], f"runs_dir={tmp_path}"], glue_dir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    again, first = result_of(tmp_path, "aflora"), uninterrupted("aflora")
    assert comparable(again) == comparable(first)
    assert again["config"]["seed"] == 1 and again["env"]["torch"] and again["env"]["transformers"]


# --- bad input: one line naming the culprit, exit 2, no completed result -----------------------


def _glue_with(tmp_path: Path, damage) -> Path:
    root = write_glue(tmp_path / "glue", ["rte"])
    damage(root / "rte")
    return root


def _truncate(folder: Path) -> None:
    path = folder / "train-00000-of-00001.parquet"
    path.write_bytes(path.read_bytes()[:100])


def _wrong_columns(folder: Path) -> None:
    pq.write_table(pa.table({"text": ["a"], "label": [0]}), folder / "validation-00000-of-00001.parquet")


def _bad_labels(folder: Path) -> None:
    path = folder / "train-00000-of-00001.parquet"
    table = pq.read_table(path)
    pq.write_table(table.set_column(table.schema.get_field_index("label"), "label", pa.array([5] * len(table))), path)


def _drop_validation(folder: Path) -> None:
    (folder / "validation-00000-of-00001.parquet").unlink()


def _not_a_classifier(tmp_path: Path) -> str:
    folder = tmp_path / "ckpt"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "no-such-architecture"}))
    return str(folder)


# Refused by the config check (harness/config/validation.py) before the run touches the disk.
BAD_CONFIGS = {
    # name: (overrides, words the message must contain)
    "lora rank 0": (["method=lora", "method.r=0"], "method.r"),
    "negative lr": (["train.lr=-0.1"], "train.lr"),
    "zero epochs": (["train.epochs=0"], "train.epochs"),
    "fp16": (["train.precision=fp16"], "train.precision"),
    "aflora rank 0": (["method=aflora", "method.r=0"], "method.r"),
}

# Found once the run has started, from the data, the model or the step counts the data give.
BAD_INPUTS = {
    # name: (overrides, damage to a fixture GLUE copy or None, words the message must contain)
    "batch split": (["train.batch_size=10", "train.per_device_batch_size=4"], None, "train.batch_size"),
    "sequence too long": (["data.max_seq_length=4096"], None, "data.max_seq_length"),
    "aflora schedule too long": (["method=aflora", "method.t_i=10steps", "method.t_f=40steps"], None, "t_f"),
    "adalora schedule too long": (["method=adalora", "method.tinit=10steps", "method.tfinal=40steps"], None, "tfinal"),
    "task missing": (["task=cola"], lambda f: None, "cola/train-*.parquet"),
    "split missing": ([], _drop_validation, "validation-*.parquet"),
    "truncated parquet": ([], _truncate, "train-00000-of-00001.parquet: not a readable parquet"),
    "wrong columns": ([], _wrong_columns, "missing column(s) ['sentence1', 'sentence2']"),
    "labels out of range": ([], _bad_labels, "label value(s) [5] outside 0..1"),
    "model path missing": (["model.source=path", "model.path=/no/such/model"], None, "/no/such/model"),
}


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_bad_config_is_refused_and_leaves_nothing(tmp_path, glue_dir, caplog, case):
    overrides, words = BAD_CONFIGS[case]
    runs = tmp_path / "runs"
    cfg = compose(
        ["task=rte", "model=tiny-bert", "debug=default", f"data.dir={glue_dir}", f"runs_dir={runs}", *overrides]
    )
    run_dir = runs / "rte" / "run"
    run_dir.mkdir(parents=True)  # as Hydra makes it before run.py runs
    with caplog.at_level(logging.ERROR):
        code = lifecycle.run(cfg, run_dir)
    assert code == 2
    assert words in caplog.text, caplog.text
    assert runs.is_dir() and not any(runs.iterdir())  # the folders Hydra made are gone, runs_dir stays


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_is_refused_clearly(tmp_path, glue_dir, caplog, case):
    overrides, damage, words = BAD_INPUTS[case]
    data = _glue_with(tmp_path, damage) if damage else glue_dir
    cfg = compose(["task=rte", "model=tiny-bert", "debug=default", f"data.dir={data}", *overrides])
    run_dir = tmp_path / "run"
    with caplog.at_level(logging.ERROR):
        code = lifecycle.run(cfg, run_dir)
    assert code == 2
    assert words in caplog.text, caplog.text
    result = json.loads((run_dir / "result.json").read_text())
    assert result["status"] == "failed" and words in result["error"]


def test_a_directory_that_is_not_a_classifier_checkpoint(tmp_path, glue_dir, caplog):
    path = _not_a_classifier(tmp_path)
    cfg = compose(
        [
            "model=tiny-bert",
            "debug=default",
            f"data.dir={glue_dir}",
            "model.source=path",
            f"model.path={path}",
            "model.tokenizer.source=package",
        ]
    )
    with caplog.at_level(logging.ERROR):
        assert lifecycle.run(cfg, tmp_path / "run") == 2
    assert path in caplog.text


@pytest.mark.integration
def test_unknown_override_key_is_named(tmp_path):
    proc = run_cli(["train.lrr=0.1", f"runs_dir={tmp_path}"], None)
    assert proc.returncode != 0 and "lrr" in proc.stdout + proc.stderr
    assert not list(tmp_path.rglob("result.json"))


# --- numerical faults and writes ---------------------------------------------------------------


def test_nan_loss_stops_the_run_as_failed(tmp_path, glue_dir, monkeypatch, caplog):
    import torch

    cross_entropy = torch.nn.CrossEntropyLoss.forward
    monkeypatch.setattr(torch.nn.CrossEntropyLoss, "forward", lambda self, x, y: cross_entropy(self, x, y) * torch.nan)
    cfg = compose(["model=tiny-bert", "debug=default", f"data.dir={glue_dir}"])
    with caplog.at_level(logging.ERROR):
        assert lifecycle.run(cfg, tmp_path) == 2
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["status"] == "failed" and "non-finite" in result["error"] and "step 1" in result["error"]


def test_a_crash_while_writing_keeps_the_previous_result(tmp_path, monkeypatch):
    path = tmp_path / "result.json"
    write_json_atomic(path, {"status": "completed", "value": 1})

    def dump_half(obj, f, **kwargs):
        f.write('{"status": "compl')
        raise KeyboardInterrupt

    monkeypatch.setattr(json, "dump", dump_half)
    with pytest.raises(KeyboardInterrupt):
        write_json_atomic(path, {"status": "completed", "value": 2})
    monkeypatch.undo()
    assert json.loads(path.read_text()) == {"status": "completed", "value": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]


def test_disk_full_is_reported_as_such(tmp_path, monkeypatch, caplog):
    import harness.execution.experiment

    def no_space(cfg, run_dir, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(harness.execution.experiment, "run_experiment", no_space)
    with caplog.at_level(logging.ERROR):
        assert lifecycle.run(compose(["model=tiny-bert"]), tmp_path) == 2
    assert "disk full" in caplog.text


# --- safety ------------------------------------------------------------------------------------


def test_every_torch_load_is_weights_only():
    for package in ("aflora", "baselines", "harness"):
        for path in (REPO / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "load":
                    if getattr(node.func.value, "id", None) == "torch":
                        kwargs = {k.arg: k.value for k in node.keywords}
                        assert "weights_only" in kwargs and kwargs["weights_only"].value is True, (
                            f"{path}:{node.lineno}"
                        )


def test_remote_code_is_off_for_every_model():
    for path in (REPO / "conf" / "model").glob("*.yaml"):
        assert compose([f"model={path.stem}"]).model.trust_remote_code is False, path.name
