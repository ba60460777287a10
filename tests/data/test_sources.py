"""Every source loads into a bundle with the right shapes, task, classes and feature names."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from tunelab.data import DataBundle, prepare_data

from .data_helpers import config, table_frame, write_cifar, write_images


def _rows(bundle: DataBundle) -> int:
    return len(bundle.X_train) + len(bundle.X_val) + len(bundle.X_test)


def test_csv_reads_numeric_categorical_and_bool_columns(csv_file):
    bundle = prepare_data(config(source="csv", path=str(csv_file)), seed=0)
    assert bundle.task == "classification"
    assert bundle.classes == ["cat", "dog", "owl"]
    assert _rows(bundle) == 120
    assert bundle.feature_names == [
        "age",
        "income",
        "colour=blue",
        "colour=green",
        "colour=red",
        "member",
    ]
    assert bundle.X_train.dtype == torch.float32 and bundle.y_train.dtype == torch.int64
    assert bundle.input_shape == (6,)
    kinds = {c.name: c.kind for c in bundle.profile.columns}
    assert kinds == {"age": "float", "income": "float", "colour": "category", "member": "bool"}


def test_csv_label_is_guessed_from_common_names_and_features_can_be_chosen(tmp_path):
    path = tmp_path / "t.csv"
    table_frame().rename(columns={"label": "target"}).to_csv(path, index=False)
    bundle = prepare_data(config(source="csv", path=str(path), features=["age", "income"]), seed=0)
    assert bundle.feature_names == ["age", "income"]
    assert bundle.preprocessing.label == "target"


def test_parquet_matches_csv(tmp_path, csv_file):
    path = tmp_path / "table.parquet"
    table_frame().to_parquet(path)
    from_parquet = prepare_data(config(source="parquet", path=str(path)), seed=0)
    from_csv = prepare_data(config(source="csv", path=str(csv_file)), seed=0)
    assert from_parquet.feature_names == from_csv.feature_names
    assert torch.equal(from_parquet.X_train, from_csv.X_train)
    assert torch.equal(from_parquet.y_test, from_csv.y_test)


def test_npy_table_takes_the_last_column_as_label_by_default(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    y = (X[:, 0] > 0).astype(float)
    np.save(tmp_path / "t.npy", np.column_stack([X, y]))
    bundle = prepare_data(config(source="numpy", path=str(tmp_path / "t.npy")), seed=0)
    assert bundle.feature_names == ["f0", "f1", "f2"]
    assert bundle.classes == ["0", "1"]
    np.save(tmp_path / "first.npy", np.column_stack([y, X]))
    first = prepare_data(
        config(source="numpy", path=str(tmp_path / "first.npy"), label="0"), seed=0
    )
    assert torch.equal(first.X_train, bundle.X_train)


def test_npz_table_with_names_and_regression_target(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 2))
    y = X @ np.array([1.5, -2.0]) + rng.normal(scale=0.1, size=80)
    np.savez(tmp_path / "r.npz", X=X, y=y, feature_names=np.array(["a", "b"]))
    bundle = prepare_data(config(source="numpy", path=str(tmp_path / "r.npz")), seed=0)
    assert bundle.task == "regression" and bundle.output_size == 1
    assert bundle.y_train.dtype == torch.float32
    assert bundle.feature_names == ["a", "b"]


def test_npz_multi_target_regression_keeps_every_target(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "m.npz", X=rng.normal(size=(50, 3)), y=rng.normal(size=(50, 2)))
    bundle = prepare_data(config(source="numpy", path=str(tmp_path / "m.npz")), seed=0)
    assert bundle.task == "regression" and bundle.output_size == 2
    assert bundle.y_train.shape[1] == 2


def test_npz_images_in_nhwc_become_nchw_with_declared_classes(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(40, 6, 6, 3), dtype=np.uint8)
    labels = np.arange(40) % 2
    np.savez(tmp_path / "i.npz", images=images, labels=labels, classes=np.array(["no", "yes"]))
    bundle = prepare_data(config(source="numpy", path=str(tmp_path / "i.npz")), seed=0)
    assert bundle.is_image and bundle.input_shape == (3, 6, 6)
    assert bundle.classes == ["no", "yes"]


@pytest.mark.parametrize("fmt", ["png", "jpg"])
def test_image_folder_reads_class_subfolders(tmp_path, fmt):
    write_images(tmp_path / "imgs", fmt=fmt)
    (tmp_path / "imgs" / "cat" / "notes.txt").write_text("not an image")
    bundle = prepare_data(config(source="image_folder", path=str(tmp_path / "imgs")), seed=0)
    assert bundle.classes == ["cat", "dog"]
    assert bundle.input_shape == (3, 8, 10)
    assert _rows(bundle) == 12
    assert any(a.step == "files" for a in bundle.profile.actions)  # the .txt is counted


def test_image_folder_grayscale_and_resize(tmp_path):
    write_images(tmp_path / "imgs", size=(8, 10))
    from PIL import Image

    Image.new("RGB", (20, 16)).save(tmp_path / "imgs" / "dog" / "big.png")
    cfg = config(
        source="image_folder", path=str(tmp_path / "imgs"), grayscale=True, image_size=[4, 5]
    )
    bundle = prepare_data(cfg, seed=0)
    assert bundle.input_shape == (1, 4, 5)
    assert _rows(bundle) == 13


def test_cifar_directory_pools_batches_and_reads_label_names(tmp_path):
    write_cifar(tmp_path / "cifar", batches=2, per_batch=20, classes=10, side=8)
    bundle = prepare_data(config(source="cifar", path=str(tmp_path / "cifar")), seed=0)
    assert bundle.input_shape == (3, 8, 8)
    assert bundle.classes == [f"class{i}" for i in range(10)]
    assert _rows(bundle) == 40
    assert bundle.profile.kind == "image"


def test_cifar_single_batch_file_without_meta(tmp_path):
    folder = write_cifar(tmp_path / "c", batches=1, per_batch=30, classes=3, side=4, meta=False)
    bundle = prepare_data(config(source="cifar", path=str(folder / "data_batch_1")), seed=0)
    assert bundle.input_shape == (3, 4, 4)
    assert bundle.classes == ["0", "1", "2"]


@pytest.mark.parametrize(
    ("name", "task", "features", "classes"),
    [
        ("digits", "classification", 64, 10),
        ("iris", "classification", 4, 3),
        ("wine", "classification", 13, 3),
        ("breast_cancer", "classification", 30, 2),
        ("diabetes", "regression", 10, 0),
    ],
)
def test_sklearn_bundled_sets(name, task, features, classes):
    bundle = prepare_data(config(source="sklearn", dataset=name), seed=0)
    assert bundle.task == task
    assert bundle.input_shape == (features,)
    assert bundle.num_classes == classes


def test_digits_as_images_are_1x8x8():
    bundle = prepare_data(config(dataset="digits", as_images=True), seed=0)
    assert bundle.is_image and bundle.input_shape == (1, 8, 8)
    assert _rows(bundle) == 1797


def test_synthetic_classification_follows_its_parameters():
    cfg = config(
        source="synthetic",
        synthetic={"n_samples": 300, "n_features": 7, "n_informative": 4, "n_classes": 3},
    )
    bundle = prepare_data(cfg, seed=3)
    assert bundle.input_shape == (7,) and bundle.num_classes == 3 and _rows(bundle) == 300
    again = prepare_data(cfg, seed=3)
    assert torch.equal(bundle.X_train, again.X_train)


def test_synthetic_regression():
    cfg = config(
        source="synthetic", synthetic={"task": "regression", "n_samples": 100, "n_features": 5}
    )
    bundle = prepare_data(cfg, seed=0)
    assert bundle.task == "regression" and bundle.input_shape == (5,)


def test_task_auto_treats_many_distinct_floats_as_regression(tmp_path):
    frame = pd.DataFrame({"x": np.arange(100.0), "label": np.linspace(0, 1, 100) ** 2})
    frame.to_csv(tmp_path / "r.csv", index=False)
    bundle = prepare_data(config(source="csv", path=str(tmp_path / "r.csv")), seed=0)
    assert bundle.task == "regression"


def test_declared_classes_map_names_and_indices(tmp_path):
    frame = pd.DataFrame({"x": np.arange(30.0), "label": ["b", "a", "c"] * 10})
    frame.to_csv(tmp_path / "c.csv", index=False)
    cfg = config(source="csv", path=str(tmp_path / "c.csv"), classes=["c", "b", "a"])
    bundle = prepare_data(cfg, seed=0)
    assert bundle.classes == ["c", "b", "a"]
    x = bundle.preprocessing.transform(pd.DataFrame({"x": [0.0]}))
    assert x.shape == (1, 1)
    # row "x == 0" has label "b", which is index 1 of the declared classes
    all_y = torch.cat([bundle.y_train, bundle.y_val, bundle.y_test])
    assert sorted(set(all_y.tolist())) == [0, 1, 2]


def test_max_rows_takes_a_seeded_random_subset_and_reports_it():
    bundle = prepare_data(config(dataset="digits", max_rows=500), seed=0)
    assert _rows(bundle) == 500
    action = next(a for a in bundle.profile.actions if a.step == "max_rows")
    assert action.rows_dropped == 1297
