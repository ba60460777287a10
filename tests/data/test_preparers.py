"""The preparers (one per kind of data) and the bundle's provenance that cross-validation uses."""

from __future__ import annotations

import numpy as np
import pytest

from tunelab.data import (
    CleaningAction,
    DataBundle,
    ImagePreparer,
    Preparer,
    TablePreparer,
    kfold_splits,
    prepare_data,
    register_preparer,
    registered_preparers,
)
from tunelab.data._preparer import preparer_for
from tunelab.data._raw import RawTable
from tunelab.data._sources import load_source
from tunelab.data._split import split_positions
from tunelab.errors import DataError

from .data_helpers import config, table_frame

# ---- provenance ------------------------------------------------------------------------------


def test_replace_keeps_the_provenance_so_folds_still_refit():
    bundle = prepare_data(config(dataset="wine"), seed=0)
    renamed = bundle.replace(name="wine-copy", augmenter=None)
    assert renamed.provenance is bundle.provenance
    for split in ("train", "val", "test"):
        assert np.array_equal(renamed.source_rows(split), bundle.source_rows(split))
    folds = list(kfold_splits(renamed, folds=3, seed=0))
    assert [f.name for f in folds] == ["wine-copy-fold0", "wine-copy-fold1", "wine-copy-fold2"]
    # Refitted per fold (a re-cut bundle would share the original's fitted preprocessing).
    assert all(f.provenance is not None for f in folds)
    assert all(f.preprocessing is not bundle.preprocessing for f in folds)


def test_replace_with_new_split_tensors_drops_stale_provenance_unless_given():
    bundle = prepare_data(config(dataset="iris"), seed=0)
    relabelled = bundle.replace(y_train=bundle.y_train.flip(0))
    assert relabelled.provenance is None and relabelled.source_rows("train") is None
    kept = bundle.replace(y_train=bundle.y_train.flip(0), provenance=bundle.provenance)
    assert kept.provenance is bundle.provenance


def test_provenance_is_a_field_not_shown_in_repr():
    bundle = prepare_data(config(dataset="iris"), seed=0)
    assert "provenance" in DataBundle.__dataclass_fields__
    assert "provenance" not in repr(bundle)
    assert bundle.provenance.preparer is TablePreparer
    assert bundle.provenance.cfg.dataset == "iris" and bundle.provenance.seed == 0
    assert (
        DataBundle.from_arrays(np.zeros((4, 2)), [0, 1, 0, 1], np.zeros((2, 2)), [0, 1]).provenance
        is None
    )


# ---- one implementation per kind, each with its own actions ----------------------------------


def _fitted(kind: type[Preparer], cfg) -> tuple[Preparer, object]:
    raw = load_source(cfg, seed=0)
    preparer = kind(cfg)
    tidied = preparer.tidy(raw, seed=0)
    parts = split_positions(tidied.y, task=tidied.task, split=cfg.split, seed=0, origin="t")
    return preparer.fit(tidied, parts), tidied


def test_constructors_store_and_fit_learns_attributes_ending_in_underscore():
    cfg = config(dataset="iris")
    preparer = TablePreparer(cfg)
    assert preparer.cfg is cfg and not preparer.is_fitted
    assert not [name for name in vars(preparer) if name.endswith("_")]
    fitted, _ = _fitted(TablePreparer, cfg)
    assert fitted.is_fitted
    assert set(fitted.X_) == {"train", "val", "test"}
    assert fitted.X_["train"].dtype == np.float32


def test_the_table_preparer_emits_table_cleaning_actions(tmp_path):
    frame = table_frame(100)
    frame.loc[[3, 40], "age"] = np.nan
    frame["flat"] = 1.0
    frame.to_csv(tmp_path / "t.csv", index=False)
    cfg = config(
        source="csv",
        path=str(tmp_path / "t.csv"),
        clean={"outliers": "zscore", "zscore_threshold": 1.5, "constant": "drop"},
    )
    preparer, tidied = _fitted(TablePreparer, cfg)
    steps = [a.step for a in preparer.actions_]
    assert "missing" in steps and "outliers" in steps and "constant" in steps
    assert ("onehot", "colour") in [(a.step, a.column) for a in preparer.actions_]
    assert steps[-1] == "scale" and "features fitted on the training split" in (
        preparer.actions_[-1].detail
    )
    # The fitted steps' actions are the preparer's; the tidied data keeps the stateless ones.
    assert not {"missing", "scale", "onehot"} & {a.step for a in tidied.actions}
    bundle = prepare_data(cfg, seed=0)
    assert bundle.profile.kind == "table"
    assert [a.step for a in bundle.profile.actions][-len(steps) :] == steps


def test_the_image_preparer_emits_its_own_scale_action():
    cfg = config(dataset="digits", as_images=True)
    preparer, tidied = _fitted(ImagePreparer, cfg)
    assert len(preparer.actions_) == 1
    (action,) = preparer.actions_
    assert action.step == "scale"
    assert action.detail == (
        f"per-channel standard normalisation fitted on the {len(preparer.final_.train)} "
        "training images"
    )
    assert preparer.profile_fields(tidied)["input_shape"] == [1, 8, 8]
    unscaled, _ = _fitted(ImagePreparer, config(dataset="digits", as_images=True, scale="none"))
    assert unscaled.actions_ == []


def test_preparers_are_registered_by_the_kind_of_raw_data():
    assert registered_preparers()["table"] is TablePreparer
    assert registered_preparers()["image"] is ImagePreparer
    assert ImagePreparer.augments and not TablePreparer.augments

    class RawAudio(RawTable):
        kind = "audio"

    with pytest.raises(DataError, match="no preparer for 'audio' data; registered: image, table"):
        preparer_for(RawAudio(origin="clips"))
    with pytest.raises(TypeError, match="needs a Preparer subclass"):
        register_preparer("audio")(dict)


# ---- a user's preparer -----------------------------------------------------------------------


@pytest.fixture
def restore_table_preparer():
    yield
    register_preparer("table")(TablePreparer)


def test_a_user_registered_preparer_prepares_every_table_and_every_fold(restore_table_preparer):
    calls = []

    @register_preparer("table")
    class LoggingTables(TablePreparer):
        def tidy(self, raw, *, seed):
            tidied = super().tidy(raw, seed=seed)
            tidied.actions.append(CleaningAction("audit", "checked by the user's preparer"))
            return tidied

        def fit(self, tidied, parts):
            calls.append(len(parts.train))
            return super().fit(tidied, parts)

    bundle = prepare_data(config(dataset="wine"), seed=0)
    assert ("audit", "checked by the user's preparer") in [
        (a.step, a.detail) for a in bundle.profile.actions
    ]
    assert bundle.provenance.preparer is LoggingTables
    assert bundle.profile.kind == "table"  # inherited: the profile renders it as a table
    folds = list(kfold_splits(bundle, folds=3, seed=0))
    assert len(calls) == 1 + 3
    assert all("audit" in [a.step for a in f.profile.actions] for f in folds)
