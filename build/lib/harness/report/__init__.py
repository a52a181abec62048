"""Report stage: result.json files -> the paper's tables and figures under reports/<model>/.

Entry point: ``python -m harness.report --runs runs --out reports [--model M] [--paper]``.
"""

from harness.report.build import build_model_report, build_reports, model_tables
from harness.report.figures import freeze_matrix, mean_freeze_matrix
from harness.report.load import ReportError, load_runs, parse_result

__all__ = [
    "ReportError",
    "build_model_report",
    "build_reports",
    "freeze_matrix",
    "load_runs",
    "mean_freeze_matrix",
    "model_tables",
    "parse_result",
]
