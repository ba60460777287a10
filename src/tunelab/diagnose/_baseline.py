"""The expert's reference point: what a quick standard model reaches on the same split.

"Underfitting" means nothing without a reference: 0.76 is poor on digits, where a linear model
reaches 0.95, and fine on a noisy 3-class CSV where nothing does better than 0.6. Before
judging a network, the doctor fits in about a second (../shared/DIAGNOSIS-HEURISTICS.md: "A
baseline is the expert's reference point"):

- tables: a standardised linear model (logistic regression / ridge) and a small histogram
  gradient-boosted model (scikit-learn); the better validation score is the reference;
- images (more than 2 dimensions): a linear model on the flattened pixels.

Scores are accuracy (classification) or R² (regression) on the validation rows, so they sit on
the same 0..1 scale as the network's validation score. Training rows are subsampled to
``MAX_ROWS`` so the baseline stays cheap on large data sets.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

MAX_ROWS = 4000
MIN_VAL_ROWS = 10


@dataclass
class Baseline:
    """The best quick model's validation score, and every model's."""

    model: str
    score: float
    metric: str
    scores: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    val_rows: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def quick_baseline(
    X_train: Any,
    y_train: Any,
    X_val: Any,
    y_val: Any,
    *,
    task: str = "classification",
    seed: int = 0,
    max_rows: int = MAX_ROWS,
) -> Baseline | None:
    """Fit the reference models on the training split and score them on validation.

    Returns None when there is nothing to compare with (no validation rows, one class, or the
    data cannot be fitted by scikit-learn as given).

    >>> import numpy as np
    >>> X = np.random.default_rng(0).normal(size=(300, 4)); y = (X[:, 0] > 0).astype(int)
    >>> b = quick_baseline(X[:200], y[:200], X[200:], y[200:])
    >>> b.score > 0.9, b.metric
    (True, 'accuracy')
    """
    if X_val is None or y_val is None or len(X_val) < MIN_VAL_ROWS:
        return None
    started = time.perf_counter()
    Xtr, Xva = _table(X_train), _table(X_val)
    ytr, yva = _target(y_train, task), _target(y_val, task)
    if len(Xtr) > max_rows:
        keep = np.random.default_rng(seed).choice(len(Xtr), max_rows, replace=False)
        Xtr, ytr = Xtr[keep], ytr[keep]
    if task == "classification" and len(np.unique(ytr)) < 2:
        return None
    image = np.asarray(X_train).ndim > 2
    scores: dict[str, float] = {}
    from threadpoolctl import threadpool_limits

    for name, model in _models(task, image, seed):
        try:
            # One thread: on a shared machine more only spin (0.35 s for digits' HGB).
            with warnings.catch_warnings(), threadpool_limits(1):
                warnings.simplefilter("ignore")
                model.fit(Xtr, ytr)
                scores[name] = float(model.score(Xva, yva))
        except Exception:  # a model that cannot fit these data gives no reference
            continue
    if not scores:
        return None
    best = max(scores, key=scores.get)
    return Baseline(
        best,
        scores[best],
        "accuracy" if task == "classification" else "r2",
        scores,
        time.perf_counter() - started,
        len(Xva),
    )


def _table(X: Any) -> np.ndarray:
    arr = np.asarray(X.detach().cpu().numpy() if hasattr(X, "detach") else X, dtype=np.float64)
    return arr.reshape(len(arr), -1)


def _target(y: Any, task: str) -> np.ndarray:
    arr = np.asarray(y.detach().cpu().numpy() if hasattr(y, "detach") else y)
    if task == "classification":
        if arr.ndim > 1 and arr.shape[1] > 1:
            arr = arr.argmax(axis=1)
        return arr.reshape(-1).astype(np.int64)
    return (
        arr.reshape(len(arr), -1).astype(np.float64).squeeze(-1)
        if arr.ndim > 1 and (arr.shape[1] == 1)
        else arr.astype(np.float64)
    )


def _models(task: str, image: bool, seed: int) -> list[tuple[str, Any]]:
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    def linear(model: Any) -> Any:
        return make_pipeline(SimpleImputer(), StandardScaler(), model)

    classify = task == "classification"
    models = [("linear model", linear(LogisticRegression(max_iter=300) if classify else Ridge()))]
    if not image:
        boosting = HistGradientBoostingClassifier if classify else HistGradientBoostingRegressor
        models.append(
            (
                "gradient boosting",
                boosting(max_iter=40, max_leaf_nodes=15, early_stopping=False, random_state=seed),
            )
        )
    return models
