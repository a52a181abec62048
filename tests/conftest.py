from __future__ import annotations

import copy
import functools
import gc
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.core.paths import REPO
from tests import gpu_dry_run
from tests.glue_fixture import write_glue
from tests.warm_run import Starter, cli_env

# Everything here is local: never wait on hub look-ups.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


# The GPU check's dry run (tests/gpu_dry_run.py): named by the session's first process, started once
# by the first process whose collection needs it, stopped by the first process at the end. Under
# pytest-xdist the first process is the controller, which collects nothing and ends after every
# worker; each worker collects every test, yet runs only the ones the controller sends it.


def _xdist_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def pytest_configure(config: pytest.Config) -> None:
    if not _xdist_worker(config):  # before the workers start: they inherit the name
        gpu_dry_run.name_folder()


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reports the collection: no test is sent before this ends
def pytest_collection_finish(session: pytest.Session) -> None:
    """Start the GPU check's dry run now if a collected test needs it (tests/gpu_dry_run.py says why).
    Every xdist worker gets here, not knowing which of them will run those tests: the first one
    starts it, the others find it started, and whichever runs the tests waits on its folder."""
    if session.config.option.collectonly:
        return
    if any("dry_run" in getattr(item, "fixturenames", ()) for item in session.items):
        gpu_dry_run.start()
    freeze_what_is_imported()


def freeze_what_is_imported() -> None:
    """Keep the garbage collector from walking, at each full collection, the half million objects
    that importing torch, transformers, peft and the test modules left (gc.freeze: they stay; what
    the tests create later is collected as before). A full collection took 0.3 CPU s here, and the
    tests meet many: accelerate collects at each Trainer.train, and Python whenever allocations pile
    up. Three files' 202 tests spent 15.3 CPU s in them, 3.9 s with the imports frozen."""
    gc.collect()  # what is garbage now is not kept
    gc.freeze()


# Files that compose the same command lines, sent to one xdist process so that compose's cache
# composes each once: test_baselines_recipes.py composes 48 DeBERTaV3 recipes that test_config.py's
# covering set composes too (a fifth of a CPU second each; 209 compositions together, 263 apart).
RUN_TOGETHER = {"tests/test_baselines_recipes.py": "tests/test_config.py"}


@pytest.hookimpl(optionalhook=True)  # a hook of pytest-xdist: unknown without it (pytest -p no:xdist)
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """``--dist loadfile`` (`make test`), with the files of RUN_TOGETHER as one unit of work."""
    from xdist.scheduler import LoadFileScheduling

    if config.getoption("dist") != "loadfile":
        return None

    class LoadFileTogether(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            file = super()._split_scope(nodeid)
            return RUN_TOGETHER.get(file, file)

    return LoadFileTogether(config, log)


def pytest_sessionfinish(session: pytest.Session) -> None:
    if _xdist_worker(session.config):
        gpu_dry_run.reap()  # another worker may still wait on it: the controller stops it
    else:
        gpu_dry_run.stop()


@pytest.fixture(autouse=True, scope="session")
def one_thread():
    """Tiny models gain nothing from intra-op threads, and on a shared 2-core machine the thread
    hand-offs cost far more than the work (tens of times slower): one thread for the suite."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def warm_cli():
    """``warm_cli(args, glue, timeout=300, prelude="")``: ``python run.py <args>`` in a process forked
    from a starter that has imported the libraries (tests/warm_run.py), a CompletedProcess as
    ``run_cli`` returns; 6 CPU seconds less a run."""
    starter = Starter()
    yield starter.run
    starter.close()


@pytest.fixture(scope="session")
def glue_dir(tmp_path_factory) -> Path:
    """Every GLUE task (MNLI with both validation splits), a few dozen random examples each."""
    return write_glue(tmp_path_factory.mktemp("glue"))


@pytest.fixture(scope="session")
def shared_glue() -> Path:
    """The real GLUE copy of these machines (GLUE_DIR or ../shared/glue), else skip."""
    candidates = [os.environ.get("GLUE_DIR"), str(REPO.parent / "shared" / "glue")]
    for c in candidates:
        if c and (Path(c) / "rte").is_dir():
            return Path(c)
    pytest.skip("no local GLUE copy (set GLUE_DIR)")


def compose(overrides: list[str]):
    """The config run.py would get for these overrides (Hydra initialised once per session): a copy
    of this process's one composition of them. The in-process tests composed 722 times, at a fifth
    of a CPU second each, and a third of those command lines had been composed before; conf/ and the
    schema do not change while the suite runs, and GLUE_DIR is read when data.dir is, not here."""
    return copy.deepcopy(_composed(_cache_key(overrides)))


def _cache_key(overrides: list[str]) -> tuple[str, ...]:
    """One key for a command line written in any order: Hydra applies each key's override once, so
    the order matters only between two overrides of the same key (those keep theirs)."""
    keys = [o.split("=", 1)[0].lstrip("+~") for o in overrides]
    return tuple(sorted(overrides)) if len(set(keys)) == len(keys) else tuple(overrides)


@functools.cache
def _composed(overrides: tuple[str, ...]):
    from harness.config.compose import run_config

    return run_config(overrides)


def run_cli(args: list[str], glue: Path | None, timeout: int = 300) -> subprocess.CompletedProcess:
    """``python run.py <args>`` in a fresh interpreter, as a user would type it (``warm_cli``: the
    same from a starter that has imported the libraries, for tests not about the command line)."""
    return subprocess.run(
        [sys.executable, str(REPO / "run.py"), *args],
        cwd=REPO,
        env=cli_env(glue),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_dir_of(runs: Path, model: str, task: str, method: str, seed: int = 1) -> Path:
    """The one run directory below ``<runs>/<model>/<task>/<method>/seed<seed>`` (overrides outside
    the standard axes add a folder named after them: harness/storage/identity.py)."""
    seed_dir = runs / model / task / method / f"seed{seed}"
    found = {p.parent for name in ("result.json", "fingerprint.json") for p in seed_dir.rglob(name)}
    found = {p for p in found if not p.name.startswith(("previous-", "damaged-"))}
    assert len(found) == 1, f"expected one run directory below {seed_dir}, found {sorted(found)}"
    return found.pop()


def wait_for(condition, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds  # a guard against a hang, not a measurement
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.2)
