"""Train/val/test splits: sizes, stratification, seeds; k-fold iterators for cross-validation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tunelab.config import SplitConfig
from tunelab.data import DataBundle, kfold_splits, prepare_data
from tunelab.data._split import split_positions

from .data_helpers import config


def test_split_sizes_follow_the_fractions():
    bundle = prepare_data(config(dataset="digits", split={"val": 0.2, "test": 0.1}), seed=0)
    assert bundle.profile.rows == {"train": 1257, "val": 360, "test": 180}


def test_splits_are_disjoint_and_cover_every_row():
    bundle = prepare_data(config(dataset="wine"), seed=0)
    rows = [bundle.source_rows(s) for s in ("train", "val", "test")]
    together = np.concatenate(rows)
    assert len(together) == len(set(together)) == 178


def test_stratified_split_keeps_class_proportions_in_every_split():
    y = np.array([0] * 900 + [1] * 90 + [2] * 10)
    parts = split_positions(y, task="classification", split=SplitConfig(val=0.2, test=0.2), seed=5)
    assert parts.stratified
    for positions in (parts.train, parts.val, parts.test):
        share = np.bincount(y[positions], minlength=3) / len(positions)
        assert share == pytest.approx([0.9, 0.09, 0.01], abs=0.011)
    assert len(parts.val) == 200 and len(parts.test) == 200


def test_unstratified_split_can_unbalance_a_rare_class():
    y = np.array([0] * 990 + [1] * 10)
    shares = []
    for seed in range(20):
        parts = split_positions(
            y,
            task="classification",
            split=SplitConfig(val=0.1, test=0.1, stratify=False),
            seed=seed,
        )
        shares.append(int(y[parts.test].sum()))
        strat = split_positions(
            y, task="classification", split=SplitConfig(val=0.1, test=0.1), seed=seed
        )
        assert int(y[strat.test].sum()) == 1
    assert len(set(shares)) > 1


def test_same_seed_same_split_other_seed_other_split():
    a = prepare_data(config(dataset="iris"), seed=1)
    b = prepare_data(config(dataset="iris"), seed=1)
    c = prepare_data(config(dataset="iris"), seed=2)
    assert np.array_equal(a.source_rows("test"), b.source_rows("test"))
    assert torch.equal(a.X_train, b.X_train)
    assert not np.array_equal(a.source_rows("test"), c.source_rows("test"))


def test_shuffle_off_keeps_file_order():
    bundle = prepare_data(config(dataset="iris", split={"shuffle": False}), seed=0)
    train = bundle.source_rows("train")
    assert np.array_equal(train, np.arange(len(train)))


def test_zero_fractions_give_empty_splits():
    bundle = prepare_data(config(dataset="iris", split={"val": 0.0, "test": 0.2}), seed=0)
    assert bundle.X_val.shape == (0, 4) and len(bundle.X_test) == 30


@pytest.mark.parametrize("seed", range(5))
def test_a_class_with_one_row_stays_in_training(seed):
    y = np.array([0] * 50 + [1] * 50 + [2])
    parts = split_positions(y, task="classification", split=SplitConfig(), seed=seed)
    assert sum(map(len, (parts.train, parts.val, parts.test))) == 101
    assert len(parts.val) == len(parts.test) == 16
    assert 2 in y[parts.train]


def test_kfold_refits_preprocessing_on_each_folds_training_rows():
    bundle = prepare_data(config(dataset="wine", split={"val": 0.2, "test": 0.2}), seed=0)
    pool = set(bundle.source_rows("train")) | set(bundle.source_rows("val"))
    folds = list(kfold_splits(bundle, folds=4, stratified=True, seed=0))
    assert len(folds) == 4
    seen_val = []
    for fold in folds:
        train, val = set(fold.source_rows("train")), set(fold.source_rows("val"))
        assert not train & val and train | val == pool
        assert np.array_equal(fold.source_rows("test"), bundle.source_rows("test"))
        seen_val += list(val)
        # the fold's scaler saw exactly its own training rows: they are standardised
        assert fold.X_train.mean(0).abs().max() < 1e-5
        assert fold.preprocessing is not bundle.preprocessing
    assert sorted(seen_val) == sorted(pool)


def test_stratified_kfold_balances_classes_in_each_fold():
    bundle = prepare_data(config(dataset="breast_cancer"), seed=0)
    overall = torch.cat([bundle.y_train, bundle.y_val]).float().mean().item()
    for fold in kfold_splits(bundle, folds=5, stratified=True, seed=1):
        assert fold.y_val.float().mean().item() == pytest.approx(overall, abs=0.02)


def test_kfold_over_ready_arrays_pools_train_and_val():
    rng = np.random.default_rng(0)
    bundle = DataBundle.from_arrays(
        rng.normal(size=(30, 2)),
        np.arange(30) % 3,
        rng.normal(size=(12, 2)),
        np.arange(12) % 3,
        rng.normal(size=(6, 2)),
        np.arange(6) % 3,
    )
    folds = list(kfold_splits(bundle, folds=3, stratified=False, seed=0))
    assert [len(f.X_val) for f in folds] == [14, 14, 14]
    assert all(len(f.X_train) == 28 for f in folds)
    assert all(torch.equal(f.X_test, bundle.X_test) for f in folds)
    again = list(kfold_splits(bundle, folds=3, stratified=False, seed=0))
    assert all(torch.equal(a.X_val, b.X_val) for a, b in zip(folds, again, strict=True))


def test_stratified_kfold_with_too_small_a_class_is_a_data_error():
    from tunelab.errors import DataError

    bundle = DataBundle.from_arrays(np.zeros((12, 1)), [0] * 10 + [1] * 2, np.zeros((2, 1)), [0, 1])
    with pytest.raises(DataError, match="smallest class has 3"):
        list(kfold_splits(bundle, folds=5, stratified=True, seed=0))


def test_kfold_over_images_refits_the_channel_normalisation():
    bundle = prepare_data(config(dataset="digits", as_images=True, max_rows=300), seed=0)
    for fold in kfold_splits(bundle, folds=3, stratified=True, seed=0):
        assert fold.is_image and fold.input_shape == (1, 8, 8)
        assert abs(fold.X_train.double().mean().item()) < 1e-5
        assert fold.preprocessing.offset_ != bundle.preprocessing.offset_
