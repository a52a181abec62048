"""A report table as one object, and its three renderers: Markdown, LaTeX (booktabs), CSV.

A table builder computes once: the numbers (the CSV frame) and one row of cells per line of the
table. A cell is not text but a ``Cell``, a function of the output format ("md" or "tex") that
formats the computed values in that format (``cell(render.num, x, digits=2)``), so bold marks and
the ± sign come out right in each. The renderers (``Table.markdown``, ``Table.latex``,
``Table.write``) only lay the cells out. LaTeX is written here (not via pandas' Styler) to keep
the output exactly booktabs and to avoid a jinja2 dependency.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd

MISSING = {"md": "—", "tex": "--"}
PM = {"md": " ± ", "tex": r" $\pm$ "}
FLAG = {"md": "*", "tex": r"$^*$"}  # marks a ratio whose reference ran on another machine

_TEX_ESCAPES = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "±": r"$\pm$",
    "×": r"$\times$",
    "÷": r"$\div$",
    "Δ": r"$\Delta$",
    "—": "--",
    "−": "-",
    "†": r"$^\dagger$",
}


def tex_escape(text: str) -> str:
    return "".join(_TEX_ESCAPES.get(ch, ch) for ch in text)


def escape(text: str, fmt: str) -> str:
    """Free text (labels, machine names) as a cell: LaTeX-escaped, Markdown as is."""
    return text if fmt == "md" else tex_escape(text)


def md_escape(text: str) -> str:
    """Keep free text (error messages) on one table row."""
    return " ".join(text.split()).replace("|", r"\|")


def bold(text: str, fmt: str) -> str:
    return f"**{text}**" if fmt == "md" else rf"\textbf{{{text}}}"


def is_missing(x: float | None) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def num(x: float | None, fmt: str, digits: int = 2, is_best: bool = False) -> str:
    if is_missing(x):
        return MISSING[fmt]
    text = f"{x:.{digits}f}"
    return bold(text, fmt) if is_best else text


def mean_std(mean: float, std: float, fmt: str, is_best: bool = False) -> str:
    """'72.01 ± 0.53'; one seed has no std, so only the mean is shown."""
    text = num(mean, fmt, is_best=is_best)
    return text if is_missing(std) else text + PM[fmt] + f"{std:.2f}"


def count(x: float | None, fmt: str = "md") -> str:
    """Integer with thousands separators (exact parameter counts)."""
    return MISSING[fmt] if is_missing(x) else f"{round(x):,}"


def params_short(x: float | None, fmt: str = "md") -> str:
    """The paper's #Params style: 184M, 1.33M, 0.14M; below 10K in K so it never shows 0.00M."""
    if is_missing(x):
        return MISSING[fmt]
    if x >= 100e6:
        return f"{x / 1e6:.0f}M"
    if x >= 10e6:
        return f"{x / 1e6:.1f}M"
    if x >= 5e3:
        return f"{x / 1e6:.2f}M"
    return f"{x / 1e3:.1f}K"


def ratio(x: float | None, fmt: str, digits: int = 3, suffix: str = "") -> str:
    return MISSING[fmt] if is_missing(x) else f"{x:.{digits}f}{suffix}"


def times(x: float | None, fmt: str) -> str:
    """'9.5×' like the paper; below 1 two significant digits, so 0.014× never reads as 0.0×."""
    if is_missing(x):
        return MISSING[fmt]
    return (f"{x:.1f}" if x >= 1 else f"{x:.2g}") + ("×" if fmt == "md" else r"$\times$")


Cell = Callable[[str], str]  # a computed value's text in an output format, "md" or "tex"


def cell(formatter: Callable[..., str], *values: Any, **options: Any) -> Cell:
    """A cell that formats ``values`` with ``formatter(*values, fmt, **options)`` (the format comes
    after the values in every formatter here: ``num(x, fmt, digits)``, ``escape(text, fmt)``)."""
    return partial(formatter, *values, **options)


def text(value: str) -> Cell:
    """Free text (a label, a machine name), LaTeX-escaped in tex."""
    return cell(escape, value)


def plain(value: str) -> Cell:
    """Text that reads the same in both formats (a number already formatted, an empty cell)."""
    return lambda fmt: value


def missing() -> Cell:
    return MISSING.__getitem__


@dataclass
class Table:
    """One table: rows of cells, the numbers behind them (the CSV), a title and notes."""

    name: str  # file stem
    title: str
    rows: list[dict[str, Cell]]  # column -> cell, one dict per table line
    csv: pd.DataFrame  # numbers, not strings
    notes: list[str] = field(default_factory=list)  # shown under the table (Markdown syntax)
    columns: list[str] | None = None  # the columns' order, kept by a table without rows; None: the rows'

    @classmethod
    def of(
        cls,
        name: str,
        title: str,
        rows: list[dict[str, Cell]],
        csv: pd.DataFrame | list[dict],
        notes: list[str],
        columns: list[str] | None = None,
    ) -> Table:
        return cls(name, title, rows, pd.DataFrame(csv), notes, columns)

    @classmethod
    def from_rows(
        cls,
        name: str,
        title: str,
        cells: dict[str, list[dict[str, str]]],
        csv: pd.DataFrame | list[dict[str, object]],
        notes: list[str],
    ) -> Table:
        """From text already formatted per format ({"md": [...], "tex": [...]}, same shape): a
        builder that formats its cells itself."""
        rows = [
            {key: (lambda fmt, md=md[key], tex=tex[key]: md if fmt == "md" else tex) for key in md}
            for md, tex in zip(cells["md"], cells["tex"], strict=True)
        ]
        return cls.of(name, title, rows, csv, notes)

    def frame(self, fmt: str) -> pd.DataFrame:
        """The cells' text in ``fmt`` ("md" or "tex"), one column per key."""
        return pd.DataFrame([{key: make(fmt) for key, make in row.items()} for row in self.rows], columns=self.columns)

    @property
    def md(self) -> pd.DataFrame:
        return self.frame("md")

    @property
    def tex(self) -> pd.DataFrame:
        return self.frame("tex")

    def markdown(self) -> str:
        md = self.md
        # disable_numparse: tabulate would otherwise re-format numeric-looking cells ("1.000" -> "1").
        body = md.to_markdown(index=False, disable_numparse=True, colalign=_alignment(md)) if len(md) else "_No rows._"
        notes = "\n".join(f"- {n}" for n in self.notes)
        return body + ("\n\n" + notes if notes else "") + "\n"

    def document(self) -> str:
        """The Markdown file: the title as its heading, then the table."""
        return f"# {self.title}\n\n{self.markdown()}"

    def latex(self) -> str:
        return to_booktabs(self.tex, self.notes)

    def write(self, out_dir: Path) -> list[Path]:
        paths = [out_dir / f"{self.name}.{ext}" for ext in ("md", "csv", "tex")]
        paths[0].write_text(self.document(), encoding="utf-8")
        self.csv.to_csv(paths[1], index=False)
        paths[2].write_text(self.latex(), encoding="utf-8")
        return paths


_NUMERIC = re.compile(r"^(?:[-+]?[\d,]+(?:\.\d+)?[×KM*]?|—)$")


def _alignment(df: pd.DataFrame) -> list[str]:
    """Right-align columns whose cells are all plain numbers (or missing), like numbers in print."""
    return [
        "right" if all(_NUMERIC.match(str(v)) for v in df[c]) and not all(v == "—" for v in df[c]) else "left"
        for c in df.columns
    ]


def to_booktabs(df: pd.DataFrame, notes: list[str]) -> str:
    """A booktabs tabular to \\input; cells are already LaTeX, headers are escaped here."""
    align = "l" * min(2, len(df.columns)) + "c" * max(0, len(df.columns) - 2)
    lines = [f"% {n.replace('`', '').replace('**', '')}" for n in notes]  # notes as comments: keep the float clean
    lines += [
        rf"\begin{{tabular}}{{{align}}}",
        r"\toprule",
        " & ".join(tex_escape(str(c)) for c in df.columns) + r" \\",
        r"\midrule",
    ]
    lines += [" & ".join(str(v) for v in row) + r" \\" for row in df.itertuples(index=False)]
    lines += [r"\bottomrule", r"\end{tabular}", ""]
    return "\n".join(lines)
