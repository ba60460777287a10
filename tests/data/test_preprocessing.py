"""``Preprocessing``: JSON round trip, and raw input transformed exactly like the training data."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from tunelab.data import (
    ImagePreprocessing,
    InputField,
    Preprocessing,
    TablePreprocessing,
    prepare_data,
)
from tunelab.data._images import read_batch
from tunelab.errors import DataError

from .data_helpers import config, table_frame, write_cifar, write_images


def _messy_csv(tmp_path) -> tuple[str, pd.DataFrame]:
    frame = table_frame(rows=150, seed=3)
    frame.loc[frame.index % 9 == 0, "age"] = np.nan
    frame.loc[frame.index % 11 == 0, "colour"] = None
    frame.loc[5, "income"] = 10_000.0  # an outlier to clip
    path = tmp_path / "messy.csv"
    frame.to_csv(path, index=False)
    return str(path), frame


def _split_rows(bundle, frame: pd.DataFrame, split: str) -> pd.DataFrame:
    return frame.iloc[bundle.source_rows(split)]


@pytest.mark.parametrize("scale", ["standard", "minmax", "none"])
def test_json_round_trip_transforms_raw_rows_exactly_like_the_bundle(tmp_path, scale):
    path, frame = _messy_csv(tmp_path)
    cfg = config(
        source="csv",
        path=path,
        scale=scale,
        clean={"missing": "median", "outliers": "zscore", "outlier_action": "clip"},
    )
    bundle = prepare_data(cfg, seed=0)
    saved = bundle.preprocessing.save(tmp_path / "pre" / "preprocessing.json")
    loaded = Preprocessing.load(saved)
    assert isinstance(loaded, TablePreprocessing)
    for split in ("train", "val", "test"):
        raw = _split_rows(bundle, frame, split).drop(columns=["label"])
        expected = getattr(bundle, f"X_{split}")
        assert torch.equal(torch.from_numpy(loaded.transform(raw)), expected)
        assert torch.equal(torch.from_numpy(bundle.preprocessing.transform(raw)), expected)


def test_raw_rows_may_be_dicts_lists_of_dicts_or_arrays(tmp_path):
    path, frame = _messy_csv(tmp_path)
    bundle = prepare_data(config(source="csv", path=path), seed=0)
    pre = Preprocessing.from_json(bundle.preprocessing.to_json())
    raw = _split_rows(bundle, frame, "test").drop(columns=["label"]).iloc[:5]
    expected = bundle.X_test[:5].numpy()
    records = json.loads(raw.to_json(orient="records"))  # what a server receives
    np.testing.assert_array_equal(pre.transform(records), expected)
    np.testing.assert_array_equal(pre.transform(records[0]), expected[:1])
    as_array = raw[pre.raw_feature_names].to_numpy(dtype=object)
    np.testing.assert_array_equal(pre.transform(as_array), expected)


def test_input_schema_names_dtypes_and_categories(tmp_path):
    path, _ = _messy_csv(tmp_path)
    pre = prepare_data(config(source="csv", path=path), seed=0).preprocessing
    schema = pre.input_schema()
    assert all(isinstance(f, InputField) for f in schema)
    assert [(f.name, f.dtype) for f in schema] == [
        ("age", "float"),
        ("income", "float"),
        ("colour", "category"),
        ("member", "bool"),
    ]
    assert schema[2].categories == ["blue", "green", "red"]
    assert pre.raw_feature_names == ["age", "income", "colour", "member"]
    assert pre.label == "label" and pre.classes == ["cat", "dog", "owl"]


def test_missing_and_unseen_values_at_serving_are_filled_like_training(tmp_path):
    path, _ = _messy_csv(tmp_path)
    pre = prepare_data(config(source="csv", path=path, scale="none"), seed=0).preprocessing
    out = pre.transform([{"age": None, "income": 5.0, "colour": "purple", "member": True}])
    assert out[0, 0] == pytest.approx(pre.fill_["age"])
    assert out[0, 2:5].tolist() == [0.0, 0.0, 0.0]  # unseen category: all zeros
    assert out[0, 5] == 1.0


def test_missing_column_and_bad_value_at_serving_are_one_line_errors(tmp_path):
    path, _ = _messy_csv(tmp_path)
    pre = prepare_data(config(source="csv", path=path), seed=0).preprocessing
    with pytest.raises(DataError, match="no column 'member'") as info:
        pre.transform([{"age": 1.0, "income": 2.0, "colour": "red"}])
    assert "\n" not in str(info.value)
    with pytest.raises(DataError, match=r"column 'age' row 2: 'abc' is not a number"):
        pre.transform(
            [
                {"age": 1, "income": 2.0, "colour": "red", "member": False},
                {"age": "abc", "income": 2.0, "colour": "red", "member": False},
            ]
        )


def test_missing_value_at_serving_is_an_error_when_training_dropped_such_rows(tmp_path):
    path, _ = _messy_csv(tmp_path)
    pre = prepare_data(
        config(source="csv", path=path, clean={"missing": "drop"}), seed=0
    ).preprocessing
    with pytest.raises(DataError, match="column 'age' row 1: missing value"):
        pre.transform({"age": None, "income": 2.0, "colour": "red", "member": False})


def test_image_folder_preprocessing_transforms_files_exactly_like_the_bundle(tmp_path):
    root = write_images(tmp_path / "imgs", per_class=5)
    bundle = prepare_data(config(source="image_folder", path=str(root)), seed=0)
    loaded = Preprocessing.from_json(bundle.preprocessing.to_json())
    assert isinstance(loaded, ImagePreprocessing)
    files = sorted(root.glob("*/*.png"))
    test_files = [files[i] for i in bundle.source_rows("test")]
    assert torch.equal(torch.from_numpy(loaded.transform(test_files)), bundle.X_test)
    raw_bytes = [f.read_bytes() for f in test_files]
    assert torch.equal(torch.from_numpy(loaded.transform(raw_bytes)), bundle.X_test)
    assert loaded.input_schema()[0].shape == [3, 8, 10]


def test_image_folder_resize_applies_at_serving_too(tmp_path):
    from PIL import Image

    root = write_images(tmp_path / "imgs", per_class=4, size=(12, 12))
    cfg = config(source="image_folder", path=str(root), image_size=[6, 6])
    pre = Preprocessing.from_json(prepare_data(cfg, seed=0).preprocessing.to_json())
    big = Image.new("RGB", (30, 20), color=(200, 10, 10))
    assert pre.transform(big).shape == (1, 3, 6, 6)
    array = np.full((20, 30, 3), 7, dtype=np.uint8)
    assert pre.transform(array).shape == (1, 3, 6, 6)


def test_cifar_preprocessing_accepts_raw_uint8_arrays_in_either_layout(tmp_path):
    folder = write_cifar(tmp_path / "c", batches=1, per_batch=30, side=4)
    bundle = prepare_data(config(source="cifar", path=str(folder)), seed=0)
    pre = Preprocessing.from_json(bundle.preprocessing.to_json())
    raw = read_batch(folder / "data_batch_1")["data"].reshape(-1, 3, 4, 4)
    rows = raw[bundle.source_rows("val")]
    np.testing.assert_array_equal(pre.transform(rows), bundle.X_val.numpy())
    np.testing.assert_array_equal(pre.transform(rows.transpose(0, 2, 3, 1)), bundle.X_val.numpy())
    np.testing.assert_array_equal(pre.transform(rows[0]), bundle.X_val[:1].numpy())


def test_preprocessing_json_is_plain_json_without_pickle(tmp_path):
    bundle = prepare_data(config(dataset="wine"), seed=0)
    document = json.loads(bundle.preprocessing.to_json())
    assert document["format"] == "tunelab.preprocessing" and document["kind"] == "table"
    assert len(document["fitted"]["offset_"]) == 13


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "invalid"),
        ('{"format": "other"}', "not a tunelab preprocessing"),
        (
            '{"format": "tunelab.preprocessing", "version": 1, "kind": "audio"}',
            "unknown preprocessing kind",
        ),
        (
            '{"format": "tunelab.preprocessing", "version": 1, "kind": "table", "params": {}}',
            "incomplete table preprocessing",
        ),
    ],
)
def test_bad_preprocessing_documents_are_one_line_errors(text, message):
    with pytest.raises(DataError, match=message) as info:
        Preprocessing.from_json(text)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("missing", "outliers", "action", "scale", "constant"),
    [
        ("mean", "zscore", "clip", "standard", "keep"),
        ("median", "iqr", "drop", "minmax", "drop"),
        ("most_frequent", "none", "clip", "none", "keep"),
        ("constant", "iqr", "clip", "standard", "drop"),
        ("drop", "zscore", "drop", "minmax", "keep"),
        ("mean", "iqr", "clip", "none", "drop"),
    ],
)
def test_round_trip_holds_for_every_cleaning_combination(
    tmp_path, missing, outliers, action, scale, constant
):
    path, frame = _messy_csv(tmp_path)
    frame = frame.assign(flat=1.0)
    frame.to_csv(path, index=False)
    clean = {
        "missing": missing,
        "outliers": outliers,
        "outlier_action": action,
        "constant": constant,
    }
    bundle = prepare_data(config(source="csv", path=path, scale=scale, clean=clean), seed=4)
    pre = Preprocessing.from_json(bundle.preprocessing.to_json())
    for split in ("train", "val", "test"):
        raw = _split_rows(bundle, frame, split).drop(columns=["label"])
        np.testing.assert_array_equal(pre.transform(raw), getattr(bundle, f"X_{split}").numpy())
    assert ("flat" in bundle.feature_names) == (constant == "keep")


def test_numeric_column_arrays_take_the_fast_path_with_the_same_numbers():
    rng = np.random.default_rng(0)
    train = pd.DataFrame(
        {"a": rng.normal(size=200), "b": rng.integers(0, 9, size=200), "c": np.ones(200)}
    )
    pre = TablePreprocessing(
        columns=["a", "b", "c"],
        kinds={"a": "float", "b": "int", "c": "float"},
        outliers="zscore",
        constant="drop",
    ).fit(train)
    rows = pd.DataFrame({"a": [0.5, 40.0, -2.0], "b": [3.0, 8.0, 0.0], "c": [1.0, 1.0, 1.0]})
    columns = {k: rows[k].to_numpy(dtype=np.float64, copy=True) for k in rows}
    assert pre._clean_numeric_columns(columns) is not None
    np.testing.assert_array_equal(pre.transform(columns), pre.transform(rows))
    assert pre.transform(columns)[1, 0] < 4  # the outlier 40.0 is clipped on the fast path too
    # A missing value leaves the fast path and is filled like training.
    columns["a"][0] = np.nan
    assert pre._clean_numeric_columns(columns) is None
    rows.loc[0, "a"] = np.nan
    np.testing.assert_array_equal(pre.transform(columns), pre.transform(rows))
