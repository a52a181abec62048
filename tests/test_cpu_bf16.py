"""bf16 on a CPU without bf16 instructions: told at a run's start, refused by the study tool unless asked."""

from __future__ import annotations

import logging

import pytest
import torch
from omegaconf import OmegaConf

from harness import study
from harness.execution import cpu_bf16, experiment, lifecycle
from tests.conftest import compose


@pytest.mark.parametrize(
    ("avx512_bf16", "amx", "emulated"), [(False, False, True), (True, False, False), (False, True, False)]
)
def test_emulated_where_the_cpu_has_neither_instruction_set(monkeypatch, avx512_bf16, amx, emulated):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    assert cpu_bf16.emulated_bf16() is emulated


def test_a_torch_without_the_checks_is_not_judged(monkeypatch):
    monkeypatch.delattr(torch.cpu, "_is_avx512_bf16_supported")
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    assert cpu_bf16.emulated_bf16() is False


@pytest.mark.parametrize("precision", ["bf16", "fp32"])
def test_a_bf16_run_on_such_a_cpu_says_so_at_its_start(tmp_path, glue_dir, monkeypatch, caplog, precision):
    monkeypatch.setattr(experiment, "emulated_bf16", lambda: True)
    cfg = compose(
        ["task=rte", "model=tiny-bert", "method=lora", "debug=default", "train.epochs=1"]
        + [f"data.dir={glue_dir}", "train.device=cpu", f"train.precision={precision}"]
    )
    with caplog.at_level(logging.WARNING):
        assert lifecycle.run(cfg, tmp_path / "run") == 0
    warned = [r.getMessage() for r in caplog.records if r.getMessage() == cpu_bf16.EMULATED_BF16]
    assert len(warned) == (precision == "bf16")


def write_study(tmp_path, precision: str):
    path = tmp_path / "study.yaml"
    overrides = [f"runs_dir={tmp_path / 'runs'}", f"train.precision={precision}", "train.device=cpu"]
    stages = {"table": {"tasks": ["rte", "mrpc"], "methods": ["lora"]}}
    OmegaConf.save({"model": "tiny-bert", "seeds": [1], "overrides": overrides, "stages": stages}, path)
    return path


def started_runs(monkeypatch) -> list:
    started = []
    monkeypatch.setattr(study, "run_all", lambda runs, *a: started.extend(runs() if callable(runs) else runs) or [])
    return started


def test_the_study_tool_refuses_bf16_runs_on_such_a_cpu_in_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cpu_bf16, "emulated_bf16", lambda: True)
    started = started_runs(monkeypatch)
    with pytest.raises(SystemExit) as exited:
        study.main([str(write_study(tmp_path, "bf16"))])
    assert exited.value.code == 2 and started == []
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: 2 runs to train would use {cpu_bf16.EMULATED_BF16}; --allow-emulated-bf16 starts them"]


@pytest.mark.parametrize(
    ("precision", "emulated", "args"),
    [("bf16", True, ["--allow-emulated-bf16"]), ("bf16", False, []), ("fp32", True, [])],
)
def test_the_study_tool_starts_them_when_asked_on_a_native_cpu_or_in_fp32(
    tmp_path, monkeypatch, precision, emulated, args
):
    monkeypatch.setattr(cpu_bf16, "emulated_bf16", lambda: emulated)
    started = started_runs(monkeypatch)
    assert study.main([str(write_study(tmp_path, precision)), *args]) == 0
    assert sorted(r.value("task") for r in started) == ["mrpc", "rte"]
