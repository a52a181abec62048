"""The GLUE table in a project README, between markers, so that the copy a reader sees first is the
one ``make report`` just wrote and never a hand-pasted one that has fallen behind the runs.

    <!-- report:minilm -->
    ...replaced by every report of model minilm...
    <!-- /report:minilm -->

Only the text between a model's two markers changes; what is written around them stays the
author's (the reading of the numbers is prose, not generated).
"""

from __future__ import annotations

import re
from pathlib import Path

from harness.report.aggregate import completed
from harness.report.load import ReportError, RunRecord
from harness.report.render import MISSING, Table


def markers(model: str) -> tuple[str, str]:
    return f"<!-- report:{model} -->", f"<!-- /report:{model} -->"


def table_block(table: Table, runs: list[RunRecord], report_dir: str) -> str:
    """The report's GLUE table without the columns no run has reached yet, and where it came from."""
    empty = [c for c in table.md.columns if (table.md[c] == MISSING["md"]).all()]
    body = table.md.drop(columns=empty).to_markdown(index=False, disable_numparse=True)
    done = completed(runs)
    newest = max((r.result.env.created_at or "" for r in done), default="")
    source = (
        f"From the {len(done)} completed runs under `runs/` (newest: {newest[:16].replace('T', ' ') or 'unknown'}"
        f" UTC), as `make report` wrote it into `{report_dir}/glue_table.md` with its notes."
    )
    return f"{body}\n\n{source}"


def replace_block(path: Path, model: str, block: str) -> bool:
    """Put ``block`` between ``model``'s markers in ``path``; False when the file has no such markers.
    A file with one marker and not the other is refused rather than half-rewritten."""
    text = path.read_text(encoding="utf-8")
    start, end = markers(model)
    found = (start in text, end in text)
    if found == (False, False):
        return False
    if found != (True, True) or text.index(start) > text.index(end):
        raise ReportError(f"{path}: '{start}' and '{end}' must both appear, in that order")
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.DOTALL)
    updated = pattern.sub(lambda _: f"{start}\n{block}\n{end}", text, count=1)
    if updated != text:
        path.write_text(updated, encoding="utf-8")
    return True
