"""The manifest a checkpoint's completion marker holds: every file of the checkpoint, its size and
its sha256, as they were when the checkpoint was marked complete.

The Trainer resumes from whichever of its files are present and skips the others without a word
(no ``optimizer.pt``: a fresh optimizer; no ``rng_state.pth``: other random draws), and the
methods' callbacks do the same for their state. A file lost after the mark (a manual clean-up, a
partial copy between machines) would then change the run's numbers silently. The manifest makes
such a checkpoint detectably incomplete before the resume reads any of it.

Markers written before manifests hold only the step number (``"12\\n"``): ``read_manifest``
returns None for them, and the caller keeps its older checks.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from harness.storage.results import write_json_atomic

MARKER = "checkpoint-complete"


def _sha256(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _files(checkpoint: Path) -> list[Path]:
    """Every file below ``checkpoint`` but the marker and the temporary files of its atomic write."""
    return sorted(
        p for p in checkpoint.rglob("*") if p.is_file() and p.name != MARKER and not p.name.startswith(f".{MARKER}.")
    )


def write_manifest(checkpoint: Path, step: int) -> None:
    """Mark ``checkpoint`` complete: the marker lists every file it holds now (atomic: a marker is
    either whole or absent)."""
    files = {
        p.relative_to(checkpoint).as_posix(): {"bytes": p.stat().st_size, "sha256": _sha256(p)}
        for p in _files(checkpoint)
    }
    write_json_atomic(checkpoint / MARKER, {"step": step, "files": files})


class UnreadableManifest(ValueError):
    """The marker is neither a step number (before manifests) nor a manifest."""


def read_manifest(checkpoint: Path) -> dict[str, dict] | None:
    """``{relative path: {"bytes", "sha256"}}``; None for a marker from before manifests."""
    text = (checkpoint / MARKER).read_text()
    if text.strip().isdigit():
        return None
    try:
        files = json.loads(text)["files"]
    except (ValueError, KeyError, TypeError) as err:
        raise UnreadableManifest(f"its {MARKER} marker is not a manifest ({type(err).__name__})") from None
    if not isinstance(files, dict) or not all(isinstance(v, dict) for v in files.values()):
        raise UnreadableManifest(f"its {MARKER} marker is not a manifest (no file list)")
    return files


def missing(names: list[str]) -> str:
    """``a, b are missing``: one phrase for every message about missing checkpoint files."""
    return f"{', '.join(names)} {'is' if len(names) == 1 else 'are'} missing"


def manifest_problems(checkpoint: Path, files: dict[str, dict]) -> str | None:
    """What differs from the manifest, in a few words naming the files (None: nothing)."""
    absent = [name for name in files if not (checkpoint / name).is_file()]
    if absent:
        return f"{missing(absent)} (listed in its manifest)"
    for name, expected in files.items():
        path = checkpoint / name
        size = path.stat().st_size
        if size != expected.get("bytes"):
            return f"{name} is damaged ({size} bytes, its manifest says {expected.get('bytes')})"
        if _sha256(path) != expected.get("sha256"):
            return f"{name} is damaged (its sha256 differs from its manifest's)"
    return None
