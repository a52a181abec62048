"""make report writes each model's GLUE table into the project README, between that model's markers."""

from __future__ import annotations

import pytest

from harness.core.errors import USER_ERROR
from harness.report.__main__ import main
from harness.report.load import ReportError
from harness.report.readme_block import replace_block
from tests.test_report import MODEL, result, write

AROUND = "# Project\n\nProse before.\n\n{block}\n\nThe reading, by hand.\n"


def readme_with(tmp_path, block: str):
    path = tmp_path / "README.md"
    path.write_text(AROUND.format(block=block))
    return path


def test_the_block_is_the_reports_table_without_empty_columns_and_the_rest_is_kept(tmp_path, capsys):
    runs = tmp_path / "runs"
    write(runs, result("rte", "lora", 1, {"accuracy": 0.70}))
    write(runs, result("rte", "lora", 2, {"accuracy": 0.72}))
    write(
        runs, result("stsb", "aflora", 1, {"pearson": 0.91}, env={"device": "cpu", "created_at": "2026-11-29T09:30:05"})
    )
    readme = readme_with(tmp_path, f"<!-- report:{MODEL} -->\nan old, hand-pasted table\n<!-- /report:{MODEL} -->")
    argv = ["--runs", str(runs), "--out", str(tmp_path / "reports"), "--readme", str(readme)]
    assert main(argv) == 0
    text = readme.read_text()
    assert text.startswith("# Project\n\nProse before.\n\n") and text.endswith("\n\nThe reading, by hand.\n")
    block = text.split(f"<!-- report:{MODEL} -->\n")[1].split(f"\n<!-- /report:{MODEL} -->")[0]
    header = [cell.strip() for cell in block.splitlines()[0].strip("|").split("|")]
    assert header == ["Method", "#Params", "STS-B", "RTE", "Avg"]  # CoLA, SST-2, MRPC, ... have no run
    rows = {line.split("|")[1].strip(): line for line in block.splitlines()[2:] if line.startswith("|")}
    assert "**71.00** ± 1.41 (n=2)" in rows["LoRA r=8"]  # mean and sample std of 70 and 72, best in bold
    assert "an old, hand-pasted table" not in text
    assert "From the 3 completed runs under `runs/` (newest: 2026-11-29 09:30 UTC)" in block
    assert str(readme) in capsys.readouterr().out  # listed with the files written
    assert main(argv) == 0 and readme.read_text() == text  # a second report changes nothing


def test_a_readme_without_the_models_block_is_left_alone(tmp_path):
    runs = tmp_path / "runs"
    write(runs, result("rte", "lora", 1, {"accuracy": 0.70}))
    readme = readme_with(tmp_path, "<!-- report:another-model -->\n<!-- /report:another-model -->")
    before = readme.read_text()
    assert main(["--runs", str(runs), "--out", str(tmp_path / "reports"), "--readme", str(readme)]) == 0
    assert readme.read_text() == before
    assert not replace_block(readme, MODEL, "table")


@pytest.mark.parametrize("block", [f"<!-- report:{MODEL} -->", f"<!-- /report:{MODEL} -->\n<!-- report:{MODEL} -->"])
def test_a_broken_pair_of_markers_is_refused_and_the_file_kept(tmp_path, block):
    readme = readme_with(tmp_path, block)
    before = readme.read_text()
    with pytest.raises(ReportError, match="must both appear, in that order"):
        replace_block(readme, MODEL, "table")
    assert readme.read_text() == before


def test_a_missing_readme_is_one_line_before_anything_is_written(tmp_path, capsys):
    runs = tmp_path / "runs"
    write(runs, result("rte", "lora", 1, {"accuracy": 0.70}))
    out = tmp_path / "reports"
    assert main(["--runs", str(runs), "--out", str(out), "--readme", str(tmp_path / "NOPE.md")]) == USER_ERROR
    assert capsys.readouterr().err == f"error: {tmp_path / 'NOPE.md'}: no such file (--readme)\n"
    assert not out.exists()
