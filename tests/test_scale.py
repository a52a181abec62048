"""Scaling out: run.py under torchrun (2 CPU ranks, gloo), launcher presets, a submitit sweep.

The DDP test runs this file itself under torchrun (the ``__main__`` block at the end): each rank
runs run.py as a user would, with a recording callback added to the method's callbacks, and
writes what it saw to ``rank<r>.json``, so the test can compare the ranks' freezing and
allocation decisions and the statistics behind them.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from harness.core.paths import REPO, RUN_PY

# 32 examples, effective batch 8, 2 epochs = 8 optimizer steps whatever the number of processes.
# No dropout: each rank would draw its own masks, and runs on 1 and 2 processes are compared.
TINY = [
    "task=rte",
    "model=tiny-bert",
    "debug=default",
    "train.device=cpu",
    "train.max_eval_samples=8",
    "+model.config.hidden_dropout_prob=0.0",
    "+model.config.attention_probs_dropout_prob=0.0",
]
METHOD_ARGS = {
    # Freezing decisions every step from step 2 on; AdaLoRA re-allocates every step after step 1.
    "aflora": ["method=aflora", "method.t_i=1step", "method.t_f=4steps", "method.window=1"],
    "adalora": ["method=adalora", "method.deltaT=1"],
}
STEPS = 8
BUILD_LOG = {"aflora": "AFLoRA: ", "adalora": "adalora: "}  # what every rank's builder logs once


def _run_group(command: list[str], env: dict[str, str], timeout: int) -> subprocess.CompletedProcess:
    """Run ``command`` in its own process group and stop all of it if it runs over ``timeout``.

    A plain ``subprocess.run`` timeout would leave orphans: torchrun starts each rank in a session
    of its own (SIGTERM makes torchrun stop them), submitit's jobs ignore SIGTERM (SIGKILL then).
    """
    proc = subprocess.Popen(
        command, cwd=REPO, env=env, text=True, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:  # the whole group has gone
            pass
        out, err = proc.communicate()
        pytest.fail(f"{' '.join(command[:4])} ... ran over {timeout} s:\n{out[-2000:]}\n{err[-3000:]}")
    return subprocess.CompletedProcess(command, proc.returncode, out, err)


def _env(glue: Path) -> dict[str, str]:
    launched = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
    return {
        **{k: v for k, v in os.environ.items() if k not in launched},
        "GLUE_DIR": str(glue),
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "PYTHONPATH": str(REPO),
        "OMP_NUM_THREADS": "1",
    }


# --- the effective batch ---------------------------------------------------------------------


@pytest.mark.parametrize("processes", [1, 2, 4, 8])
@pytest.mark.parametrize("per_device", [None, 4])
def test_batch_layout_keeps_the_effective_batch(processes, per_device):
    from harness.execution.training import batch_layout, optimizer_steps

    train = OmegaConf.create({"batch_size": 32, "per_device_batch_size": per_device, "max_steps": -1, "epochs": 3})
    size, accumulation = batch_layout(train, processes)
    assert size * processes * accumulation == 32
    assert size == (per_device or 32 // processes)
    assert optimizer_steps(320, train, processes) == (10, 30)  # as on one process


# --- what ranks > 0 do -------------------------------------------------------------------------


def test_replica_overrides(monkeypatch):
    from harness.execution.distributed import replica_overrides

    monkeypatch.setenv("RANK", "0")
    assert replica_overrides(["task=rte"]) == []
    monkeypatch.setenv("RANK", "1")
    assert replica_overrides(["task=rte"]) == [
        "hydra.output_subdir=null",
        "hydra/job_logging=disabled",
        "hydra/hydra_logging=disabled",
    ]
    assert "hydra/job_logging=disabled" not in replica_overrides(["hydra/job_logging=stdout"])


def test_ranks_of_a_multi_task_submitit_job_are_exported(monkeypatch):
    pytest.importorskip("submitit", reason="the scale extra is not installed: pip install -e '.[scale]'")
    from harness.execution.distributed import _export_submitit_ranks

    monkeypatch.setattr(os, "environ", {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE")})
    job = {
        "FOLDER": "/tmp",
        "EXECUTOR": "local",
        "LOCAL_JOB_ID": "42",
        "LOCAL_NTASKS": "2",
        "LOCAL_JOB_NUM_NODES": "1",
        "LOCAL_NODEID": "0",
        "LOCAL_GLOBALID": "1",
        "LOCAL_LOCALID": "1",
    }
    os.environ.update({f"SUBMITIT_{key}": value for key, value in job.items()})  # a copy: the test's own
    _export_submitit_ranks()
    assert (os.environ["RANK"], os.environ["WORLD_SIZE"], os.environ["LOCAL_RANK"]) == ("1", "2", "1")
    assert os.environ["MASTER_ADDR"] and os.environ["MASTER_PORT"]


# --- launcher presets ----------------------------------------------------------------------------


def _launcher(overrides: list[str]) -> dict:
    """hydra.launcher as ``run.py <overrides> --cfg hydra`` prints it."""
    proc = subprocess.run(
        [sys.executable, str(RUN_PY), *overrides, "--cfg", "hydra", "--package", "hydra.launcher"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return OmegaConf.to_container(OmegaConf.create(proc.stdout))


@pytest.mark.integration
def test_slurm_preset_composes_with_documented_overrides():
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="pip install -e '.[scale]'")
    launcher = _launcher(["hydra/launcher=slurm", "hydra.launcher.partition=gpu", "hydra.launcher.timeout_min=2880"])
    assert launcher["_target_"].endswith("SlurmLauncher")
    assert launcher["partition"] == "gpu" and launcher["timeout_min"] == 2880  # the command line wins
    expected = {
        "gpus_per_node": 1,
        "tasks_per_node": 1,
        "nodes": 1,
        "cpus_per_task": 4,
        "mem_gb": 32,
        "max_num_timeout": 3,
        "account": None,
    }
    assert {k: launcher[k] for k in expected} == expected
    assert launcher["additional_parameters"] == {}  # the plugin's other keys are still there
    proc = subprocess.run(
        [
            sys.executable,
            str(RUN_PY),
            "hydra/launcher=slurm",
            "task=cola",
            "method=aflora",
            "seed=2",
            "--cfg",
            "job",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    job = OmegaConf.create(proc.stdout)
    assert (job.task.name, job.method.name, job.seed) == ("cola", "aflora", 2)


class _Submitted(Exception):
    """Raised instead of submitting: carries the sbatch script submitit would have submitted."""


def test_slurm_preset_renders_a_valid_sbatch_script(tmp_path, monkeypatch):
    submitit = pytest.importorskip("submitit", reason="pip install -e '.[scale]'")
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="pip install -e '.[scale]'")
    from hydra import compose as hydra_compose
    from hydra.utils import instantiate

    from tests.conftest import compose

    (tmp_path / "srun").write_text("#!/bin/sh\n")  # submitit's SLURM executor insists on finding srun
    (tmp_path / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")

    def render(executor, fn, *args):
        raise _Submitted(executor._executor._make_submission_file_text("python -m submitit.core._submit", "uid"))

    monkeypatch.setattr(submitit.AutoExecutor, "map_array", render)
    compose([])  # initialises Hydra for this session
    overrides = ["hydra/launcher=slurm", "hydra.launcher.partition=gpu", "hydra.job.name=run", f"runs_dir={tmp_path}"]
    cfg = hydra_compose(config_name="config", overrides=overrides, return_hydra_config=True)
    launcher = instantiate(cfg.hydra.launcher)  # the plugin's SlurmLauncher, as Hydra builds it
    launcher.config = cfg
    with pytest.raises(_Submitted) as submitted:
        launcher.launch([["seed=1"], ["seed=2"]], initial_job_idx=0)  # maps the keys to sbatch flags
    script = str(submitted.value)
    for flag in (
        "--partition=gpu",
        "--gpus-per-node=1",
        "--ntasks-per-node=1",
        "--cpus-per-task=4",
        "--mem=32GB",
        "--nodes=1",
        "--time=720",
        "--signal=USR2@300",
    ):
        assert f"#SBATCH {flag}" in script, flag
    assert "#SBATCH --account" not in script  # null keys are left to the cluster's defaults


@pytest.mark.parametrize(
    ("preset", "plugin", "target", "values"),
    [
        ("local_pool", "hydra_joblib_launcher", "JoblibLauncher", {"n_jobs": 2, "prefer": "processes"}),
        ("local_submitit", "hydra_submitit_launcher", "LocalLauncher", {"gpus_per_node": 0, "tasks_per_node": 1}),
    ],
)
def test_local_presets_compose(preset, plugin, target, values):
    pytest.importorskip(f"hydra_plugins.{plugin}", reason="pip install -e '.[scale]'")
    from tests.conftest import compose

    compose([])  # initialises Hydra for this session
    from hydra import compose as hydra_compose

    cfg = hydra_compose(config_name="config", overrides=[f"hydra/launcher={preset}"], return_hydra_config=True)
    launcher = OmegaConf.to_container(cfg.hydra.launcher)
    assert launcher["_target_"].endswith(target)
    assert {k: launcher[k] for k in values} == values


# --- two ranks, one run ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ddp_run(glue_dir, tmp_path_factory) -> tuple[Path, list[dict]]:
    """Both methods trained by run.py under ``torchrun --nproc_per_node=2``: (runs_dir, per-rank records)."""
    out = tmp_path_factory.mktemp("ddp")
    plan = {method: [*TINY, *args, f"runs_dir={out / 'runs'}"] for method, args in METHOD_ARGS.items()}
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        f"--log-dir={out / 'torchelastic'}",  # not a /tmp/torchelastic_* folder left behind per run
        __file__,
        str(out),
        json.dumps(plan),
    ]
    proc = _run_group(command, _env(glue_dir), timeout=400)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return out / "runs", [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]


def _close(a: dict, b: dict, rel: float) -> bool:
    return a.keys() == b.keys() and all(math.isclose(a[k], b[k], rel_tol=rel, abs_tol=1e-15) for k in a)


@pytest.mark.integration
def test_torchrun_two_ranks_write_one_run_and_decide_alike(ddp_run):
    from tests.conftest import run_dir_of

    runs, ranks = ddp_run
    assert not list(runs.rglob("rank*")), "no per-rank output folders"
    for method in METHOD_ARGS:
        run_dir = run_dir_of(runs, "tiny-bert", "rte", method)
        assert sorted(p.name for p in run_dir.iterdir()) == [
            ".hydra",
            "best",
            "fingerprint.json",
            "result.json",
            "run.log",
        ]
        result = json.loads((run_dir / "result.json").read_text())
        assert result["status"] == "completed"
        assert result["runtime"]["steps"] == STEPS  # the effective batch of one process, kept over two
        log = (run_dir / "run.log").read_text()
        assert log.count(BUILD_LOG[method]) == 1, "only rank 0 logs into the run directory"

        r0, r1 = ranks[0][method], ranks[1][method]
        assert r0["batches"] != r1["batches"], "each rank trains on its own shard of the batch"
        # ... yet every rank sees the same all-reduced gradient at every step, hence the same scores
        assert len(r0["steps"]) == STEPS and r0["steps"].keys() == r1["steps"].keys()
        for step in r0["steps"]:
            assert _close(r0["steps"][step], r1["steps"][step], rel=1e-12), (method, step)
        if method == "aflora":
            assert r0["final"]["freezing"] == r1["final"]["freezing"] == result["freezing"]
            assert any(s is not None and s > 0 for s in result["freezing"].values()), "matrices froze while training"
        else:
            assert r0["final"]["rank_pattern"] == r1["final"]["rank_pattern"] is not None
            assert r0["final"]["ranks"] == r1["final"]["ranks"] == result["ranks"]
            assert min(result["ranks"].values()) < 12, "AdaLoRA pruned some ranks"


@pytest.mark.parametrize("per_device", [8, 4])
@pytest.mark.integration
def test_one_process_trains_as_two(ddp_run, glue_dir, tmp_path, monkeypatch, per_device):
    """The recipe's batch of 8 on 2 ranks x 4 (DDP), on 1 process x 8, and on 1 process x 4 with 2
    accumulation steps: the same examples, gradients, AFLoRA scores and freezing at every step."""
    import harness.execution.assembly
    import harness.execution.experiment
    from tests.conftest import compose

    ddp = [rank["aflora"] for rank in ddp_run[1]]
    recorders: list = []
    monkeypatch.setattr(
        harness.execution.assembly,
        "method_builder",
        _recording_builder(harness.execution.assembly.method_builder, recorders),
    )
    overrides = [*TINY, *METHOD_ARGS["aflora"], f"train.per_device_batch_size={per_device}", f"data.dir={glue_dir}"]
    result = harness.execution.experiment.run_experiment(compose(overrides), tmp_path)
    one = recorders[-1].record()

    # BERT pads with token 0, so a batch's checksum is the sum of its halves'
    if per_device == 8:
        assert one["batches"] == [a + b for a, b in zip(ddp[0]["batches"], ddp[1]["batches"], strict=True)]
    else:  # rank 0 trains on the even micro-batches, rank 1 on the odd ones
        assert one["batches"][0::2] == ddp[0]["batches"] and one["batches"][1::2] == ddp[1]["batches"]
    assert result.runtime.steps == STEPS and result.freezing == ddp[0]["final"]["freezing"]
    assert one["steps"].keys() == ddp[0]["steps"].keys()
    for step in one["steps"]:
        assert _close(one["steps"][step], ddp[0]["steps"][step], rel=1e-4), step


# --- a sweep through submitit's local executor -----------------------------------------------------


@pytest.mark.integration
def test_submitit_local_sweep_writes_one_result_per_seed(glue_dir, tmp_path):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="pip install -e '.[scale]'")
    args = [*TINY, "method=lora", "seed=1,2", f"runs_dir={tmp_path}", "train.max_train_samples=16"]
    command = [sys.executable, str(RUN_PY), "-m", "hydra/launcher=local_submitit", *args]
    proc = _run_group(command, _env(glue_dir), timeout=400)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    from tests.conftest import run_dir_of

    for seed in (1, 2):
        result = json.loads((run_dir_of(tmp_path, "tiny-bert", "rte", "lora", seed) / "result.json").read_text())
        assert result["status"] == "completed" and result["seed"] == seed
    assert list((tmp_path / ".submitit").glob("*/*_log.out")), "submitit kept its job logs"


# --- recording what each rank saw; run under torchrun by the DDP tests -----------------------------


def _recording_builder(method_builder, recorders: list):
    """``method_builder`` whose builds add a recorder right after the method's own callback (before
    clipping): per step, the gradients and the statistics the method decides from."""
    from harness.execution.methods import MethodCallback

    class Recorder(MethodCallback):  # a method callback as the contract has it: the harness calls its hooks
        def __init__(self, method_callback):
            self.method = method_callback
            self.steps: dict[int, dict[str, float]] = {}
            self.batches: list[int] = []  # a checksum of each training micro-batch of this process

        def on_train_begin(self, args, state, control, model=None, **kwargs):
            def record_batch(module, inputs, kw):
                if module.training:
                    self.batches.append(int(kw["input_ids"].sum()))

            model.register_forward_pre_hook(record_batch, with_kwargs=True)

        def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
            grads = {n: float(p.grad.double().abs().sum()) for n, p in model.named_parameters() if p.grad is not None}
            self.steps[state.global_step] = {f"grad:{n}": g for n, g in grads.items()} | self._statistics()

        def _statistics(self) -> dict[str, float]:
            if hasattr(self.method, "scorer"):  # AFLoRA: smoothed sensitivity and uncertainty
                tables = {"ipt": self.method.scorer.ipt_avg, "unc": self.method.scorer.unc_avg}
            else:  # AdaLoRA: peft's allocator (updated after the previous optimizer step)
                allocator = self.method.tuner.rankallocator
                tables = {"ipt": allocator.exp_avg_ipt, "unc": allocator.exp_avg_unc}
            return {f"{k}:{n}": float(t.double().sum()) for k, table in tables.items() for n, t in table.items()}

        def record(self) -> dict:
            if hasattr(self.method, "freeze_steps"):
                final = {"freezing": self.method.result_fields()["freezing"]}
            else:
                pattern = {k: [bool(x) for x in v] for k, v in (self.method.rank_pattern or {}).items()} or None
                final = {"rank_pattern": pattern, "ranks": self.method.ranks()}
            return json.loads(json.dumps({"steps": self.steps, "batches": self.batches, "final": final}))

    def recording(method_cfg):
        build = method_builder(method_cfg)

        def wrapped(model, cfg, ctx):
            built = build(model, cfg, ctx)
            recorders.append(Recorder(built.callbacks[0]))
            built.callbacks.append(recorders[-1])
            return built

        return wrapped

    return recording


def _probe(out: Path, plan: dict[str, list[str]]) -> None:
    """On this rank: run.py for each method, as a user would; then write what this rank saw."""
    import runpy

    import torch
    from hydra.core.global_hydra import GlobalHydra

    import harness.execution.assembly

    recorders: list = []
    harness.execution.assembly.method_builder = _recording_builder(harness.execution.assembly.method_builder, recorders)
    seen = {}
    for method, overrides in plan.items():
        sys.argv = [str(RUN_PY), *overrides]
        GlobalHydra.instance().clear()
        runpy.run_path(str(RUN_PY), run_name="__main__")
        seen[method] = recorders[-1].record()
    (out / f"rank{torch.distributed.get_rank()}.json").write_text(json.dumps(seen))


if __name__ == "__main__":
    _probe(Path(sys.argv[1]), json.loads(sys.argv[2]))
