"""A study's own report (harness/report/study_report.py) on tiny runs that kept their predictions:
the held-out cells are the runs' own choice (result.json); the paper-protocol cells and the
bootstrap's difference are recomputed here by hand with scikit-learn from the kept predictions."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf
from sklearn.metrics import accuracy_score, f1_score

from harness.execution import lifecycle
from harness.inputs.heldout import heldout_indices
from harness.report.study_report import build_study_report
from harness.storage.epoch_predictions import read_predictions
from harness.studies.finished_runs import run_dir_of
from harness.study import study_runs
from tests.conftest import compose
from tests.glue_fixture import write_glue

METHODS = ["lora", "aflora"]
SEEDS = [1, 2]


def mrpc_score(predictions: np.ndarray, labels: np.ndarray) -> float:
    """The GLUE table's MRPC score (the paper's column: accuracy), in percent; the epoch is chosen on F1."""
    return 100 * accuracy_score(labels, predictions)


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory):
    """Two methods, two seeds, MRPC, held-out protocol with kept predictions: a study's table stage."""
    root = tmp_path_factory.mktemp("study-report")
    glue = write_glue(root / "glue", tasks=["mrpc"], n_eval=24)
    study = {
        "model": "tiny-bert",
        "seeds": SEEDS,
        "overrides": [
            "debug=default",
            f"data.dir={glue}",
            "data.protocol=heldout",
            "train.keep_predictions=true",
            "train.max_eval_samples=null",
            "train.epochs=3",
        ],
        "stages": {"table": {"tasks": ["mrpc"], "methods": METHODS, "runs_dir": str(root / "runs")}},
    }
    path = root / "study.yaml"
    path.write_text(OmegaConf.to_yaml(study))
    rng = np.random.default_rng(0)
    for run in study_runs(OmegaConf.create(study)):
        run_dir = run_dir_of(run.overrides)[0]
        assert lifecycle.run(compose(list(run.overrides)), run_dir) == 0
        # A tiny model on random text predicts one class at every epoch; predictions drawn here make
        # the protocols choose different epochs and the methods differ, so the checks below can fail.
        for kept_file in (run_dir / "epoch_predictions").glob("*/epoch*.npy"):
            np.save(kept_file, rng.integers(0, 2, size=len(np.load(kept_file))))
    return root, path


def run_dir(root, method: str, seed: int):
    return next((root / "runs").glob(f"tiny-bert/mrpc/{method}/seed{seed}/**/result.json")).parent


def result_of(root, method: str, seed: int) -> dict:
    return json.loads((run_dir(root, method, seed) / "result.json").read_text())


def kept(root, method: str, seed: int):
    """The run's predictions of the whole validation split, both halves back in place, and its labels."""
    parts = read_predictions(run_dir(root, method, seed))
    chosen, rest = heldout_indices(24, 12)
    labels = np.empty(24, dtype=int)
    labels[chosen], labels[rest] = parts["selection"].labels, parts["validation"].labels
    whole = {}
    for epoch in parts["selection"].by_epoch:
        whole[epoch] = np.empty(24, dtype=int)
        whole[epoch][chosen], whole[epoch][rest] = (
            parts["selection"].by_epoch[epoch],
            parts["validation"].by_epoch[epoch],
        )
    return parts, whole, labels


def test_the_study_report_scores_both_protocols_and_the_bootstrap_by_hand(study_dir):
    root, study_path = study_dir
    out = root / "report"
    build_study_report(study_path, out, "python -m harness.report --study study.yaml")
    heldout = pd.read_csv(out / "glue_table.csv").set_index("method")
    paper = pd.read_csv(out / "glue_table_paper_protocol.csv").set_index("method")
    bootstrap = pd.read_csv(out / "bootstrap_comparisons.csv")

    by_hand_paper, by_hand_heldout = {}, {}
    for method in METHODS:
        paper_scores, heldout_scores = [], []
        for seed in SEEDS:
            parts, whole, labels = kept(root, method, seed)
            paper_epoch = max(whole, key=lambda e: (f1_score(labels, whole[e]), -e))  # MRPC selects on F1
            paper_scores.append(mrpc_score(whole[paper_epoch], labels))
            select = parts["selection"]
            epoch = max(select.by_epoch, key=lambda e: (f1_score(select.labels, select.by_epoch[e]), -e))
            heldout_scores.append(parts["validation"].by_epoch[epoch])
        by_hand_paper[method] = np.mean(paper_scores)
        by_hand_heldout[method] = heldout_scores
        assert paper.loc[method, "mrpc_accuracy"] == pytest.approx(by_hand_paper[method])

    reported_labels = kept(root, "lora", 1)[0]["validation"].labels
    for method in METHODS:  # the held-out cells are each run's own choice, made while it trained
        recorded = [result_of(root, method, seed)["metrics"]["best"]["accuracy"] for seed in SEEDS]
        assert heldout.loc[method, "mrpc_accuracy"] == pytest.approx(100 * np.mean(recorded))
    row = bootstrap[(bootstrap["method"] == "aflora") & (bootstrap["other"] == "lora")].iloc[0]
    difference = np.mean([mrpc_score(p, reported_labels) for p in by_hand_heldout["aflora"]]) - np.mean(
        [mrpc_score(p, reported_labels) for p in by_hand_heldout["lora"]]
    )
    assert row["difference"] == pytest.approx(difference) and row["seeds"] == 2
    assert row["low"] <= row["difference"] <= row["high"]
    assert len({tuple(p) for m in METHODS for p in by_hand_heldout[m]}) > 1  # the check is not of constant outputs
    readme = (out / "README.md").read_text()
    assert "The same runs under the paper protocol" in readme and "Paired by example" in readme
