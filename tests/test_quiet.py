"""Quiet runs (harness/execution/quiet.py, harness/inputs/load_report.py): a log file gets plain lines, the new head is
said once in the harness's words, and the libraries' warnings about their own internals stay out."""

from __future__ import annotations

import io
import logging
import sys
import warnings

import pytest
import torch
from setuptools.config.pyprojecttoml import apply_configuration
from setuptools.dist import Distribution

from harness.core.paths import REPO
from harness.execution.training import training_arguments
from harness.inputs import load_report
from harness.inputs.models import load_model, load_tokenizer
from harness.inputs.tasks import TaskSpec
from harness.predict import inference_trainer
from tests.conftest import compose, run_cli


@pytest.mark.integration
def test_a_run_into_a_log_file_writes_plain_lines_and_no_library_noise(tmp_path, glue_dir):
    done = run_cli(["task=rte", "model=minilm", "method=lora", "debug=default", f"runs_dir={tmp_path}"], glue_dir)
    output = done.stdout + done.stderr  # pipes, as a sweep's log file: not a terminal
    assert done.returncode == 0, output[-3000:]
    assert "\r" not in output and "\x1b[" not in output  # no progress bar redrawn, no colour codes
    assert output.count("'loss': ") == 8  # the Trainer's logged numbers, one line per step
    assert "LOAD REPORT" not in output and "Consider training" not in output
    new_head = [line for line in output.splitlines() if "from random weights" in line]
    assert len(new_head) == 1 and new_head[0].endswith(
        "new for rte, from random weights (the checkpoint has no head for it): classifier.bias, classifier.weight"
    )
    assert "FutureWarning" not in output and "is_gradient_checkpointing" not in output


def test_the_new_head_is_said_once_per_process_and_the_librarys_table_not_at_all(capfd, caplog, monkeypatch):
    monkeypatch.setattr(load_report, "_said", set())  # a fresh process's
    cfg = compose(["task=mrpc", "model=minilm", "method=lora"])
    task = TaskSpec.from_config(cfg.task)
    with caplog.at_level(logging.INFO, logger="harness.inputs.load_report"):
        for _ in range(2):  # as the bench loads one model per row
            model = load_model(cfg.model, task)
    said = [r.getMessage() for r in caplog.records if r.name == "harness.inputs.load_report"]
    assert said == [
        "new for mrpc, from random weights (the checkpoint has no head for it): classifier.bias, classifier.weight"
    ]
    assert "LOAD REPORT" not in capfd.readouterr().err
    assert model.classifier.out_features == task.num_labels


class _Stream(io.StringIO):
    def __init__(self, terminal: bool) -> None:
        super().__init__()
        self.terminal = terminal

    def isatty(self) -> bool:
        return self.terminal


@pytest.mark.parametrize("terminal", [True, False])
def test_training_and_predict_show_a_progress_bar_on_a_terminal_only(tmp_path, monkeypatch, terminal):
    monkeypatch.setattr(sys, "stderr", _Stream(terminal))
    cfg = compose(["task=rte", "model=tiny-bert", "method=lora"])
    task = TaskSpec.from_config(cfg.task)
    assert training_arguments(cfg.train, str(tmp_path), 1, torch.device("cpu")).disable_tqdm is not terminal
    trainer = inference_trainer(load_model(cfg.model, task), cfg, task, load_tokenizer(cfg.model), tmp_path)
    assert trainer.args.disable_tqdm is not terminal


def test_the_package_metadata_builds_without_deprecation_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # setuptools' project.license table deprecation among them
        dist = apply_configuration(Distribution(), REPO / "pyproject.toml")
    assert dist.metadata.license_expression == "MIT"
