"""``python run.py <args>`` as a process forked from a starter that has already imported the libraries.

A fresh ``python run.py`` spends some 6 CPU seconds importing torch, transformers, peft and datasets
before it reads its command line, more than a tiny run then trains; the SIGKILL-resume tests start
ten of them. Tests about what a run computes (it resumes exactly, it repeats exactly, it writes a
complete result) start their runs here instead: each run is still a process of its own (its own
memory and exit status; SIGKILL kills it alone) that runs run.py as ``python run.py`` would, with
the environment ``run_cli`` gives, but forked from a process that imported the libraries once.

Tests about the command line itself keep ``run_cli``'s fresh interpreter: what a library prints or
reads from the environment when it is imported (test_quiet.py, test_cli_errors.py), ``--help``.

The starter imports only (no training), then says whether it runs a thread besides pyarrow's
allocator's: a fork copies only the thread that calls it, so where one does (another library
version, another platform), each run starts a fresh interpreter instead, with a warning. Otherwise it
forks a child per request read from its stdin and answers with the child's pid, then its exit status
as ``subprocess`` reports one.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

from harness.core.paths import REPO

# What run.py imports before and during a run, so that its children find it imported (not run.py
# itself: its body registers the schema and a resolver, which its child must do once, as it does).
PRELOAD = ("hydra", "harness.core.cli_help", "harness.execution.lifecycle", "harness.execution.methods")

STARTER = r"""
import gc, json, os, runpy, sys, threading, traceback
import importlib
# pyarrow's allocator (jemalloc) runs a thread from its import; jemalloc takes its locks around a fork.
FORK_SAFE = {"jemalloc_bg_thd"}
for name in sys.argv[1:]:
    importlib.import_module(name)
gc.collect()
gc.freeze()  # each run's full collections skip what the imports made (tests/conftest.py, freeze_what_is_imported)
answer = sys.stdout
# Linux names every thread of the process (the main thread's id is the pid); elsewhere Python's own
tasks = os.listdir("/proc/self/task") if os.path.isdir("/proc/self/task") else []
others = [open(f"/proc/self/task/{t}/comm").read().strip() for t in tasks if t != str(os.getpid())]
unsafe = sorted(set(others) - FORK_SAFE) or (["python"] if threading.active_count() != 1 else [])
print(json.dumps({"unsafe": unsafe}), file=answer, flush=True)  # nothing else starts a thread here
for line in sys.stdin:
    request = json.loads(line)
    pid = os.fork()
    if pid == 0:  # the run: run.py's own process
        code = 1
        try:
            os.chdir(request["cwd"])
            os.environ.clear()
            os.environ.update(request["env"])
            for fd, path in ((0, os.devnull), (1, request["stdout"]), (2, request["stderr"])):
                os.dup2(os.open(path, os.O_RDONLY if fd == 0 else os.O_WRONLY | os.O_CREAT | os.O_TRUNC), fd)
            sys.argv = ["run.py", *request["args"]]
            exec(request["prelude"], {"__name__": "prelude"})
            try:
                runpy.run_path("run.py", run_name="__main__")
                code = 0
            except SystemExit as done:  # as the interpreter turns sys.exit's argument into a status
                if done.code is None or isinstance(done.code, int):
                    code = done.code or 0
                else:
                    print(done.code, file=sys.stderr)
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    print(json.dumps({"pid": pid}), file=answer, flush=True)
    _, status = os.waitpid(pid, 0)
    print(json.dumps({"returncode": os.waitstatus_to_exitcode(status)}), file=answer, flush=True)
"""


# Where the starter cannot fork safely: the same run in a fresh interpreter, the prelude first.
FRESH = 'import runpy, sys; sys.argv = ["run.py", *sys.argv[1:]]; runpy.run_path("run.py", run_name="__main__")'


def cli_env(glue: Path | None) -> dict[str, str]:
    """The environment of a run started by a test: offline, one thread, GLUE_DIR as given."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    if glue is not None:
        env["GLUE_DIR"] = str(glue)
    else:
        env.pop("GLUE_DIR", None)
    return env


class Starter:
    """One starter process per test process, started on first use."""

    def __init__(self) -> None:
        self._process: subprocess.Popen | None = None
        self.unsafe: list[str] = []  # the threads that made the starter unsafe to fork, if any

    def _started(self) -> subprocess.Popen | None:
        """The starter, or None where it runs threads a fork would not copy (each run then starts a
        fresh interpreter, as slow as ``run_cli`` and as correct)."""
        if self.unsafe:
            return None
        if self._process is None or self._process.poll() is not None:
            self._process = subprocess.Popen(
                [sys.executable, "-c", STARTER, *PRELOAD],
                cwd=REPO,
                env=cli_env(None),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            self.unsafe = self._answer(self._process, 300)["unsafe"]
            if self.unsafe:
                message = f"the run starter runs threads {self.unsafe}: each run starts a fresh interpreter"
                warnings.warn(message, stacklevel=3)
                self.close()
                return None
        return self._process

    def _answer(self, process: subprocess.Popen, timeout: float | None) -> dict:
        if timeout is not None and not select.select([process.stdout], [], [], timeout)[0]:
            raise TimeoutError
        line = process.stdout.readline()
        if not line:
            raise RuntimeError(f"the run starter exited ({process.wait()}); its error is above")
        return json.loads(line)

    def run(
        self, args: list[str], glue: Path | None, timeout: int = 300, prelude: str = ""
    ) -> subprocess.CompletedProcess:
        """``python run.py <args>``, after ``prelude`` (Python run first in the same process, to patch
        what the run will call); stdout and stderr captured as text, as ``run_cli`` gives them."""
        process = self._started()
        if process is None:
            command = [sys.executable, "-c", prelude + "\n" + FRESH, *args]
            return subprocess.run(command, cwd=REPO, env=cli_env(glue), capture_output=True, text=True, timeout=timeout)
        with tempfile.TemporaryDirectory(prefix="warm-run-") as folder:
            out, err = Path(folder) / "stdout", Path(folder) / "stderr"
            request = {"args": args, "cwd": str(REPO), "env": cli_env(glue), "prelude": prelude}
            request |= {"stdout": str(out), "stderr": str(err)}
            process.stdin.write(json.dumps(request) + "\n")
            process.stdin.flush()
            pid = self._answer(process, 120)["pid"]
            try:
                returncode = self._answer(process, timeout)["returncode"]
            except TimeoutError:
                os.kill(pid, signal.SIGKILL)
                self._answer(process, None)
                raise subprocess.TimeoutExpired(["run.py", *args], timeout) from None
            return subprocess.CompletedProcess(["run.py", *args], returncode, out.read_text(), err.read_text())

    def close(self) -> None:
        if self._process is not None:
            self._process.stdin.close()
            self._process.wait(timeout=60)
            self._process = None
