"""Write every table, figure and the README of one model's report."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from harness.report.efficiency import params_table, runtime_summary_table, runtime_table
from harness.report.figures import all_figures
from harness.report.grid import evidence_frame, grid_choice_table, grid_frame, grid_table
from harness.report.load import ReportError, RunRecord, load_runs
from harness.report.precision import is_bf16_variant, precision_parity_table
from harness.report.readme import readme
from harness.report.readme_block import markers, replace_block, table_block
from harness.report.render import Table
from harness.report.study_tables import AFLORA_VARIANTS, ablation_table, floor_check_table, paired_table
from harness.report.tables import comparison_table, glue_table, runs_table

log = logging.getLogger(__name__)


def method_runs(runs: list[RunRecord]) -> list[RunRecord]:
    """The runs of the methods compared, without AFLoRA's variants and without the bf16 repeats of
    the precision check (a precision is a protocol's choice, not another method)."""
    return [r for r in runs if r.method not in AFLORA_VARIANTS and not is_bf16_variant(r)]


def model_tables(runs: list[RunRecord], model: str) -> dict[str, Table]:
    """All tables of one model's report, keyed by file stem. AFLoRA's variants (its ablations and
    its reference optimizer) appear in the ablation table, the paired comparisons and the runs list
    only, so the method tables compare methods."""
    methods = method_runs(runs)
    tables = [
        glue_table(methods, model),
        comparison_table(methods, model),
        params_table(methods, model),
        runtime_table(methods, model),
        runtime_summary_table(methods, model),
        floor_check_table(methods, model),
        paired_table(runs, model),
        ablation_table(runs, model),
        runs_table(runs, model),
    ]
    if any(is_bf16_variant(r) for r in runs):
        tables.append(precision_parity_table(runs, model))
    return {t.name: t for t in tables}


def build_model_report(
    runs: list[RunRecord],
    model: str,
    out_dir: Path,
    command: str,
    grid: pd.DataFrame | None = None,
    evidence: pd.DataFrame | None = None,
    project_readme: Path | None = None,
) -> list[Path]:
    """Write reports/<model>/: tables (md, csv, tex), figures/*.png, README.md. Returns paths.
    ``grid``: a learning-rate grid's runs (grid.grid_frame); its table joins when it has this model.
    ``evidence``: other runs (grid.evidence_frame) that can rule one of the grid's rates out.
    ``project_readme``: a file whose block for this model gets the GLUE table (readme_block.py)."""
    runs = [r for r in runs if r.model == model]
    out_dir.mkdir(parents=True, exist_ok=True)
    tables = model_tables(runs, model)
    if grid is not None and (grid["model"] == model).any():
        tables["lr_grid"] = grid_table(grid, model)
        if grid[grid["model"] == model]["task"].nunique() > 1:  # the rule reads more than one task
            tables["lr_choice"] = grid_choice_table(grid, model, evidence=evidence)
    paths = [p for t in tables.values() for p in t.write(out_dir)]
    figures = all_figures(method_runs(runs), model, out_dir / "figures")
    readme_path = out_dir / "README.md"
    readme_path.write_text(readme(model, runs, tables, figures, out_dir, command), encoding="utf-8")
    log.info("%s: wrote %d tables, %d figures", model, len(tables), len(figures))
    paths += [*figures, readme_path]
    if project_readme is not None:
        block = table_block(tables["glue_table"], runs, out_dir.as_posix())
        if replace_block(project_readme, model, block):
            paths.append(project_readme)
    return paths


def build_reports(
    runs_dir: Path,
    out_root: Path,
    models: list[str] | None,
    command: str,
    grid_dir: Path | None = None,
    evidence_dirs: tuple[Path, ...] = (),
    project_readme: Path | None = None,
) -> dict[str, list[Path]]:
    """Load every result.json under runs_dir (and a learning-rate grid's under grid_dir, with the runs
    under evidence_dirs that can rule its rates out) and write out_root/<model>/ for each model; with
    ``project_readme``, also each model's GLUE table into that file's block for it."""
    runs = load_runs(runs_dir)
    grid = grid_frame(grid_dir) if grid_dir is not None else None
    evidence = evidence_frame(list(evidence_dirs), {runs_dir: runs}) if grid is not None and evidence_dirs else None
    wanted = _wanted_models(runs_dir, runs, models)
    if project_readme is not None:
        _check_has_a_block(project_readme, wanted)
    return {m: build_model_report(runs, m, out_root / m, command, grid, evidence, project_readme) for m in wanted}


def paper_comparisons(runs_dir: Path, models: list[str] | None) -> dict[str, str]:
    """Each model's comparison with the paper's published numbers, as ``<model>/paper_comparison.md``
    holds it, from the runs alone: ``make paper-tables`` prints it and writes nothing."""
    runs = load_runs(runs_dir)
    texts = {}
    for model in _wanted_models(runs_dir, runs, models):
        table = comparison_table(method_runs([r for r in runs if r.model == model]), model)
        texts[model] = table.document()
    return texts


def _wanted_models(runs_dir: Path, runs: list[RunRecord], models: list[str] | None) -> list[str]:
    found = sorted({r.model for r in runs})
    unknown = [m for m in models or [] if m not in found]
    if unknown:
        raise ReportError(
            f"{runs_dir}: no result.json for model(s) {', '.join(unknown)} (found: {', '.join(found) or 'none'})"
        )
    return models or found


def _check_has_a_block(path: Path, models: list[str]) -> None:
    """Before anything is written: a README asked for must exist. One without a block for these
    models (runs of another model) is only warned about: the report itself is still wanted."""
    if not path.is_file():
        raise ReportError(f"{path}: no such file (--readme)")
    text = path.read_text(encoding="utf-8")
    if not any(markers(m)[0] in text for m in models):
        wanted = " or ".join(f"'{markers(m)[0]}'" for m in models)
        log.warning("%s: no %s block, so no GLUE table is written there", path, wanted)
