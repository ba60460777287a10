"""Every cleaning option does what it says, and the profile accounts for every row and value."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from tunelab.data import prepare_data

from .data_helpers import config


def _write(tmp_path, frame: pd.DataFrame, name: str = "d.csv") -> str:
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return str(path)


def _frame_with_missing(rows: int = 100) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    x = rng.normal(10, 2, rows)
    x[::10] = np.nan  # 10 missing values
    return pd.DataFrame(
        {
            "x": x,
            "z": rng.normal(size=rows),
            "colour": (["red", "red", "blue", None] * rows)[:rows],
            "label": np.arange(rows) % 2,
        }
    )


def _unscaled(bundle, split="train") -> np.ndarray:
    """The split's values before scaling (scaling is affine and invertible)."""
    pre = bundle.preprocessing
    X = getattr(bundle, f"X_{split}").double().numpy()
    return X * np.asarray(pre.scale_) + np.asarray(pre.offset_)


def _ledger_balances(bundle) -> bool:
    p = bundle.profile
    return sum(p.rows.values()) == p.rows_loaded - p.rows_dropped


@pytest.mark.parametrize("strategy", ["mean", "median", "most_frequent", "constant"])
def test_missing_values_are_filled_with_training_statistics(tmp_path, strategy):
    frame = _frame_with_missing()
    cfg = config(
        source="csv", path=_write(tmp_path, frame), clean={"missing": strategy, "fill_value": -1}
    )
    bundle = prepare_data(cfg, seed=0)
    pre = bundle.preprocessing
    fill = pre.fill_["x"]
    if strategy == "constant":
        assert fill == -1.0
    else:
        train_rows = frame.iloc[bundle.source_rows("train")]["x"].dropna().to_numpy()
        expected = {
            "mean": train_rows.mean(),
            "median": np.median(train_rows),
            "most_frequent": pd.Series(train_rows).mode().min(),
        }[strategy]
        assert fill == pytest.approx(expected)
    assert _ledger_balances(bundle) and bundle.profile.rows_dropped == 0
    filled = [a for a in bundle.profile.actions if a.step == "missing" and a.column == "x"]
    assert filled[0].values_changed == 10
    assert bundle.profile.missing == {"x": 10, "colour": 25}
    assert not torch.isnan(bundle.X_train).any()
    # categorical missing: the most frequent training category, or its own level
    expected_colour = "__missing__" if strategy == "constant" else "red"
    assert pre.fill_["colour"] == expected_colour


def test_missing_drop_removes_rows_and_counts_them(tmp_path):
    cfg = config(
        source="csv", path=_write(tmp_path, _frame_with_missing()), clean={"missing": "drop"}
    )
    bundle = prepare_data(cfg, seed=0)
    # rows 0, 10, ... miss x (10 rows); rows 3, 7, 11, ... miss colour (25); no overlap
    assert bundle.profile.rows_dropped == 35
    assert sum(bundle.profile.rows.values()) == 65
    assert _ledger_balances(bundle)


def test_missing_error_stops_at_the_first_missing_value(tmp_path):
    from tunelab.errors import DataError

    cfg = config(
        source="csv", path=_write(tmp_path, _frame_with_missing()), clean={"missing": "error"}
    )
    with pytest.raises(DataError, match=r"column 'x' row 1 \(line 2\)"):
        prepare_data(cfg, seed=0)


def test_inf_is_reported_as_non_finite_and_filled_like_missing(tmp_path):
    # issue 16: inf was reported as "missing"; it is counted as its own thing now, and filled
    # like a missing value with an explicit "non-finite" action.
    frame = pd.DataFrame({"x": [1.0, np.inf, 3.0, 4.0] * 10, "label": [0, 1] * 20})
    bundle = prepare_data(config(source="csv", path=_write(tmp_path, frame)), seed=0)
    assert bundle.profile.missing == {}
    assert bundle.profile.non_finite == {"x": 10}
    (action,) = [a for a in bundle.profile.actions if a.step == "non-finite"]
    assert action.column == "x" and action.values_changed == 10
    assert "treated as missing" in action.detail
    filled = [a for a in bundle.profile.actions if a.step == "missing" and a.column == "x"]
    assert filled[0].values_changed == 10
    assert torch.isfinite(bundle.X_train).all()
    text = bundle.profile.to_text(width=160)
    assert "non-finite" in text and "non-finite: inf, -inf" in text


@pytest.mark.parametrize("token", ["inf", "-inf", "1e400", "1e308", "-1e39"])
def test_every_non_finite_spelling_is_counted_apart_from_missing(tmp_path, token):
    path = tmp_path / "d.csv"
    body = "".join(
        f"{token if i % 8 == 0 else i},{'' if i == 3 else i % 3},{i % 2}\n" for i in range(48)
    )
    path.write_text("x,z,label\n" + body)
    bundle = prepare_data(config(source="csv", path=str(path)), seed=0)
    assert bundle.profile.non_finite == {"x": 6}
    assert bundle.profile.missing == {"z": 1}
    assert all(torch.isfinite(getattr(bundle, f"X_{s}")).all() for s in ("train", "val", "test"))


def test_non_finite_labels_are_dropped_and_said_apart_from_missing_ones(tmp_path):
    path = tmp_path / "d.csv"
    labels = ["inf" if i == 5 else "" if i == 7 else str(i * 1.5) for i in range(60)]
    path.write_text("x,label\n" + "".join(f"{i},{v}\n" for i, v in enumerate(labels)))
    bundle = prepare_data(config(source="csv", path=str(path), task="regression"), seed=0)
    details = {a.detail: a.rows_dropped for a in bundle.profile.actions if a.step == "labels"}
    assert details["dropped rows without a label"] == 1
    assert [n for d, n in details.items() if "non-finite" in d] == [1]
    assert torch.isfinite(bundle.y_train).all()


def test_missing_error_names_a_huge_value_as_non_finite(tmp_path):
    from tunelab.errors import DataError

    path = tmp_path / "d.csv"
    path.write_text(
        "x,label\n" + "".join(f"{'1e308' if i == 4 else i},{i % 2}\n" for i in range(20))
    )
    with pytest.raises(DataError, match=r"row 5 \(line 6\): non-finite value 1e\+308"):
        prepare_data(config(source="csv", path=str(path), clean={"missing": "error"}), seed=0)


def test_fill_actions_name_the_rule_each_column_got(tmp_path):
    path = _write(tmp_path, _frame_with_missing())
    for strategy, numeric in (
        ("median", "filled with the training median"),
        ("mean", "filled with the training mean"),
        ("most_frequent", "filled with the most frequent training value"),
    ):
        bundle = prepare_data(config(source="csv", path=path, clean={"missing": strategy}), seed=0)
        details = {a.column: a.detail for a in bundle.profile.actions if a.step == "missing"}
        assert details["x"].startswith(numeric)
        # a categorical fill is the most frequent category whatever the numeric rule
        assert details["colour"] == "filled with the most frequent training category 'red'"
        assert "training median 'red'" not in bundle.profile.to_text(width=160)


def _frame_with_outliers() -> pd.DataFrame:
    rng = np.random.default_rng(2)
    x = rng.normal(0, 1, 400)
    x[:4] = [40.0, -35.0, 50.0, 60.0]
    return pd.DataFrame({"x": x, "label": np.arange(400) % 2})


@pytest.mark.parametrize("method", ["zscore", "iqr"])
def test_outliers_are_clipped_to_training_bounds(tmp_path, method):
    cfg = config(
        source="csv",
        path=_write(tmp_path, _frame_with_outliers()),
        clean={"outliers": method, "outlier_action": "clip"},
        scale="none",
    )
    bundle = prepare_data(cfg, seed=0)
    lo, hi = bundle.preprocessing.bounds_["x"]
    every = torch.cat([bundle.X_train, bundle.X_val, bundle.X_test])[:, 0].double()
    assert every.min() >= lo - 1e-5 and every.max() <= hi + 1e-5
    clipped = [a for a in bundle.profile.actions if a.step == "outliers"]
    assert clipped and clipped[0].values_changed >= 4
    assert bundle.profile.rows_dropped == 0
    assert bundle.profile.outliers["x"] >= 4


@pytest.mark.parametrize("method", ["zscore", "iqr"])
def test_outlier_drop_removes_training_rows_only_and_counts_them(tmp_path, method):
    cfg = config(
        source="csv",
        path=_write(tmp_path, _frame_with_outliers()),
        clean={"outliers": method, "outlier_action": "drop"},
        scale="none",
    )
    bundle = prepare_data(cfg, seed=0)
    lo, hi = bundle.preprocessing.bounds_["x"]
    assert bundle.X_train[:, 0].min() >= lo and bundle.X_train[:, 0].max() <= hi
    dropped = bundle.profile.rows_dropped
    assert dropped >= 1
    assert bundle.profile.rows["train"] == 400 - 60 - 60 - dropped
    assert bundle.profile.rows["val"] == 60 and bundle.profile.rows["test"] == 60
    assert _ledger_balances(bundle)


def test_iqr_bounds_come_from_training_quartiles(tmp_path):
    frame = _frame_with_outliers()
    cfg = config(source="csv", path=_write(tmp_path, frame), clean={"outliers": "iqr"})
    bundle = prepare_data(cfg, seed=0)
    train = frame["x"].to_numpy()[bundle.source_rows("train")]
    q1, q3 = np.percentile(train, [25, 75])
    assert bundle.preprocessing.bounds_["x"] == pytest.approx(
        [q1 - 1.5 * (q3 - q1), q3 + 1.5 * (q3 - q1)]
    )


def test_iqr_clipping_a_large_share_of_a_column_is_a_warning(tmp_path):
    from tunelab.data._table_preparer import OUTLIER_WARNING_SHARE

    rng = np.random.default_rng(3)
    skewed = rng.lognormal(0, 1.5, 400)  # heavy right tail: 1.5 x IQR clips ~10% of it
    normal = rng.normal(0, 1, 400)  # clips well under 5%
    frame = pd.DataFrame({"skewed": skewed, "normal": normal, "label": np.arange(400) % 2})
    cfg = config(source="csv", path=_write(tmp_path, frame), clean={"outliers": "iqr"})
    profile = prepare_data(cfg, seed=0).profile
    clipped = {a.column: a for a in profile.actions if a.step == "outliers"}
    assert clipped["skewed"].values_changed / 400 >= OUTLIER_WARNING_SHARE
    assert "clipped" in clipped["skewed"].warning and "%" in clipped["skewed"].warning
    assert not clipped.get("normal") or not clipped["normal"].warning
    assert profile.warnings == [f"column 'skewed': {clipped['skewed'].warning}"]
    text = profile.to_text(width=200)
    assert "warning: column 'skewed': outlier handling clipped" in text
    assert "(see the warning below)" in text
    assert profile.to_dict()["warnings"] == profile.warnings


def test_dtype_declarations_convert_and_count_coerced_values(tmp_path):
    frame = pd.DataFrame(
        {
            "code": [1, 2, 3, 1] * 10,
            "reading": ["1.5", "2.5", "n/a?", "3.5"] * 10,
            "flag": ["yes", "no", "yes", "no"] * 10,
            "label": [0, 1] * 20,
        }
    )
    cfg = config(
        source="csv",
        path=_write(tmp_path, frame),
        clean={"dtypes": {"code": "category", "reading": "float", "flag": "bool"}},
    )
    bundle = prepare_data(cfg, seed=0)
    assert bundle.feature_names == ["code=1", "code=2", "code=3", "reading", "flag"]
    coerced = [a for a in bundle.profile.actions if a.step == "dtype" and a.values_changed]
    assert coerced[0].column == "reading" and coerced[0].values_changed == 10
    assert bundle.profile.missing["reading"] == 10


def test_one_hot_uses_training_categories_and_counts_unseen_ones(tmp_path):
    colours = ["red"] * 50 + ["blue"] * 49 + ["violet"]
    frame = pd.DataFrame({"colour": colours, "x": np.arange(100.0), "label": [0, 1] * 50})
    cfg = config(
        source="csv", path=_write(tmp_path, frame), scale="none", split={"val": 0.1, "test": 0.1}
    )
    bundle = prepare_data(cfg, seed=0)
    categories = bundle.preprocessing.categories_["colour"]
    in_train = "violet" in categories
    all_x = torch.cat([bundle.X_train, bundle.X_val, bundle.X_test])
    onehot = all_x[:, : len(categories)]
    # one 1 per row for seen categories, all zeros for the unseen one
    assert sorted(set(onehot.sum(1).tolist())) == ([1.0] if in_train else [0.0, 1.0])
    unseen = [a for a in bundle.profile.actions if "not seen" in a.detail]
    assert (not unseen) == in_train


def test_categorical_error_policy_refuses_text(tmp_path, csv_file):
    from tunelab.errors import DataError

    cfg = config(source="csv", path=str(csv_file), clean={"categorical": "error"})
    with pytest.raises(DataError, match="column 'colour'"):
        prepare_data(cfg, seed=0)


def test_duplicates_are_counted_and_dropped_when_asked(tmp_path):
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0, 5.0] * 8, "label": [0, 1, 0, 1, 0] * 8})
    path = _write(tmp_path, frame)
    kept = prepare_data(config(source="csv", path=path), seed=0)
    assert kept.profile.duplicate_rows == 35
    assert sum(kept.profile.cross_split_duplicates.values()) > 0
    dropped = prepare_data(
        config(
            source="csv", path=path, clean={"duplicates": "drop"}, split={"val": 0.2, "test": 0.2}
        ),
        seed=0,
    )
    assert dropped.profile.rows_dropped == 35
    assert sum(dropped.profile.rows.values()) == 5
    assert sum(dropped.profile.cross_split_duplicates.values()) == 0


def test_constant_columns_are_reported_and_dropped_when_asked():
    kept = prepare_data(config(dataset="digits"), seed=0)
    assert "pixel_0_0" in kept.profile.constant_columns
    dropped = prepare_data(config(dataset="digits", clean={"constant": "drop"}), seed=0)
    assert "pixel_0_0" not in dropped.feature_names
    assert dropped.input_shape[0] == 64 - len(dropped.preprocessing.constant_features_)


def test_rows_without_a_label_are_dropped_and_counted(tmp_path):
    frame = pd.DataFrame({"x": np.arange(40.0), "label": [0, 1, None, 1] * 10})
    bundle = prepare_data(config(source="csv", path=_write(tmp_path, frame)), seed=0)
    action = next(a for a in bundle.profile.actions if a.step == "labels")
    assert action.rows_dropped == 10
    assert _ledger_balances(bundle)
