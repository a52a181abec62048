"""Every GLUE task of the paper for one method (``make glue``), as one Hydra multirun.

    python -m harness.sweep --method aflora --model minilm --seeds 1,2,3 [--jobs 2 | --launcher slurm]

With a local copy (GLUE_DIR), tasks whose train or validation files are missing are skipped with
a message; without one, every task is read from the hub. Finished runs are skipped by run.py
itself, so rerunning the sweep only trains what is missing. On this machine the runs go --jobs at
a time, each with cores / jobs torch threads (harness/studies/pool.py); --launcher hands the whole sweep
to a Hydra launcher instead (SLURM, a submitit pool).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from omegaconf import OmegaConf

from harness.core.errors import ConfigError, DataError, print_user_error
from harness.core.paths import CONF_DIR, REPO, RUN_PY, conf_file
from harness.inputs.data import required_splits, split_files
from harness.inputs.tasks import TaskSpec
from harness.report.paper import PAPER_TASKS  # the paper's table, in its order
from harness.studies.pool import Run, run_all


def missing_splits(task: str, glue_dir: Path) -> list[str]:
    spec = TaskSpec.from_config(OmegaConf.load(conf_file("task", task)))
    return [split for split in required_splits(spec) if not split_files(glue_dir, task, split)]


def available_tasks(tasks: list[str], glue_dir: str | None) -> list[str]:
    if not glue_dir:
        return tasks
    keep = []
    for task in tasks:
        missing = missing_splits(task, Path(glue_dir))
        if missing:
            print(f"skipping {task}: {glue_dir}/{task} lacks the split(s) {', '.join(missing)}", file=sys.stderr)
        else:
            keep.append(task)
    return keep


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--method", required=True)
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--seeds", default="1", help="comma-separated, e.g. 1,2,3")
    parser.add_argument("--tasks", default=",".join(PAPER_TASKS), help="comma-separated task names")
    parser.add_argument(
        "--launcher", default=None, help="a Hydra launcher preset of conf/hydra/launcher/: slurm, local_pool, ..."
    )
    parser.add_argument(
        "--jobs", type=int, default=1, help="runs at once on this machine, each with cores // jobs threads (default 1)"
    )
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides passed to run.py")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error(f"--jobs must be at least 1, got {args.jobs}")

    unknown = [t for t in args.tasks.split(",") if not conf_file("task", t).is_file()]
    if unknown:
        known = sorted(p.stem for p in (CONF_DIR / "task").glob("*.yaml"))
        return print_user_error(
            ConfigError(f"--tasks: unknown task(s) {', '.join(unknown)}; known: {', '.join(known)}")
        )
    tasks = available_tasks(args.tasks.split(","), os.environ.get("GLUE_DIR"))
    if not tasks:
        return print_user_error(DataError("no task has data: set GLUE_DIR to a GLUE copy or unset it to use the hub"))
    if not args.launcher:
        seeds = args.seeds.split(",")
        runs = [
            Run((f"task={task}", f"model={args.model}", f"method={args.method}", f"seed={seed}", *args.overrides))
            for seed in seeds
            for task in tasks
        ]
        return 1 if run_all(runs, args.jobs, REPO / "logs" / "sweep") else 0
    command = [
        sys.executable,
        str(RUN_PY),
        "-m",
        f"task={','.join(tasks)}",
        f"model={args.model}",
        f"method={args.method}",
        f"seed={args.seeds}",
        f"hydra/launcher={args.launcher}",
        *args.overrides,
    ]
    print(" ".join(command[1:]), file=sys.stderr)
    return subprocess.call(command, cwd=REPO)


if __name__ == "__main__":
    sys.exit(main())
