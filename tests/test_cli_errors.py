"""The promised one-line errors: every bad input ends in one line naming the culprit and exit code 2,
before anything is written where the input says; interruptions and write errors say what to do."""

from __future__ import annotations

import errno
import logging
import os
import socket
import subprocess
import sys

import pytest

from harness.core.cli_errors import exit_code_and_line, one_line
from harness.core.errors import USER_ERROR, ConfigError, DataError
from harness.core.paths import REPO
from harness.execution import lifecycle
from tests.conftest import compose, run_cli

BASE = ["task=rte", "model=tiny-bert", "debug=default"]


@pytest.mark.parametrize(
    "override,words",
    [
        ("train.lrr=1e-3", "unknown key 'train.lrr'"),
        ("+train.lrr=1e-3", "'+train.lrr=1e-3': the harness adds and deletes no keys"),
        ("task=rtee", "Could not find 'task/rtee' Available options in 'task': cola, mnli"),
    ],
)
@pytest.mark.integration
def test_the_command_line_is_refused_in_one_line_before_any_run(tmp_path, override, words):
    proc = run_cli([*BASE, f"runs_dir={tmp_path / 'runs'}", override], None)
    lines = [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
    assert proc.returncode == 2 and lines == [lines[0]] and words in lines[0], lines
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    "override,words",
    [
        ("train.epochs=three", "train.epochs=three: Value 'three' of type 'str' could not be converted to Integer"),
        ("train.lr=fast", "train.lr=fast: Value 'fast' of type 'str' could not be converted to Float"),
        ("train.epochs=1e11", "train.epochs=1e11: Value '100000000000.0' of type 'float' could not be converted"),
        ("train.group_by_length=maybe", "train.group_by_length=maybe: Value 'maybe' is not a valid bool"),
        ("data.max_seq_length=[1]", "data.max_seq_length=[1]"),
        ("train.lrr=1e-3", "unknown key 'train.lrr'"),
        ("model.bogus=1", "unknown key 'model.bogus'"),
        ("method.bogus=1", "unknown key 'method.bogus'"),
    ],
)
def test_a_wrong_type_or_an_unknown_key_is_refused_while_composing(override, words):
    """The typed schema (harness/config/schema.py) refuses these while Hydra composes: before run.py
    has a config, so before anything can be written."""
    with pytest.raises(Exception) as refused:
        compose([*BASE, override])
    code, line = exit_code_and_line(refused.value, [])
    assert code == USER_ERROR and words in line and "\n" not in line, line


@pytest.mark.parametrize(
    "override,words",
    [
        (
            "method.t_i_frac=0.3",
            "unknown key 'method.t_i_frac': a schedule length is one key with its unit now, e.g. method.t_i=30%",
        ),
        (
            "method.t_f_epochs=14",
            "unknown key 'method.t_f_epochs': a schedule length is one key with its unit now, e.g. method.t_f=30%",
        ),
    ],
)
def test_a_schedule_length_in_its_former_spelling_is_refused_with_the_one_key_it_became(override, words):
    with pytest.raises(Exception) as refused:
        compose([*BASE, "method=aflora", override])
    code, line = exit_code_and_line(refused.value, [])
    assert code == USER_ERROR and words in line and "\n" not in line, line


@pytest.mark.parametrize(
    "override,words",
    [
        ("seed=-1", "seed = -1 must be an integer from 0 to 4,294,967,295"),
        ("train.lr_scheduler=wobbly", "train.lr_scheduler = 'wobbly' is not one of ['linear'"),
        ("train.logging_steps=0", "train.logging_steps = 0 must be an integer from 1 to 10,000,000"),
        ("task.num_labels=1", "task.num_labels = 1 makes rte a regression task, but task.metrics ['accuracy']"),
        # 0 was taken as null (per-device batch = batch / processes) and trained without a word
        ("train.per_device_batch_size=0", "train.per_device_batch_size = 0 must be an integer from 1 to 65,536 or"),
        ("train.per_device_batch_size=-8", "train.per_device_batch_size = -8 must be an integer from 1"),
        ("train.epochs=100000000000", "train.epochs = 100000000000 must be an integer from 1 to 1,000"),
        ("train.max_train_samples=0", "train.max_train_samples = 0 must be an integer from 1"),
        ("data.max_seq_length=0", "data.max_seq_length = 0 must be an integer from 1 to 65,536"),
        ("train.warmup_ratio=1.5", "train.warmup_ratio = 1.5 must lie in [0, 1)"),
        ("method.r=0", "method.r = 0 must be an integer from 1 to 65,536"),
    ],
)
def test_bad_values_fail_in_one_line_before_loading_or_writing_anything(tmp_path, caplog, monkeypatch, override, words):
    import harness.execution.experiment

    monkeypatch.setattr(harness.execution.experiment, "load_tokenizer", lambda *a: pytest.fail("validated too late"))
    with caplog.at_level(logging.ERROR):
        assert lifecycle.run(compose([*BASE, "method=lora", override]), tmp_path) == 2
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and words in errors[0], errors
    assert list(tmp_path.iterdir()) == []  # no failed result.json: a refused config is not a run


def test_hydra_messages_become_one_line():
    text = (
        "In 'config': Could not find 'task/x'\n\nAvailable options in 'task':\n\tcola\n\trte\nConfig search path:\n\tp"
    )
    assert one_line(text) == "In 'config': Could not find 'task/x' Available options in 'task': cola, rte"


def test_a_sweep_refuses_an_unknown_task(capsys):
    from harness.sweep import main as sweep_main

    assert sweep_main(["--method", "lora", "--tasks", "rte,rtee"]) == USER_ERROR
    assert capsys.readouterr().err.startswith("error: --tasks: unknown task(s) rtee; known: ")


def test_a_sweep_with_no_task_data_says_what_to_set(tmp_path, monkeypatch, capsys):
    from harness.sweep import main as sweep_main

    monkeypatch.setenv("GLUE_DIR", str(tmp_path))  # an empty GLUE copy
    assert sweep_main(["--method", "lora", "--tasks", "rte"]) == USER_ERROR
    assert capsys.readouterr().err.splitlines()[-1] == (
        "error: no task has data: set GLUE_DIR to a GLUE copy or unset it to use the hub"
    )


def test_offline_without_data_or_model_names_what_to_set():
    from harness.inputs.data import load_raw_splits
    from harness.inputs.models import load_tokenizer
    from harness.inputs.tasks import TaskSpec

    cfg = compose(["model=deberta-v3-base"])
    with pytest.raises(DataError, match="set GLUE_DIR"):
        load_raw_splits(TaskSpec.from_config(cfg.task), None, "nyu-mll/no-such-glue")
    with pytest.raises(ConfigError, match=r"not in the hub cache and HF_HUB_OFFLINE is set: .*hf download nobody/no"):
        load_tokenizer(compose(["model=deberta-v3-base", "model.path=nobody/no-such-model"]).model)


@pytest.mark.integration
def test_a_hub_model_without_the_hub_fails_at_once_in_one_line_saying_what_to_do(tmp_path, glue_dir):
    with socket.socket() as closed:  # a port nothing listens on once the block ends: connections are refused
        closed.bind(("127.0.0.1", 0))
        endpoint = f"http://127.0.0.1:{closed.getsockname()[1]}"
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    env |= {"HF_ENDPOINT": endpoint, "HF_HOME": str(tmp_path / "hf"), "GLUE_DIR": str(glue_dir)}
    done = subprocess.run(
        [sys.executable, "run.py", "task=rte", "model=deberta-v3-base", "method=lora", f"runs_dir={tmp_path}"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = done.stdout + done.stderr
    assert done.returncode == USER_ERROR, output[-3000:]
    assert "Retrying" not in output and "thrown while requesting" not in output  # no minute of retries
    (line,) = output.strip().splitlines()
    assert line.endswith(
        f"model 'microsoft/deberta-v3-base' is not in the hub cache and {endpoint} cannot be reached: fetch it once "
        "online (hf download microsoft/deberta-v3-base), then HF_HUB_OFFLINE=1 finds it; or set model.path to a "
        "local copy; or use model=deberta-v3-base-random for DeBERTaV3-base's shapes with random weights"
    )


def _fail_with(monkeypatch, error: BaseException) -> None:
    import harness.execution.experiment

    def fail(cfg, run_dir, claim):
        claim()
        (run_dir / "checkpoint-3").mkdir()
        (run_dir / "checkpoint-3" / "checkpoint-complete").write_text("3\n")
        raise error

    monkeypatch.setattr(harness.execution.experiment, "run_experiment", fail)


def test_an_interrupt_keeps_the_checkpoint_and_says_how_to_resume(tmp_path, monkeypatch, caplog):
    _fail_with(monkeypatch, KeyboardInterrupt())
    with caplog.at_level(logging.ERROR):
        assert lifecycle.run(compose(BASE), tmp_path) == 130
    assert "interrupted; the checkpoint checkpoint-3 is kept: rerun the same command to resume" in caplog.text
    assert (tmp_path / "checkpoint-3").is_dir() and not (tmp_path / "result.json").exists()


def _caused_by(error: Exception, cause: Exception) -> Exception:
    error.__cause__ = cause
    return error


@pytest.mark.parametrize(
    "error,words",
    [
        (OSError(errno.EFBIG, "File too large"), "cannot write to"),
        (_caused_by(RuntimeError("tokenising failed"), OSError(errno.ENOSPC, "No space left on device")), "disk full"),
        (RuntimeError("[Errno 28] No space left on device"), "disk full"),
        (Exception("File too large (os error 27)"), "cannot write to"),  # as the tokenizers library words it
    ],
)
def test_write_errors_however_wrapped_are_one_line(tmp_path, monkeypatch, caplog, error, words):
    _fail_with(monkeypatch, error)
    with caplog.at_level(logging.ERROR):
        assert lifecycle.run(compose(BASE), tmp_path) == 2
    assert words in caplog.text and "Traceback" not in caplog.text
