"""GLUE's metrics as functions of (predictions, references), with scikit-learn and scipy: the
``evaluate`` module beside this file computes them for the Trainer, and the report (without torch or
``evaluate``) for scores of chosen epochs and resampled examples (harness/report/protocols.py)."""

from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

METRICS = {
    "accuracy": lambda p, r: accuracy_score(r, p),
    "f1": lambda p, r: f1_score(r, p),
    "matthews_correlation": lambda p, r: matthews_corrcoef(r, p),
    "pearson": lambda p, r: pearsonr(p, r)[0],
    "spearmanr": lambda p, r: spearmanr(p, r)[0],
}
REGRESSION = {"pearson", "spearmanr"}
