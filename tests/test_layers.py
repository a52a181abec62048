"""Package layers point one way (docs/architecture.md): read from every module's imports.

``aflora`` is a PEFT method: it imports torch, transformers and peft, never the harness or the
builders. The harness finds methods through the registry (``conf/method/*.yaml`` names the module),
so it never imports ``baselines`` either; ``baselines`` puts methods under the harness's contract.
``tools`` (the lent GPU machine's check) sits outside the installed packages and above them all.
No two modules share a file name, so a name says which module it is.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.paths import REPO

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
    parts = {p for p in (REPO / "harness").glob("*.py")} | set((REPO / "harness" / "config").glob("*.py"))
    unlisted = sorted(p.name for p in parts if p.name != "__init__.py" and f"`{p.name}`" not in doc)
    assert unlisted == []


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
