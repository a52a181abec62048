"""Every test that starts or kills a process (run.py, torchrun, a pool of runs, a SIGKILL) is marked
``integration``, so that ``pytest -m "not slow and not integration"`` runs the in-process tests
alone (README, "Tests")."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent
# Functions and fixtures that start another process (tests/conftest.py, harness/studies/pool.py,
# tools/gpu_check/jobs.py, tests/test_scale.py); any call into ``subprocess``, and
# ``os.kill``/``os.killpg``, count as well.
SPAWNERS = {"run_cli", "warm_cli", "run_all", "run_pool", "_run_group"}


def _called_names(node: ast.AST) -> set[str]:
    names = set()
    for call in (n for n in ast.walk(node) if isinstance(n, ast.Call)):
        func = call.func
        if isinstance(func, ast.Name):
            names.add(func.id)
        elif isinstance(func, ast.Attribute):
            base = func.value.id if isinstance(func.value, ast.Name) else ""
            if base == "subprocess" or (base == "os" and func.attr in ("kill", "killpg")):
                names.add(f"{base}.{func.attr}")
            names.add(func.attr)
    return names


def spawning_tests(source: str) -> dict[str, bool]:
    """{test name: marked integration} for the module's tests that start or kill a process,
    themselves, through a module-level helper, or through a fixture of the module."""
    functions = {n.name: n for n in ast.parse(source).body if isinstance(n, ast.FunctionDef)}
    spawns = set(SPAWNERS)
    changed = True
    while changed:  # helpers and fixtures that call (or take as fixture) what spawns
        changed = False
        for name, node in functions.items():
            uses = _called_names(node) | {a.arg for a in node.args.args}
            if name not in spawns and any(u in spawns or u.startswith(("subprocess.", "os.kill")) for u in uses):
                spawns.add(name)
                changed = True
    return {
        name: any(ast.unparse(d) == "pytest.mark.integration" for d in node.decorator_list)
        for name, node in functions.items()
        if name.startswith("test_") and name in spawns
    }


def test_every_test_that_starts_a_process_is_marked_integration():
    found = {}
    for path in sorted(TESTS.glob("test_*.py")):
        for name, marked in spawning_tests(path.read_text()).items():
            found[f"{path.name}::{name}"] = marked
    assert len(found) >= 20  # run.py, torchrun, the GPU check's dry run, SIGKILL: the check does find them
    assert not [name for name, marked in found.items() if not marked]


def test_the_check_sees_helpers_and_fixtures():
    source = """
import subprocess, pytest
def helper():
    return subprocess.run(["true"])
@pytest.fixture
def fixture_that_runs(tmp_path):
    return helper()
def test_direct():
    run_cli(["task=rte"], None)
@pytest.mark.integration
def test_through_a_fixture(fixture_that_runs):
    pass
def test_in_process():
    assert 1 + 1 == 2
"""
    assert spawning_tests(source) == {"test_direct": False, "test_through_a_fixture": True}
