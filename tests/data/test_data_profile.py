"""``DataProfile``: the numbers it reports, its JSON form and its printed tables."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from tunelab.data import DataProfile, prepare_data

from .data_helpers import config


def _profile(tmp_path) -> DataProfile:
    rng = np.random.default_rng(0)
    rows = 200
    frame = pd.DataFrame(
        {
            "x": rng.normal(size=rows),
            "z": np.arange(rows) % 7,  # keeps the rows with a missing x distinct
            "flat": np.ones(rows),
            "colour": rng.choice(["red", "blue"], rows),
            "label": np.where(np.arange(rows) < 150, "common", "rare"),
        }
    )
    frame.loc[::20, "x"] = np.nan
    frame.loc[3, "x"] = 25.0  # far outside 3 standard deviations
    frame = pd.concat([frame, frame.iloc[:4]])  # 4 duplicate rows
    path = tmp_path / "p.csv"
    frame.to_csv(path, index=False)
    return prepare_data(config(source="csv", path=str(path)), seed=0).profile


def test_profile_reports_rows_columns_missing_outliers_balance_and_duplicates(tmp_path):
    profile = _profile(tmp_path)
    assert profile.rows_loaded == 204
    assert sum(profile.rows.values()) == 204 and profile.rows_dropped == 0
    assert [c.name for c in profile.columns] == ["x", "z", "flat", "colour"]
    assert profile.missing == {"x": 11}  # rows 0, 20, ..., 180 and the copy of row 0
    assert profile.outliers["x"] >= 1
    assert profile.constant_columns == ["flat"]
    assert profile.duplicate_rows == 4
    assert set(profile.cross_split_duplicates) == {"val", "test"}
    assert profile.classes == ["common", "rare"]
    for split, count in profile.rows.items():
        balance = profile.class_balance[split]
        assert sum(balance.values()) == count
        assert balance["rare"] / count == pytest.approx(50 / 204, abs=0.03)
    assert profile.stratified


def test_profile_to_dict_is_json_and_round_trips(tmp_path):
    profile = _profile(tmp_path)
    data = json.loads(profile.to_json())
    assert data["rows_dropped"] == 0 and data["rows"]["train"] == profile.rows["train"]
    again = DataProfile.from_dict(data)
    assert again.columns == profile.columns and again.actions == profile.actions
    saved = profile.save(tmp_path / "out" / "data_profile.json")
    assert json.loads(saved.read_text())["name"] == "p"


def test_profile_text_has_every_section(tmp_path):
    text = _profile(tmp_path).to_text(width=120)
    for heading in (
        "Data: p",
        "Columns",
        "Class balance",
        "Cleaning",
        "rows per split",
        "val rows also in train",
        "constant columns (train)",
    ):
        assert heading in text
    assert "filled with the training median" in text


def test_regression_profile_shows_target_statistics():
    profile = prepare_data(config(dataset="diabetes"), seed=0).profile
    assert set(profile.target) == {"train", "val", "test"}
    assert "Target" in profile.to_text()
    assert profile.class_balance == {}
