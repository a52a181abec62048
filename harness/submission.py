"""The GLUE server's submission format, and the command that zips one model's predictions.

Each task's test predictions are a file ``<Name>.tsv`` with a header ``index\\tprediction`` and
one row per test example. Entailment tasks are written with their label names, the others with
class ids; STS-B scores are clipped to the label range [0, 5]. MNLI's model also predicts the
diagnostic set AX (the hub's ``ax`` config, MNLI's columns). The server takes one zip with the
files at its root.

    python -m harness.submission runs/minilm/*/aflora/seed1 --out glue-minilm-aflora.zip
"""

from __future__ import annotations

import argparse
import logging
import sys
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.core.errors import print_user_error

log = logging.getLogger(__name__)

HEADER = "index\tprediction"
STSB_RANGE = (0.0, 5.0)
PREDICTIONS_DIR = "predictions"  # inside a run directory


@dataclass(frozen=True)
class TestFile:
    data_task: str  # the GLUE config whose data it predicts (AX: "ax")
    split: str
    file: str


# task -> the files its model writes, in the server's names.
TEST_FILES: dict[str, tuple[TestFile, ...]] = {
    "cola": (TestFile("cola", "test", "CoLA.tsv"),),
    "sst2": (TestFile("sst2", "test", "SST-2.tsv"),),
    "mrpc": (TestFile("mrpc", "test", "MRPC.tsv"),),
    "stsb": (TestFile("stsb", "test", "STS-B.tsv"),),
    "qnli": (TestFile("qnli", "test", "QNLI.tsv"),),
    "qqp": (TestFile("qqp", "test", "QQP.tsv"),),
    "rte": (TestFile("rte", "test", "RTE.tsv"),),
    "wnli": (TestFile("wnli", "test", "WNLI.tsv"),),
    "mnli": (
        TestFile("mnli", "test_matched", "MNLI-m.tsv"),
        TestFile("mnli", "test_mismatched", "MNLI-mm.tsv"),
        TestFile("ax", "test", "AX.tsv"),
    ),
}
ALL_FILES = [f.file for files in TEST_FILES.values() for f in files]

# The hub's class ids in order; the server wants these names for the entailment tasks.
LABEL_NAMES = {
    "rte": ("entailment", "not_entailment"),
    "qnli": ("entailment", "not_entailment"),
    "mnli": ("entailment", "neutral", "contradiction"),
}


def prediction_strings(task: str, predictions: np.ndarray) -> list[str]:
    """Class ids (or STS-B scores) as the server wants them written."""
    if task == "stsb":
        return [f"{x:.3f}" for x in np.clip(predictions, *STSB_RANGE)]
    names = LABEL_NAMES.get(task)
    return [names[int(x)] if names else str(int(x)) for x in predictions]


def write_tsv(path: Path, task: str, indices: Sequence[int], predictions: np.ndarray) -> None:
    if len(indices) != len(predictions):
        raise ValueError(f"{path}: {len(indices)} indices but {len(predictions)} predictions")
    rows = [f"{i}\t{p}" for i, p in zip(indices, prediction_strings(task, predictions), strict=True)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([HEADER, *rows]) + "\n")


def gather(run_dirs: Sequence[Path]) -> dict[str, Path]:
    """Server file name -> the prediction file of the run directory that wrote it."""
    found: dict[str, Path] = {}
    for run_dir in run_dirs:
        for path in sorted((Path(run_dir) / PREDICTIONS_DIR).glob("*.tsv")):
            if path.name not in ALL_FILES:
                continue
            if path.name in found:
                raise ValueError(f"{path.name} comes from two runs: {found[path.name].parent.parent} and {run_dir}")
            found[path.name] = path
    return found


def write_zip(out: Path, files: dict[str, Path]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".partial")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name in ALL_FILES:
            if name in files:
                zf.write(files[name], arcname=name)
    tmp.replace(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m harness.submission",
        description="Zip one model's GLUE test predictions (from `python -m harness.predict`) for the GLUE server.",
    )
    parser.add_argument("run_dirs", nargs="+", type=Path, help="run directories of one model, one per task")
    parser.add_argument("--out", type=Path, required=True, help="the zip to write")
    parser.add_argument("--partial", action="store_true", help="write the zip even if some tasks' files are missing")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    try:
        files = gather(args.run_dirs)
    except ValueError as err:
        return print_user_error(err)
    missing = [name for name in ALL_FILES if name not in files]
    if not files or (missing and not args.partial):
        print(
            f"error: no predictions for {', '.join(missing)} in the run directories given "
            f"(`python -m harness.predict <run_dir>` writes them; --partial zips what exists)",
            file=sys.stderr,
        )
        return 2
    write_zip(args.out, files)
    log.info(
        "wrote %s: %d of %d files%s", args.out, len(files), len(ALL_FILES), f"; missing {missing}" if missing else ""
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
