"""``check_data``: NaN/inf, scaling, constant columns, class balance and train/val leakage."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from tunelab.diagnose import check_data
from tunelab.errors import DataError

from .zoo import dataset


def _by_kind(findings):
    return {f.kind: f for f in findings}


def test_exact_duplicates_between_train_and_val_are_leakage():
    Xtr, ytr, Xva, yva = dataset("digits")
    Xl = np.concatenate([Xva[:200], Xtr[:100]])
    yl = np.concatenate([yva[:200], ytr[:100]])
    leak = _by_kind(check_data(Xtr, ytr, Xl, yl))["data_leakage"]
    assert leak.severity == "warning"
    assert leak.figures["exact_share"] == pytest.approx(100 / 300)
    assert "33.3%" in leak.evidence


def test_near_duplicates_are_leakage_too():
    Xtr, ytr, Xva, _ = dataset("breast_cancer")
    noisy = Xtr[:60] + np.random.default_rng(1).normal(0, 0.01, Xtr[:60].shape)
    leak = _by_kind(check_data(Xtr, ytr, np.concatenate([Xva, noisy]), None))["data_leakage"]
    assert leak.is_problem
    assert leak.figures["exact_share"] == 0.0 and leak.figures["near_share"] > 0.2


def test_a_copied_validation_set_is_an_error():
    Xtr, ytr, _, _ = dataset("wine")
    leak = _by_kind(check_data(Xtr, ytr, Xtr[:40], ytr[:40]))["data_leakage"]
    assert leak.severity == "error"


def test_natural_repeats_on_a_coarse_grid_are_not_leakage():
    # Iris is measured to 0.1 cm: a few rows repeat inside the training set as well.
    Xtr, ytr, Xva, yva = dataset("iris", scaled=False)
    found = _by_kind(check_data(Xtr, ytr, Xva, yva))
    assert "data_leakage" not in found or not found["data_leakage"].is_problem


def test_leakage_against_the_test_split_is_checked():
    Xtr, ytr, Xva, yva = dataset("moons")
    found = check_data(Xtr, ytr, Xva, yva, X_test=Xtr[:50])
    assert [f.figures["split"] for f in found if f.kind == "data_leakage"] == ["test"]


def test_nan_and_inf_are_errors_naming_the_columns():
    Xtr, ytr, Xva, yva = dataset("wine")
    Xtr, Xva = Xtr.copy(), Xva.copy()
    Xtr[3, 2] = np.nan
    Xva[0, 7] = np.inf
    f = _by_kind(check_data(Xtr, ytr, Xva, yva))["nan_or_inf_data"]
    assert f.severity == "error"
    assert f.figures["counts"] == {"X_train": 1, "X_val": 1}
    assert f.figures["columns"] == [2, 7]


def test_nan_targets_are_found():
    Xtr, ytr, Xva, yva = dataset("diabetes")
    ytr = ytr.copy()
    ytr[:3] = np.nan
    f = _by_kind(check_data(Xtr, ytr, Xva, yva, task="regression"))["nan_or_inf_data"]
    assert f.figures["counts"] == {"y_train": 3}


def test_one_dominant_feature_is_unscaled():
    Xtr, ytr, Xva, yva = dataset("wine", scaled=False)
    f = _by_kind(check_data(Xtr, ytr, Xva, yva))["unscaled_inputs"]
    assert f.severity == "warning"
    assert f.figures["max_over_median"] > 50
    assert f.config_change == {"data.scale": "standard"}


def test_raw_8_bit_images_are_unscaled_per_channel():
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (200, 3, 8, 8)).astype(np.float32)
    y = rng.integers(0, 4, 200)
    f = _by_kind(check_data(X[:150], y[:150], X[150:], y[150:]))["unscaled_inputs"]
    assert f.figures["features"] == 3  # one per channel
    assert f.severity == "warning"


def test_some_constant_columns_are_info_all_constant_is_an_error():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(100, 5))
    X[:, 1] = 0.0
    some = _by_kind(check_data(X, rng.integers(0, 2, 100)))["constant_features"]
    assert some.severity == "info" and some.figures["columns"] == [1]
    every = _by_kind(check_data(np.zeros((100, 5)), rng.integers(0, 2, 100)))["constant_features"]
    assert every.severity == "error"


def test_imbalance_ratio_follows_sagemaker_threshold():
    y = np.array([0] * 190 + [1] * 10)
    X = np.random.default_rng(0).normal(size=(200, 3))
    f = _by_kind(check_data(X, y))["class_imbalance"]
    assert f.severity == "warning" and f.figures["ratio"] == pytest.approx(19)
    assert f.config_change == {"train.class_weights": "balanced"}
    mild = _by_kind(check_data(X, np.array([0] * 140 + [1] * 60)))
    assert "class_imbalance" not in mild


def test_class_missing_from_training_is_reported():
    X = np.random.default_rng(0).normal(size=(60, 3))
    found = check_data(X[:40], np.arange(40) % 2, X[40:], np.arange(20) % 3)
    assert any(f.kind == "class_imbalance" and "never in training" in f.evidence for f in found)


def test_regression_targets_are_not_judged_for_balance():
    X = np.random.default_rng(0).normal(size=(100, 3))
    y = np.r_[np.zeros(95), np.ones(5)]
    assert not [f for f in check_data(X, y, task="regression") if f.kind == "class_imbalance"]


def test_torch_tensors_and_string_labels_are_accepted():
    X = torch.randn(50, 3)
    labels = np.array(["cat"] * 48 + ["dog"] * 2)
    assert "class_imbalance" in _by_kind(check_data(X, labels))


def test_bad_inputs_are_one_line_data_errors():
    with pytest.raises(DataError, match="y_train has 3 rows but its X has 4"):
        check_data(np.zeros((4, 2)), np.zeros(3))
    with pytest.raises(DataError, match="X_val has 3 features per row, X_train has 2"):
        check_data(np.zeros((4, 2)), np.zeros(4), np.zeros((2, 3)), np.zeros(2))
    with pytest.raises(DataError, match="task must be classification or regression"):
        check_data(np.zeros((4, 2)), np.zeros(4), task="ranking")


def test_check_data_is_fast_on_a_larger_table():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30000, 40)).astype(np.float32)
    y = rng.integers(0, 5, 30000)
    started = time.perf_counter()
    found = check_data(X[:24000], y[:24000], X[24000:], y[24000:])
    assert time.perf_counter() - started < 10
    assert not [f for f in found if f.is_problem]


def _oversampled(rng: np.random.Generator, rows: int = 600) -> tuple[np.ndarray, np.ndarray]:
    """Continuous rows, 20% positives, the positives copied three more times."""
    X = rng.normal(size=(rows, 8)).astype(np.float32)
    y = (rng.random(rows) < 0.2).astype(np.int64)
    idx = np.concatenate([np.arange(rows), np.repeat(np.flatnonzero(y == 1), 3)])
    return X[idx], y[idx]


def test_rows_copied_before_the_split_are_leakage_though_training_repeats_as_often():
    # Oversampling the minority before splitting puts copies on both sides: about as many
    # validation rows copy a training row as training rows copy each other, which natural
    # duplicates would explain, but no column of continuous measurements repeats by chance.
    rng = np.random.default_rng(0)
    X, y = _oversampled(rng)
    order = rng.permutation(len(X))
    tr, va = order[:800], order[800:]
    leak = _by_kind(check_data(X[tr], y[tr], X[va], y[va]))["data_leakage"]
    assert leak.is_problem
    assert leak.figures["train_rows_copied"] is True
    assert leak.figures["train_exact_share"] > 0.2
    assert leak.figures["train_chance_repeat_share"] < 0.01
    assert "copied" in leak.evidence


def test_oversampling_after_the_split_is_not_leakage():
    rng = np.random.default_rng(1)
    Xtr, ytr = _oversampled(rng)
    Xva = rng.normal(size=(200, 8)).astype(np.float32)
    yva = (rng.random(200) < 0.2).astype(np.int64)
    assert "data_leakage" not in _by_kind(check_data(Xtr, ytr, Xva, yva))


def test_codes_that_repeat_by_chance_are_not_copies():
    # Six quantile bins a column: rows repeat naturally, on both sides of a random split.
    rng = np.random.default_rng(2)
    X = rng.integers(0, 6, size=(3000, 4)).astype(np.float32)
    y = (X.sum(axis=1) > 10).astype(np.int64)
    found = _by_kind(check_data(X[:2400], y[:2400], X[2400:], y[2400:]))
    leak = found.get("data_leakage")
    assert leak is None or not leak.is_problem
    if leak is not None:
        assert leak.figures["train_rows_copied"] is False
