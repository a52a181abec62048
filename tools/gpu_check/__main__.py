"""``python -m tools.gpu_check`` (``make gpu-check``): the prepared GPU check, in one command.

    python3 -m tools.gpu_check --bundle $OUT/gpu-check.tgz     # on the GPU machine (8 minutes)
    python -m tools.gpu_check --dry-run                         # CPU, tiny sizes, a temporary folder

Steps, in order, each in its own process under one time limit (``--limit``; it stops itself then
and keeps what it has):

1. install the carried wheels (``make gpu-wheels``) with ``pip --no-index --no-deps --target``, and
   record the machine in ``env.json``;
2. the speed bench (``harness.bench``) at fp32 and bf16 into ``bench/``;
3. the epoch bench: one RTE epoch per method, dynamic padding against padding to 256, ``epoch/``;
4. the MiniLM study at full data, several trainings at once, into ``runs_gpu/``, and its report;
5. ``README.md``: the summary, also printed.

Everything lands under ``--out`` (default ``reports/gpu``; the dry run: a temporary folder), the
trainings' results under ``--runs`` (default ``runs_gpu``), each step's output in ``logs/``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from harness.core.errors import HarnessError, print_user_error
from harness.core.paths import REPO, RUN_PY
from tools.gpu_check import plan as plans
from tools.gpu_check.carry import CARRY_DIR
from tools.gpu_check.jobs import Job, run_pool
from tools.gpu_check.summary import completed_result, write_summary


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m tools.gpu_check", description=__doc__.splitlines()[0])
    p.add_argument("--dry-run", action="store_true", help="every step on the CPU at a tiny size (tests)")
    p.add_argument("--limit", type=float, help="seconds for the whole check (default: 480; dry run 600)")
    p.add_argument("--out", type=Path, help="report folder (default: reports/gpu; dry run: <work>/reports/gpu)")
    p.add_argument("--runs", type=Path, help="the trainings' runs_dir (default: runs_gpu; dry run: <work>/runs_gpu)")
    p.add_argument("--work", type=Path, help="scratch folder: installed wheels, dry-run outputs (default: a new one)")
    p.add_argument("--carry", type=Path, default=CARRY_DIR, help="what make gpu-wheels filled (default: .gpu-carry)")
    p.add_argument("--glue", type=Path, help="GLUE copy (default: <carry>/glue, else $GLUE_DIR)")
    p.add_argument("--workers", type=int, help="trainings at once in the study (default: 8; dry run 2)")
    p.add_argument("--bundle", type=Path, help="also pack the reports and result.json files into this .tgz")
    return p.parse_args(argv)


class Check:
    """The steps, the clock and the environment every child process gets."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.plan = plans.DRY_RUN if args.dry_run else plans.GPU
        self.limit = args.limit or self.plan.limit
        self.start = time.monotonic()
        self.deadline = self.start + self.limit
        self.work = args.work or Path(tempfile.mkdtemp(prefix="gpu-check-"))
        default_root = self.work if args.dry_run else REPO
        self.out = (args.out or default_root / "reports" / "gpu").resolve()
        self.runs = (args.runs or default_root / "runs_gpu").resolve()
        self.workers = args.workers or self.plan.workers
        self.dry_run = args.dry_run
        self.carry = args.carry
        glue = args.glue or glue_copy(args.carry)
        if glue is None or not Path(glue).is_dir():
            raise HarnessError(f"no GLUE copy: {args.carry}/glue (make gpu-wheels fills it), $GLUE_DIR or --glue")
        self.glue = Path(glue).resolve()
        self.site = self.work / "site"
        self.steps: list[dict] = []
        set_aside(self.out)
        self.out.mkdir(parents=True)

    def env(self, **extra: str) -> dict[str, str]:
        path = os.pathsep.join(p for p in (str(self.site), str(REPO), os.environ.get("PYTHONPATH")) if p)
        offline = {k: "1" for k in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")}
        return {
            **os.environ,
            **offline,
            "PYTHONPATH": path,
            "GLUE_DIR": str(self.glue),
            "PYTHONUNBUFFERED": "1",
            **extra,
        }

    def until(self, step: str) -> float:
        return plans.step_end(step, self.deadline, self.limit)

    def run(self, name: str, argv: list[str], until: float | None = None, **env: str) -> bool:
        """One step in one process group, stopped at ``until``; recorded in ``self.steps``."""
        job = Job(name, argv, self.out / "logs" / f"{name}.log", env=self.env(**env), cwd=REPO)
        print(f"[{self.elapsed():5.0f} s] {name}: {' '.join(argv[1:])}", flush=True)
        run_pool([job], 1, min(until or self.deadline, self.deadline))
        self.record(name, job.outcome, job.seconds)
        if job.outcome != "exit 0":
            print(_tail(job.log), flush=True)
        return job.outcome == "exit 0"

    def record(self, name: str, outcome: str, seconds: float | None) -> None:
        self.steps.append({"step": name, "outcome": outcome, "seconds": seconds})
        print(f"[{self.elapsed():5.0f} s] {name}: {outcome}", flush=True)

    def elapsed(self) -> float:
        return time.monotonic() - self.start


def glue_copy(carry: Path) -> Path | None:
    """The carried GLUE copy if ``make gpu-wheels`` filled one, else $GLUE_DIR (a fresh clone's dry run)."""
    found = [Path(g) for g in (carry / "glue", os.environ.get("GLUE_DIR")) if g and Path(g).is_dir()]
    return found[0] if found else None


def set_aside(out: Path) -> None:
    """An earlier report moves to ``<out>-previous-<time>``: a new one never mixes with its files."""
    if out.exists() and any(out.iterdir()):
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        out.rename(out.with_name(f"{out.name}-previous-{stamp}"))


def _tail(log: Path, lines: int = 15) -> str:
    text = log.read_text(errors="replace").splitlines() if log.exists() else []
    return "\n".join(f"    {line}" for line in text[-lines:])


def install(check: Check) -> bool:
    """The carried wheels into a private folder that comes first on PYTHONPATH."""
    from tools.gpu_check.carry import install_command, local_wheels

    if check.dry_run:  # this machine's Python: the compatible carried wheels and a float16 MiniLM built here
        wheels, start = check.work / "wheels", time.monotonic()
        local_wheels(wheels, check.carry)
        check.record("wheels", "exit 0", time.monotonic() - start)
    else:
        wheels = check.carry / "wheels"
        if not any(wheels.glob("*.whl")):
            check.record("install", f"no wheels in {wheels}: run make gpu-wheels where pip reaches PyPI", None)
            return False
    shutil.rmtree(check.site, ignore_errors=True)
    return check.run("install", install_command(sys.executable, wheels, check.site))


def study(check: Check) -> None:
    plan, jobs = check.plan, []
    for task, method, seed in plans.study_cells(plan):
        name = f"{task}-{method}-seed{seed}"
        if completed_result(check.runs, plan.study_name, task, method, seed):
            check.record(f"study {name}", "already completed", None)
            continue
        argv = [sys.executable, str(RUN_PY), f"task={task}", f"model={plan.study_model}"]
        argv += [f"method={method}", f"seed={seed}", f"runs_dir={check.runs}", f"train.device={plan.device}"]
        argv += [f"train.threads={plan.threads}", f"model.name={plan.study_name}", *plan.study_overrides]
        env = check.env(OMP_NUM_THREADS=str(plan.threads), TOKENIZERS_PARALLELISM="false")
        jobs.append(Job(name, argv, check.out / "logs" / "study" / f"{name}.log", env=env, cwd=REPO))
    print(f"[{check.elapsed():5.0f} s] study: {len(jobs)} trainings, {check.workers} at once", flush=True)
    for job in run_pool(jobs, check.workers, check.until("study")):
        check.record(f"study {job.name}", job.outcome, job.seconds)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        check = Check(args)
    except HarnessError as err:
        return print_user_error(err)
    plan, python = check.plan, sys.executable
    print(f"GPU check ({'dry run' if check.dry_run else plan.device}), limit {check.limit:.0f} s, into {check.out}")
    ready = install(check) and check.run(
        "env",
        [python, "-m", "tools.gpu_check.machine", "--out", str(check.out / "env.json"), "--site", str(check.site)]
        + ["--device", plan.device],
    )
    if ready:
        bench = [python, "-m", "harness.bench", *plan.bench, f"out={check.out / 'bench'}"]
        check.run("bench-fp32", [*bench, "precision=fp32"], check.until("bench-fp32"))
        check.run("bench-bf16", [*bench, "precision=bf16", f"rows={plans.BF16_ROWS}"], check.until("bench-bf16"))
        for method in plan.epoch_methods:
            epoch = [python, "-m", "harness.bench", "mode=epoch", *plan.epoch, f"method={method}"]
            epoch += [f"out={check.out / 'epoch' / method}", f"runs_dir={check.work / 'epoch-runs' / method}"]
            check.run(f"epoch-{method}", epoch, check.until("epoch"))
        study(check)
        if any(check.runs.rglob("result.json")):
            report = [python, "-m", "harness.report", "--runs", str(check.runs), "--out", str(check.out)]
            check.run("report", [*report, "--model", plan.study_name])
    record = {"limit": check.limit, "elapsed": check.elapsed(), "steps": check.steps}
    (check.out / "steps.json").write_text(json.dumps(record, indent=2) + "\n")
    print(write_summary(check.out, check.runs, plan, check.steps, check.elapsed(), check.limit))
    if args.bundle:
        bundle(args.bundle, check.out, check.runs)
    return 0 if ready else 1


def bundle(path: Path, out: Path, runs: Path) -> None:
    """One archive that comes back from the device: reports/gpu/ and runs_gpu/**/result.json."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        tar.add(out, arcname="reports/gpu")
        for result in sorted(runs.rglob("result.json")):
            tar.add(result, arcname=str(Path("runs_gpu") / result.relative_to(runs)))
    print(f"bundle: {path} ({path.stat().st_size / 2**20:.1f} MiB)")


if __name__ == "__main__":
    sys.exit(main())
