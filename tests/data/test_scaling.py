"""Scalers and image normalisation are fitted on the training split only (no leakage)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from tunelab.data import prepare_data

from .data_helpers import config, write_images


def _drifting_csv(tmp_path) -> tuple[str, pd.DataFrame]:
    """``row`` identifies each row; ``x`` drifts with the row number, so stats over all rows
    differ clearly from stats over a training subset."""
    rng = np.random.default_rng(0)
    rows = 300
    frame = pd.DataFrame(
        {
            "row": np.arange(rows, dtype=float),
            "x": np.arange(rows) * 0.1 + rng.normal(size=rows),
            "label": rng.integers(0, 2, rows),
        }
    )
    path = tmp_path / "drift.csv"
    frame.to_csv(path, index=False)
    return str(path), frame


def _train_rows(bundle, frame: pd.DataFrame) -> pd.DataFrame:
    """Recover which source rows landed in train from the scaled ``row`` feature."""
    pre = bundle.preprocessing
    column = bundle.feature_names.index("row")
    ids = bundle.X_train[:, column].double().numpy() * pre.scale_[column] + pre.offset_[column]
    ids = np.round(ids).astype(int)
    np.testing.assert_array_equal(ids, bundle.source_rows("train"))
    return frame.iloc[ids]


def test_standard_scaler_statistics_equal_the_training_split(tmp_path):
    path, frame = _drifting_csv(tmp_path)
    bundle = prepare_data(config(source="csv", path=path, scale="standard"), seed=0)
    train = _train_rows(bundle, frame)
    assert len(train) == bundle.profile.rows["train"]
    pre = bundle.preprocessing
    expected_mean = train[["row", "x"]].mean().to_numpy()
    expected_std = train[["row", "x"]].std(ddof=0).to_numpy()
    assert pre.offset_ == pytest.approx(expected_mean, rel=1e-9)
    assert pre.scale_ == pytest.approx(expected_std, rel=1e-9)
    # and they are not the statistics of all rows (which would leak val/test)
    assert pre.offset_[1] != pytest.approx(frame["x"].mean(), rel=1e-6)
    assert bundle.X_train.mean(0).abs().max() < 1e-5
    assert (bundle.X_train.std(0, unbiased=False) - 1).abs().max() < 1e-4


def test_minmax_scaler_uses_training_min_and_max(tmp_path):
    path, frame = _drifting_csv(tmp_path)
    bundle = prepare_data(config(source="csv", path=path, scale="minmax"), seed=0)
    pre = bundle.preprocessing
    ids = np.round(bundle.X_train[:, 0].double().numpy() * pre.scale_[0] + pre.offset_[0]).astype(
        int
    )
    train = frame.iloc[ids]
    assert pre.offset_ == pytest.approx(train[["row", "x"]].min().to_numpy())
    assert pre.scale_ == pytest.approx(train[["row", "x"]].max() - train[["row", "x"]].min())
    assert bundle.X_train.min() == pytest.approx(0.0, abs=1e-6)
    assert bundle.X_train.max() == pytest.approx(1.0, abs=1e-6)


def test_no_scaling_leaves_values_as_they_were(tmp_path):
    path, frame = _drifting_csv(tmp_path)
    bundle = prepare_data(config(source="csv", path=path, scale="none"), seed=0)
    ids = bundle.X_train[:, 0].numpy().astype(int)
    np.testing.assert_allclose(bundle.X_train[:, 1].numpy(), frame["x"].to_numpy()[ids], rtol=1e-6)


def test_imputation_statistics_come_from_training_rows(tmp_path):
    path, frame = _drifting_csv(tmp_path)
    frame.loc[frame.index % 7 == 0, "x"] = np.nan
    frame.to_csv(path, index=False)
    bundle = prepare_data(config(source="csv", path=path, clean={"missing": "mean"}), seed=0)
    train = _train_rows(bundle, frame)
    assert bundle.preprocessing.fill_["x"] == pytest.approx(train["x"].mean())
    assert bundle.preprocessing.fill_["x"] != pytest.approx(frame["x"].mean())


def test_image_normalisation_is_per_channel_and_fitted_on_training_images(tmp_path):
    write_images(tmp_path / "imgs", per_class=10)
    bundle = prepare_data(config(source="image_folder", path=str(tmp_path / "imgs")), seed=0)
    pre = bundle.preprocessing
    from PIL import Image

    files = sorted((tmp_path / "imgs").glob("*/*.png"))
    images = np.stack([np.asarray(Image.open(f)).transpose(2, 0, 1) for f in files])
    raw = images[bundle.source_rows("train")].astype(np.float64) / 255
    assert pre.offset_ == pytest.approx(raw.mean(axis=(0, 2, 3)).tolist())
    assert pre.scale_ == pytest.approx(raw.std(axis=(0, 2, 3)).tolist())
    channel_mean = bundle.X_train.double().mean(dim=(0, 2, 3))
    assert torch.allclose(channel_mean, torch.zeros(3, dtype=torch.float64), atol=1e-5)


def test_image_minmax_maps_training_pixels_to_unit_range():
    bundle = prepare_data(config(dataset="digits", as_images=True, scale="minmax"), seed=0)
    assert bundle.X_train.min() == 0.0 and bundle.X_train.max() == 1.0
