"""Every third-party package the project imports is declared in pyproject.toml.

A package that arrives only as another package's dependency (safetensors through transformers,
pyarrow through datasets) disappears the day that package drops it, and the install breaks with an
ImportError far from its cause.
"""

import ast
import sys
from importlib.metadata import packages_distributions

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from harness.core.paths import REPO

# The standard library reads TOML from Python 3.11 on; the check needs one interpreter, not every one.
tomllib = pytest.importorskip("tomllib")

SOURCES = ["run.py", "aflora", "baselines", "harness", "tools", "tests"]
OWN_PACKAGES = {"run", "aflora", "baselines", "harness", "tools", "tests"}


def _declared() -> set[str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        requirements += extra
    return {canonicalize_name(Requirement(requirement).name) for requirement in requirements}


def _imported_modules() -> dict[str, str]:
    """Top-level name of each absolute third-party import -> one file that imports it."""
    files = []
    for source in SOURCES:
        path = REPO / source
        files += [path] if path.is_file() else sorted(path.rglob("*.py"))
    imported = {}
    for file in files:
        for node in ast.walk(ast.parse(file.read_text(), filename=str(file))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in OWN_PACKAGES:
                    imported.setdefault(top, str(file.relative_to(REPO)))
    return imported


def test_every_imported_package_is_declared():
    imported = _imported_modules()
    assert {"torch", "peft", "safetensors", "pytest"} <= imported.keys()  # the scan does find imports
    distributions = packages_distributions()
    declared = _declared()
    undeclared = []
    for module, file in sorted(imported.items()):
        provided_by = {canonicalize_name(name) for name in distributions.get(module, [])}
        if not provided_by & declared:
            undeclared.append(f"{module} (imported in {file}; installed from {sorted(provided_by) or 'nothing'})")
    assert not undeclared, "imported but not declared in pyproject.toml: " + "; ".join(undeclared)
