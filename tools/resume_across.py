"""Does a change of the code change a number? A run started at one commit, killed after its first
checkpoint, resumes at another and must finish as a run trained start to end at the other does;
and a run trained start to end at the first must too.

    python -m tools.resume_across BEFORE [AFTER] [--methods lora,aflora,...] [--glue DIR]

AFTER defaults to the working tree (the code as it is now). BEFORE is any commit: it is checked out
into a temporary worktree and run from there with this Python, so its own run.py, conf/ and harness
are the ones that train. The runs are tiny (tiny-bert, 48 RTE examples, 4 epochs of 6 steps) and the
kill is a preemption's: SIGKILL right after the first checkpoint is marked complete (step 6).
Prints one line per method and exits 1 if any differs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from harness.core.paths import CONF_DIR, REPO

METHODS = sorted(p.stem for p in (CONF_DIR / "method").glob("*.yaml"))  # every method this tree has
# 48 examples at batch 8: 6 optimizer steps an epoch, 4 epochs, 24 steps; a training-loss window of
# 4 steps, which an epoch end cuts (the first checkpoint, where a killed run resumes, is at step 6).
RUN = [
    "task=rte",
    "model=tiny-bert",
    "train.epochs=4",
    "train.batch_size=8",
    "train.max_train_samples=48",
    "train.max_eval_samples=16",
    "data.max_seq_length=32",
    "train.logging_steps=4",
]
# A preemption right after the first checkpoint is marked complete: no cleanup at all. Independent of
# the harness's own modules, which may have moved between the commits: transformers calls every
# callback's on_save (the harness's completion marker among them) here.
KILL_AFTER_FIRST_CHECKPOINT = """
import os, signal
from transformers.trainer_callback import CallbackHandler
save = CallbackHandler.on_save
def save_then_die(self, *args, **kwargs):
    save(self, *args, **kwargs)
    os.kill(os.getpid(), signal.SIGKILL)
CallbackHandler.on_save = save_then_die
"""


def train(code: Path, runs: Path, method: str, glue: Path, prelude: str = "") -> int:
    """``python run.py`` of the code in ``code`` (its own folder first on the path), into ``runs``."""
    args = [*RUN, f"method={method}", f"runs_dir={runs}"]
    start = f"import runpy, sys\nsys.argv = ['run.py', *{args!r}]\nrunpy.run_path('run.py', run_name='__main__')"
    script = f"{prelude}\n{start}"
    env = os.environ | {"GLUE_DIR": str(glue), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", script], cwd=code, env=env, capture_output=True, text=True)
    if done.returncode not in (0, -9):
        print(done.stderr[-3000:], file=sys.stderr)
    return done.returncode


def result_in(runs: Path) -> dict:
    """The one result.json below ``runs``."""
    (path,) = runs.rglob("result.json")
    return json.loads(path.read_text())


def comparable(result: dict) -> dict:
    """What must not depend on the code's layout or an interruption (tests/test_reliability.py's
    resume too): every epoch's metrics (less the timings), the parameter counts, AFLoRA's freezing
    steps and the ranks."""
    epochs = [{k: v for k, v in e.items() if "seconds" not in k} for e in result["metrics"]["per_epoch"]]
    params = {k: result["params"][k] for k in ("trainable_start", "trainable_end", "trainable_avg")}
    return {"epochs": epochs, "params": params, "freezing": result.get("freezing"), "ranks": result.get("ranks")}


def check(before: Path, after: Path, method: str, glue: Path, scratch: Path) -> str:
    straight_after, straight_before, resumed = (scratch / method / n for n in ("after", "before", "resumed"))
    if train(after, straight_after, method, glue) or train(before, straight_before, method, glue):
        return "a straight run failed"
    if train(before, resumed, method, glue, KILL_AFTER_FIRST_CHECKPOINT) != -9:
        return "the run to kill was not killed"
    if train(after, resumed, method, glue):
        return "the resume failed"
    if not result_in(resumed)["runtime"].get("resumed_from"):
        return "the second run started over instead of resuming"
    reference = comparable(result_in(straight_after))
    if comparable(result_in(straight_before)) != reference:
        return "differs: trained start to end before and after"
    if comparable(result_in(resumed)) != reference:
        return "differs: resumed after against trained after"
    epochs = reference["epochs"]
    last = {k: v for k, v in epochs[-1].items() if k != "epoch"}
    return f"identical ({len(epochs)} epochs, last {last})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("before", help="the commit a run starts at")
    parser.add_argument("after", nargs="?", help="the commit it resumes at (default: the working tree)")
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated (default: every method)")
    parser.add_argument("--glue", type=Path, default=os.environ.get("GLUE_DIR"), help="GLUE copy (default $GLUE_DIR)")
    args = parser.parse_args(argv)
    if args.glue is None or not (args.glue / "rte").is_dir():
        parser.error("--glue (or GLUE_DIR) must name a GLUE copy with rte/")
    with tempfile.TemporaryDirectory(prefix="resume-across-") as tmp:
        scratch = Path(tmp)
        trees = {}
        for name, rev in (("before", args.before), ("after", args.after)):
            if rev is None:
                trees[name] = REPO
                continue
            trees[name] = scratch / f"code-{name}"
            add = ["git", "worktree", "add", "--detach", "--quiet", str(trees[name]), rev]
            subprocess.run(add, cwd=REPO, check=True)
        outcomes = []
        try:
            for method in args.methods.split(","):
                outcomes.append(check(trees["before"], trees["after"], method, args.glue, scratch))
                print(f"{method}: {outcomes[-1]}", flush=True)
        finally:
            for tree in trees.values():
                if tree != REPO:
                    subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=REPO, check=False)
    return 0 if all(o.startswith("identical") for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
