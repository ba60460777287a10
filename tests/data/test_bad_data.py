"""Bad data stops with one line naming the file, the column and the row where it can."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tunelab.data import prepare_data
from tunelab.errors import DataError

from .data_helpers import config, table_frame, write_cifar, write_images


def _fails(cfg, *needles: str) -> str:
    with pytest.raises(DataError) as info:
        prepare_data(cfg, seed=0)
    message = str(info.value)
    assert "\n" not in message, message
    assert message.startswith("data error: "), message
    for needle in needles:
        assert needle in message, f"{needle!r} not in {message!r}"
    return message


def _csv(tmp_path: Path, frame: pd.DataFrame, name: str = "bad.csv") -> str:
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return str(path)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("")
    _fails(config(source="csv", path=str(path)), str(path), "empty")


def test_header_without_rows(tmp_path):
    path = tmp_path / "header.csv"
    path.write_text("a,b,label\n")
    _fails(config(source="csv", path=str(path)), str(path), "no data rows")


def test_missing_file(tmp_path):
    _fails(config(source="csv", path=str(tmp_path / "nope.csv")), "nope.csv", "no such file")


def test_no_label_column_lists_the_columns(tmp_path):
    path = _csv(tmp_path, table_frame().rename(columns={"label": "species"}))
    _fails(
        config(source="csv", path=path),
        path,
        "no label column",
        "age, income, colour, member, species",
    )


def test_named_label_column_absent_suggests_the_nearest(tmp_path):
    path = _csv(tmp_path, table_frame())
    _fails(
        config(source="csv", path=path, label="lable"),
        "no label column 'lable'",
        "did you mean 'label'",
    )


def test_feature_not_in_file(tmp_path):
    path = _csv(tmp_path, table_frame())
    _fails(
        config(source="csv", path=path, features=["age", "incme"]),
        "'incme'",
        "did you mean 'income'",
    )


def test_labels_out_of_range_of_declared_classes(tmp_path):
    frame = pd.DataFrame({"x": np.arange(20.0), "label": [0, 1] * 9 + [1, 7]})
    path = _csv(tmp_path, frame)
    _fails(
        config(source="csv", path=path, classes=["no", "yes"]),
        path,
        "column 'label'",
        "row 20 (line 21)",
        "label 7 is out of range",
        "0..1",
    )


def test_cifar_labels_out_of_range_name_the_batch_file_and_row(tmp_path):
    folder = write_cifar(tmp_path / "c", batches=1, per_batch=10, classes=3)
    batch = {b"data": np.zeros((10, 3 * 64), np.uint8), b"labels": [0] * 9 + [12]}
    with open(folder / "data_batch_1", "wb") as handle:
        pickle.dump(batch, handle, protocol=2)
    _fails(
        config(source="cifar", path=str(folder)),
        "data_batch_1",
        "row 10",
        "label 12 is out of range 0..2",
    )


def test_non_numeric_column_without_encoding(tmp_path):
    path = _csv(tmp_path, table_frame())
    _fails(
        config(source="csv", path=path, clean={"categorical": "error"}),
        path,
        "column 'colour'",
        "row 1 (line 2)",
        "data.clean.categorical is 'error'",
    )


def test_text_column_with_too_many_values_to_encode(tmp_path):
    frame = pd.DataFrame({"name": [f"person {i}" for i in range(60)], "label": [0, 1] * 30})
    path = _csv(tmp_path, frame)
    _fails(config(source="csv", path=path), "column 'name'", "60 distinct values", "max_categories")


def test_word_in_a_numeric_column(tmp_path):
    frame = pd.DataFrame({"x": [str(v) for v in range(30)], "label": [0, 1] * 15})
    frame.loc[17, "x"] = "oops"
    path = _csv(tmp_path, frame)
    _fails(config(source="csv", path=path), path, "column 'x'", "row 18 (line 19)", "'oops'")


def test_all_nan_column(tmp_path):
    frame = pd.DataFrame({"x": np.arange(10.0), "empty": [np.nan] * 10, "label": [0, 1] * 5})
    path = _csv(tmp_path, frame)
    _fails(config(source="csv", path=path), path, "column 'empty'", "entirely missing")


def test_nan_or_inf_left_when_missing_is_error(tmp_path):
    frame = pd.DataFrame({"x": [1.0, 2.0, np.inf, 4.0] * 5, "label": [0, 1] * 10})
    path = _csv(tmp_path, frame)
    _fails(
        config(source="csv", path=path, clean={"missing": "error"}),
        path,
        "column 'x'",
        "row 3 (line 4)",
        "inf",
    )


def test_inconsistent_image_sizes_name_both_files(tmp_path):
    from PIL import Image

    root = write_images(tmp_path / "imgs", size=(8, 8))
    Image.new("RGB", (5, 7)).save(root / "dog" / "odd.png")
    message = _fails(
        config(source="image_folder", path=str(root)),
        "odd.png",
        "inconsistent image sizes",
        "data.image_size",
    )
    assert "7x5" in message and "8x8" in message


def test_unreadable_image(tmp_path):
    root = write_images(tmp_path / "imgs")
    (root / "cat" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    _fails(config(source="image_folder", path=str(root)), "broken.png", "unreadable image")


def test_image_folder_without_class_folders(tmp_path):
    (tmp_path / "flat").mkdir()
    _fails(config(source="image_folder", path=str(tmp_path / "flat")), "no class sub-folders")


def test_one_class_only(tmp_path):
    path = _csv(tmp_path, pd.DataFrame({"x": np.arange(10.0), "label": ["a"] * 10}))
    _fails(config(source="csv", path=path), "column 'label'", "only one class")


def test_regression_label_that_is_not_a_number(tmp_path):
    frame = pd.DataFrame({"x": np.arange(10.0), "label": [str(v) for v in range(9)] + ["n/a!"]})
    path = _csv(tmp_path, frame)
    _fails(
        config(source="csv", path=path, task="regression"),
        "column 'label'",
        "row 10",
        "not a number",
    )


def test_unparseable_csv_names_the_line(tmp_path):
    path = tmp_path / "ragged.csv"
    path.write_text("a,b,label\n1,2,0\n3,4,1,9,9\n5,6,0\n")
    _fails(config(source="csv", path=str(path)), str(path), "cannot parse CSV", "line 3")


def test_not_a_parquet_file(tmp_path):
    path = tmp_path / "fake.parquet"
    path.write_text("hello")
    _fails(config(source="parquet", path=str(path)), str(path), "cannot read Parquet")


def test_npy_that_is_not_a_table(tmp_path):
    np.save(tmp_path / "img.npy", np.zeros((4, 3, 3)))
    _fails(config(source="numpy", path=str(tmp_path / "img.npy")), "2-D table", "(4, 3, 3)")


def test_npz_object_arrays_are_refused_without_unpickling(tmp_path):
    np.savez(tmp_path / "obj.npz", X=np.array([{"a": 1}] * 4, dtype=object), y=np.arange(4))
    _fails(config(source="numpy", path=str(tmp_path / "obj.npz")), "obj.npz", "unpickling")


def test_cifar_file_that_is_not_a_pickle(tmp_path):
    (tmp_path / "data_batch_1").write_bytes(b"definitely not a pickle")
    _fails(config(source="cifar", path=str(tmp_path)), "data_batch_1", "not a CIFAR")


class _Payload:
    """Unpickling this would call ``Path.touch`` on the marker: the restricted loader must not."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_cifar_pickle_that_calls_code_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    folder = tmp_path / "evil"
    folder.mkdir()
    batch = {b"data": np.zeros((2, 12), np.uint8), b"labels": [0, 1], b"x": _Payload(marker)}
    with open(folder / "data_batch_1", "wb") as handle:
        pickle.dump(batch, handle, protocol=2)
    _fails(config(source="cifar", path=str(folder)), "data_batch_1", "refusing to load")
    assert not marker.exists()


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_cifar_batches_in_every_pickle_protocol_load(tmp_path, protocol):
    folder = tmp_path / f"p{protocol}"
    write_cifar(folder, batches=1, per_batch=10, classes=2, side=4)
    batch = {b"data": np.arange(10 * 48, dtype=np.uint8).reshape(10, 48), b"labels": [0, 1] * 5}
    with open(folder / "data_batch_1", "wb") as handle:
        pickle.dump(batch, handle, protocol=protocol)
    bundle = prepare_data(config(source="cifar", path=str(folder)), seed=0)
    assert bundle.input_shape == (3, 4, 4)


def test_date_column_is_named_instead_of_encoded_as_numbers(tmp_path):
    frame = pd.DataFrame(
        {"day": pd.date_range("2024-01-01", periods=20), "x": np.arange(20.0), "label": [0, 1] * 10}
    )
    path = _csv(tmp_path, frame)
    _fails(config(source="csv", path=path), path, "column 'day'", "dates or times")


def test_repeated_column_name(tmp_path):
    path = tmp_path / "dup.csv"
    path.write_text("a,a,label\n1,2,0\n3,4,1\n")
    _fails(config(source="csv", path=str(path)), str(path), "'a' appears more than once")
