"""CLI: python -m harness.report --runs runs --out reports [--model minilm]; --paper only prints;
--study conf/study/<name>.yaml --out <dir>: a study's own report (report/study_report.py)."""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from pathlib import Path

from harness.core.errors import HarnessError, print_user_error
from harness.report.build import build_reports, paper_comparisons
from harness.report.load import ReportError
from harness.report.study_report import build_study_report


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m harness.report",
        description="Turn result.json files (runs/<model>/<task>/<method>/seed<seed>/) into the "
        "paper's tables (Markdown, CSV, LaTeX) and figures (PNG) under "
        "<out>/<model>/, with a README.md tying them together. Reads nothing but "
        "result.json files.",
    )
    p.add_argument(
        "--runs", type=Path, default=Path("runs"), help="directory searched recursively for result.json (default: runs)"
    )
    p.add_argument(
        "--out",
        type=Path,
        default=Path("reports"),
        help="output root; each model gets <out>/<model>/ (default: reports)",
    )
    p.add_argument(
        "--model",
        action="append",
        metavar="MODEL",
        help="model key as in result.json, e.g. minilm or deberta-v3-base; repeat for "
        "several (default: every model found)",
    )
    p.add_argument(
        "--paper",
        action="store_true",
        help="only print each model's comparison with the paper's published numbers (Markdown; make paper-tables): "
        "nothing is written, --out and the other outputs are ignored",
    )
    p.add_argument(
        "--study",
        type=Path,
        default=None,
        metavar="FILE",
        help="a study file (conf/study/<name>.yaml): write that study's own report into --out itself, from "
        "the runs its table stages name (the grid's rates, the fallback rule's moves) under both protocols; "
        "--runs, --model, --grid and --evidence are not used",
    )
    p.add_argument(
        "--grid",
        type=Path,
        default=None,
        help="a learning-rate grid's runs (.../seed<n>/train.lr=<value>/), shown as each model's lr_grid table",
    )
    p.add_argument(
        "--evidence",
        type=Path,
        action="append",
        default=[],
        metavar="DIR",
        help="other runs (the table's, archived ones; repeat for several) whose seeds of a grid point's exact "
        "config can rule its rate out when they fell below the probe",
    )
    p.add_argument(
        "--readme",
        type=Path,
        default=None,
        metavar="FILE",
        help="also write each model's GLUE table between its '<!-- report:MODEL -->' and "
        "'<!-- /report:MODEL -->' markers in FILE (make report: README.md)",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    command = shlex.join(["python", "-m", "harness.report", *argv])
    try:
        if args.study is not None:
            if not args.study.is_file():
                raise ReportError(f"{args.study}: no such study file (--study)")
            paths = build_study_report(args.study, args.out, command)
            print(f"{args.study}: wrote {len(paths)} files under {args.out}")
            return 0
        if args.paper:  # the committed report stays as `make report` wrote it
            print("\n".join(paper_comparisons(args.runs, args.model).values()), end="")
            return 0
        written = build_reports(args.runs, args.out, args.model, command, args.grid, tuple(args.evidence), args.readme)
    except HarnessError as err:  # schema and input errors: one line, no traceback
        return print_user_error(err)
    for model, paths in written.items():
        print(f"{model}: wrote {len(paths)} files under {args.out / model}")
        for path in paths:
            print(f"  {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
