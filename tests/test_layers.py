"""Package layers point one way (docs/architecture.md): read from every module's imports.

``aflora`` is a PEFT method: it imports torch, transformers and peft, never the harness or the
builders. The harness finds methods through the registry (``conf/method/*.yaml`` names the module),
so it never imports ``baselines`` either; ``baselines`` puts methods under the harness's contract.
``tools`` (the lent GPU machine's check) sits outside the installed packages and above them all.
No two modules share a file name, so a name says which module it is.

Inside the harness, its subpackages are layers, and a module imports only from its own layer or a
lower one: ``core`` <- ``config`` <- ``inputs`` <- ``storage`` <- ``execution`` <- ``studies`` <- the
commands at the top of ``harness/`` (``python -m harness.X``), ``report/`` and ``bench/``. The imports
that reach up today are listed in ``UPWARD`` with their reason; the list may only shrink.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.core.paths import REPO

# package -> the first-party packages it may import
ALLOWED = {
    "aflora": {"aflora"},
    "baselines": {"aflora", "baselines", "harness"},
    "harness": {"aflora", "harness"},
    "tools": {"harness", "tools"},  # the GPU machine's tooling uses the harness; nothing imports it
}
THIRD_PARTY_OF_AFLORA = {"torch", "transformers", "peft", "safetensors"}


def imports(path: Path) -> set[str]:
    """Top-level names of every module ``path`` imports (relative imports: its own package)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            names.add(path.relative_to(REPO).parts[0] if node.level else node.module.split(".")[0])
    return names


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def first_party_imports(path: Path) -> dict[str, int]:
    """Every harness module ``path`` imports, lazily or not (``from harness.x import y`` names
    ``harness.x.y`` when that is a module) -> the line of its first import."""
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found: dict[str, int] = {}
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    [*package.split(".")[: len(package.split(".")) - node.level + 1], *filter(None, [base])]
                )
            targets = [f"{base}.{a.name}" if _is_module(f"{base}.{a.name}") else base for a in node.names]
        else:
            continue
        for target in targets:
            if target.split(".")[0] == "harness":
                found.setdefault(target, node.lineno)
    return found


def _is_module(name: str) -> bool:
    path = REPO.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def modules(package: str) -> list[Path]:
    return sorted((REPO / package).rglob("*.py"))


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_first_party_imports_follow_the_layers(package):
    wrong = {
        str(path.relative_to(REPO)): sorted((imports(path) & set(ALLOWED)) - ALLOWED[package])
        for path in modules(package)
    }
    assert {k: v for k, v in wrong.items() if v} == {}


def test_no_two_modules_share_a_name():
    names: dict[str, list[str]] = {}
    for package in ALLOWED:
        for path in modules(package):
            if path.name not in ("__init__.py", "__main__.py"):
                names.setdefault(path.name, []).append(str(path.relative_to(REPO)))
    assert {name: paths for name, paths in names.items() if len(paths) > 1} == {}


def test_the_architecture_doc_lists_every_harness_module():
    doc = (REPO / "docs" / "architecture.md").read_text()
    parts = set((REPO / "harness").glob("*.py"))
    for package in LAYERS:
        parts |= set((REPO / "harness" / package).glob("*.py"))
    unlisted = sorted(p.name for p in parts if p.name != "__init__.py" and f"`{p.name}`" not in doc)
    assert unlisted == []


# The harness's layers, lowest first: a module may import its own layer and the ones below it.
LAYERS = ["core", "config", "inputs", "storage", "execution", "studies"]
TOP = len(LAYERS)  # the commands at the top of harness/ (python -m harness.X), report/ and bench/
COMMANDS = {"predict", "publish", "show", "study", "submission", "sweep", "token_lengths"}

# The imports that reach a higher layer today, (importing file, imported module): each one a reason.
UPWARD = {
    # The one check of a config, before any folder exists, asks the parts that own each rule.
    ("harness/config/validation.py", "harness.inputs.tasks"),  # task_spec: how the task's fields fit
    ("harness/config/validation.py", "harness.storage.identity"),  # run_subdir: the run directory's names
    ("harness/config/validation.py", "harness.execution.methods"),  # lazy: method_settings, the method's dataclass
    ("harness/config/schema.py", "harness.execution.optim"),  # lazy: OPTIMIZERS, the names train.optimizer takes
    # Run-directory files written by Trainer callbacks, which build on the execution's contracts.
    ("harness/storage/best_weights.py", "harness.execution.history"),  # best_and_final, per_epoch_records
    ("harness/storage/checkpoints.py", "harness.execution.distributed"),  # barrier
    ("harness/storage/checkpoints.py", "harness.execution.methods"),  # MethodCallback
    ("harness/storage/rundir.py", "harness.execution.methods"),  # MethodCallback
}


def layer(module: str) -> int:
    """The layer of ``harness.<part>[...]``; the top for the commands, report/ and bench/."""
    part = module.split(".")[1] if module.count(".") else ""
    return LAYERS.index(part) if part in LAYERS else TOP


def harness_imports() -> dict[tuple[str, str], int]:
    """(importing file, imported harness module) -> line, over every module of the harness."""
    found = {}
    for path in modules("harness"):
        for target, line in first_party_imports(path).items():
            found[(str(path.relative_to(REPO)), target)] = line
    return found


def test_every_harness_module_has_a_layer():
    """The top of harness/ holds the commands a user types (each runs as ``python -m harness.X``) and
    the report and bench packages; every other module sits in one of the layers."""
    top = {p.name for p in (REPO / "harness").iterdir() if p.name not in ("__init__.py", "__pycache__")}
    assert top == {f"{name}.py" for name in COMMANDS} | set(LAYERS) | {"report", "bench"}
    for name in COMMANDS:
        assert 'if __name__ == "__main__":' in (REPO / "harness" / f"{name}.py").read_text(), name


def test_harness_imports_follow_the_layer_order():
    upward = {
        f"{file}:{line} imports {target}"
        for (file, target), line in harness_imports().items()
        if layer(target) > layer(module_name(REPO / file)) and (file, target) not in UPWARD
    }
    assert sorted(upward) == []


def test_every_listed_upward_import_is_still_there():
    """An upward import that was removed leaves the list, so that the list says what is true."""
    assert sorted(UPWARD - harness_imports().keys()) == []
    assert all(layer(target) > layer(module_name(REPO / file)) for file, target in UPWARD)


def test_aflora_imports_nothing_but_torch_transformers_peft_and_the_standard_library():
    allowed = THIRD_PARTY_OF_AFLORA | {"aflora", "__future__"} | set(sys.stdlib_module_names)
    found = {str(p.relative_to(REPO)): sorted(imports(p) - allowed) for p in modules("aflora")}
    assert {k: v for k, v in found.items() if v} == {}


BLOCK_HARNESS = """
import importlib.abc, sys
class NoHarness(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("harness", "baselines"):
            raise ImportError(f"{name} is not on this path")
sys.meta_path.insert(0, NoHarness())
import torch
from peft import PeftModel, get_peft_model
from transformers import BertConfig, BertForSequenceClassification
import aflora
model = BertForSequenceClassification(BertConfig(hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                                                 intermediate_size=16, vocab_size=50))
config = aflora.AFLoraConfig(target_modules=["query", "intermediate.dense"], task_type="SEQ_CLS")
peft_model = get_peft_model(model, config)
freezer = aflora.AFLoraFreezer(peft_model, total_steps=10, t_i=1, t_f=2)
assert not any(m.startswith(("harness", "baselines")) for m in sys.modules), "harness was imported"
print(sum(p.numel() for n, p in peft_model.named_parameters() if "aflora_" in n))
"""


@pytest.mark.integration
def test_aflora_works_with_the_harness_absent(tmp_path):
    """``import aflora`` and its adapter and freezer need nothing of the harness: run in a process
    where importing ``harness`` or ``baselines`` fails."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-c", BLOCK_HARNESS], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    # query 8 -> 8 and intermediate 8 -> 16 at r = 4: A (4 x in), B (out x 4), d (4), b (out)
    assert int(proc.stdout.split()[-1]) == (4 * 8 + 8 * 4 + 4 + 8) + (4 * 8 + 16 * 4 + 4 + 16)
