"""``prepare_data`` and ``kfold_splits``: load -> stateless cleaning -> split -> fit on train ->
transform every split -> profile -> :class:`DataBundle`.

The cleaned-but-unfitted data stays attached to the bundle (``bundle._prepared``) so that
cross-validation refits the whole preprocessing on each fold's training rows instead of reusing
statistics that saw the fold's validation rows.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..config import DataConfig
from ..errors import ConfigError
from ._augment import ImageAugmenter
from ._bundle import DataBundle
from ._columns import NUMERIC_KINDS
from ._image_pre import ImagePreprocessing
from ._profile import CleaningAction, ColumnProfile, DataProfile
from ._sources import load_source
from ._split import SplitPositions, fold_positions, split_positions
from ._table_pre import TablePreprocessing
from ._tidy import TidyImages, TidyTable, tidy

SPLITS = ("train", "val", "test")


@dataclass
class _Prepared:
    """What a bundle was built from: cleaned data, config, seed, the split positions as cut
    (``parts``) and as used after training outliers were dropped (``final``)."""

    tidied: TidyTable | TidyImages
    cfg: DataConfig
    seed: int
    parts: SplitPositions
    final: SplitPositions

    def source_rows(self, split: str) -> np.ndarray:
        return self.tidied.source_index[getattr(self.final, split)]


def prepare_data(cfg: DataConfig, *, seed: int) -> DataBundle:
    """Load, clean, split, fit preprocessing on the training split, scale, profile.

    >>> from tunelab.config import DataConfig
    >>> bundle = prepare_data(DataConfig(dataset="iris"), seed=0)
    >>> bundle.task, bundle.input_shape, bundle.num_classes
    ('classification', (4,), 3)
    """
    raw = load_source(cfg, seed=seed)
    tidied = tidy(raw, cfg, seed=seed)
    if cfg.augment.enabled and not isinstance(tidied, TidyImages):
        raise ConfigError(
            "config error: data.augment.enabled = True — augmentation needs image data "
            "(image_folder, cifar, image arrays in .npz, or sklearn digits with as_images)"
        )
    parts = split_positions(
        tidied.y, task=tidied.task, split=cfg.split, seed=seed, origin=tidied.origin
    )
    return build_bundle(tidied, cfg, parts, seed=seed, name=_name(cfg))


def kfold_splits(
    bundle: DataBundle, folds: int, stratified: bool = True, seed: int = 0
) -> Iterator[DataBundle]:
    """``folds`` bundles over train+val pooled (test untouched), for cross-validation.

    A bundle from :func:`prepare_data` refits its preprocessing on each fold's training rows;
    a bundle from ``DataBundle.from_arrays`` (no fitted preprocessing) is re-cut as it is.
    Stratification applies to classification only.
    """
    prepared: _Prepared | None = getattr(bundle, "_prepared", None)
    stratify = stratified and bundle.task == "classification"
    if prepared is not None:
        pool = np.concatenate([prepared.parts.train, prepared.parts.val])
        y = prepared.tidied.y[pool]
        pairs = fold_positions(
            y, folds=folds, stratified=stratify, seed=seed, origin=prepared.tidied.origin
        )
        for k, (train, val) in enumerate(pairs):
            parts = SplitPositions(
                np.sort(pool[train]), np.sort(pool[val]), prepared.parts.test, stratified=stratify
            )
            yield build_bundle(
                prepared.tidied,
                prepared.cfg,
                parts,
                seed=prepared.seed,
                name=f"{bundle.name}-fold{k}",
            )
        return
    X = torch.cat([bundle.X_train, bundle.X_val])
    y_all = torch.cat([bundle.y_train, bundle.y_val])
    pairs = fold_positions(
        y_all.numpy(), folds=folds, stratified=stratify, seed=seed, origin=bundle.name
    )
    for k, (train, val) in enumerate(pairs):
        tr, va = torch.as_tensor(train), torch.as_tensor(val)
        yield bundle.replace(
            X_train=X[tr],
            y_train=y_all[tr],
            X_val=X[va],
            y_val=y_all[va],
            name=f"{bundle.name}-fold{k}",
        )


def build_bundle(
    tidied: TidyTable | TidyImages,
    cfg: DataConfig,
    parts: SplitPositions,
    *,
    seed: int,
    name: str,
) -> DataBundle:
    """Fit the preprocessing on ``parts.train`` and turn every split into tensors."""
    actions = list(tidied.actions)
    counts: dict[str, dict[str, Counter]] = {s: {} for s in SPLITS}
    train_positions = parts.train
    if isinstance(tidied, TidyTable):
        pre = TablePreprocessing(
            columns=list(tidied.frame.columns),
            kinds=dict(tidied.kinds),
            coerce=dict(tidied.coerce),
            missing=cfg.clean.missing,
            fill_value=cfg.clean.fill_value,
            outliers=cfg.clean.outliers,
            outlier_action=cfg.clean.outlier_action,
            zscore_threshold=cfg.clean.zscore_threshold,
            iqr_factor=cfg.clean.iqr_factor,
            constant=cfg.clean.constant,
            scale=cfg.scale,
            label=tidied.label_name,
            task=tidied.task,
            classes=list(tidied.classes),
        )
        train_frame = tidied.rows(parts.train)
        X = {
            "train": pre.fit_transform(
                train_frame,
                origin=tidied.origin,
                line_offset=tidied.line_offset,
                counts=counts["train"],
            )
        }
        if len(pre.outlier_rows_):
            keep = ~train_frame.index.isin(pre.outlier_rows_)
            train_positions = parts.train[keep]
        for split, positions in (("val", parts.val), ("test", parts.test)):
            X[split] = pre.transform_frame(
                tidied.rows(positions),
                origin=tidied.origin,
                line_offset=tidied.line_offset,
                counts=counts[split],
            )
        actions += _table_actions(pre, tidied, counts, len(parts.train) - len(train_positions))
    else:
        pre = ImagePreprocessing(
            shape=list(tidied.images.shape[1:]),
            pixel_scale=1 / 255 if tidied.images.dtype == np.uint8 else 1.0,
            scale=cfg.scale,
            mode=tidied.mode,
            resize_to=list(tidied.resize_to) if tidied.resize_to else None,
            label=tidied.label_name,
            task=tidied.task,
            classes=list(tidied.classes),
        )
        pre.fit(tidied.rows(parts.train))
        X = {s: pre.normalise(tidied.rows(p)) for s, p in zip(SPLITS, _all(parts), strict=True)}
        if cfg.scale != "none":
            actions.append(
                CleaningAction(
                    "scale",
                    f"per-channel {cfg.scale} normalisation fitted on the "
                    f"{len(parts.train)} training images",
                )
            )
    final = replace(parts, train=train_positions)
    ys = {s: _labels(tidied, p) for s, p in zip(SPLITS, _all(final), strict=True)}
    profile = _profile(tidied, cfg, final, pre, counts, actions, name)
    bundle = DataBundle(
        X_train=torch.from_numpy(X["train"]),
        y_train=ys["train"],
        X_val=torch.from_numpy(X["val"]),
        y_val=ys["val"],
        X_test=torch.from_numpy(X["test"]),
        y_test=ys["test"],
        task=tidied.task,
        classes=list(tidied.classes),
        feature_names=list(pre.feature_names),
        preprocessing=pre,
        augmenter=_augmenter(cfg) if isinstance(tidied, TidyImages) else None,
        profile=profile,
        name=name,
    )
    bundle._prepared = _Prepared(tidied, cfg, seed, parts, final)  # type: ignore[attr-defined]
    return bundle


def _all(parts: SplitPositions) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return parts.train, parts.val, parts.test


def _labels(tidied: TidyTable | TidyImages, positions: np.ndarray) -> torch.Tensor:
    y = tidied.y[positions]
    dtype = torch.int64 if tidied.task == "classification" else torch.float32
    return torch.as_tensor(np.ascontiguousarray(y), dtype=dtype)


def _augmenter(cfg: DataConfig) -> ImageAugmenter | None:
    a = cfg.augment
    if not a.enabled:
        return None
    return ImageAugmenter(crop_padding=a.crop_padding, flip=a.flip, rotate_degrees=a.rotate_degrees)


def _name(cfg: DataConfig) -> str:
    if cfg.source == "sklearn":
        return cfg.dataset
    if cfg.source == "synthetic":
        return f"synthetic-{cfg.synthetic.task}"
    return Path(cfg.path or "data").stem or "data"


# ---- actions and profile ---------------------------------------------------------------------


def _merged(counts: dict[str, dict[str, Counter]], what: str, splits=SPLITS) -> Counter:
    total: Counter = Counter()
    for split in splits:
        total.update(counts[split].get(what, Counter()))
    return total


def _table_actions(
    pre: TablePreprocessing,
    tidied: TidyTable,
    counts: dict[str, dict[str, Counter]],
    outlier_rows: int,
) -> list[CleaningAction]:
    actions = []
    for column, n in _merged(counts, "filled").items():
        fill = pre.fill_[column]
        shown = f"{fill:.6g}" if isinstance(fill, float) else repr(fill)
        actions.append(
            CleaningAction(
                "missing",
                f"filled with the training {pre.missing} {shown}"
                if pre.missing != "constant"
                else f"filled with the constant {shown}",
                column,
                values_changed=n,
            )
        )
    if pre.outliers != "none":
        rule = (
            f"|z-score| > {pre.zscore_threshold:g}"
            if pre.outliers == "zscore"
            else f"{pre.iqr_factor:g} x IQR"
        )
        if pre.outlier_action == "clip":
            for column, n in _merged(counts, "clipped").items():
                lo, hi = pre.bounds_[column] or (0.0, 0.0)
                actions.append(
                    CleaningAction(
                        "outliers",
                        f"clipped to [{lo:.4g}, {hi:.4g}] ({rule}, training bounds)",
                        column,
                        values_changed=n,
                    )
                )
        elif outlier_rows:
            actions.append(
                CleaningAction(
                    "outliers",
                    f"dropped training rows outside the training bounds ({rule}); "
                    "val/test rows are kept so evaluation sees real data",
                    rows_dropped=outlier_rows,
                )
            )
    for column in tidied.frame.columns:
        if tidied.kinds[column] not in NUMERIC_KINDS:
            actions.append(
                CleaningAction(
                    "onehot",
                    f"{len(pre.categories_[column])} categories from the training split",
                    column,
                )
            )
    for column, n in _merged(counts, "unseen").items():
        actions.append(
            CleaningAction(
                "onehot",
                "categories not seen in training encoded as all zeros",
                column,
                values_changed=n,
            )
        )
    if pre.constant == "drop" and pre.constant_features_:
        actions.append(
            CleaningAction(
                "constant",
                f"dropped {len(pre.constant_features_)} feature(s) constant in training: "
                f"{', '.join(pre.constant_features_[:8])}",
            )
        )
    if pre.scale != "none":
        actions.append(
            CleaningAction(
                "scale",
                f"{pre.scale} scaling of {len(pre.feature_names_)} features fitted on the "
                "training split",
            )
        )
    return actions


def _profile(
    tidied: TidyTable | TidyImages,
    cfg: DataConfig,
    parts: SplitPositions,
    pre: TablePreprocessing | ImagePreprocessing,
    counts: dict[str, dict[str, Counter]],
    actions: list[CleaningAction],
    name: str,
) -> DataProfile:
    splits = dict(zip(SPLITS, _all(parts), strict=True))
    notes = list(tidied.notes)
    if cfg.split.stratify and tidied.task == "regression":
        notes.append("regression target: splits are random, not stratified")
    train_hash = tidied.row_hash[parts.train]
    cross = {
        s: int(pd.Series(tidied.row_hash[p]).isin(train_hash).sum())
        for s, p in splits.items()
        if s != "train" and len(p)
    }
    profile = DataProfile(
        name=name,
        origin=tidied.origin,
        kind="table" if isinstance(tidied, TidyTable) else "image",
        task=tidied.task,
        rows_loaded=tidied.rows_loaded,
        rows={s: len(p) for s, p in splits.items()},
        input_shape=list(pre.shape)
        if isinstance(pre, ImagePreprocessing)
        else [len(pre.feature_names_)],
        features=len(pre.feature_names_)
        if isinstance(pre, TablePreprocessing)
        else int(np.prod(pre.shape)),
        classes=list(tidied.classes),
        duplicate_rows=tidied.duplicate_rows,
        cross_split_duplicates=cross,
        actions=actions,
        stratified=parts.stratified,
        notes=notes,
    )
    if tidied.task == "classification":
        for split, positions in splits.items():
            if len(positions):
                counted = np.bincount(tidied.y[positions], minlength=len(tidied.classes))
                profile.class_balance[split] = {
                    c: int(n) for c, n in zip(tidied.classes, counted, strict=True)
                }
        absent = [c for c, n in profile.class_balance["train"].items() if n == 0]
        if absent:
            notes.append(f"no training rows for class(es) {', '.join(absent[:10])}")
    else:
        for split, positions in splits.items():
            if len(positions):
                y = tidied.y[positions].astype(np.float64)
                profile.target[split] = {
                    "mean": float(y.mean()),
                    "std": float(y.std()),
                    "min": float(y.min()),
                    "max": float(y.max()),
                }
    if isinstance(tidied, TidyTable):
        assert isinstance(pre, TablePreprocessing)
        profile.columns = _table_columns(tidied, pre, counts, tidied.frame.iloc[parts.train])
        profile.constant_columns = [c.name for c in profile.columns if c.constant]
        profile.outlier_rule = _outlier_rule(pre)
    else:
        assert isinstance(pre, ImagePreprocessing)
        profile.columns = [
            ColumnProfile(name=f"channel {i}", kind="pixel", min=_f(lo), mean=_f(mu), max=_f(hi))
            for i, (lo, mu, hi) in enumerate(
                zip(pre.channel_min_, pre.channel_mean_, pre.channel_max_, strict=True)
            )
        ]
    return profile


def _outlier_rule(pre: TablePreprocessing) -> str:
    if pre.outliers == "iqr":
        return f"outside {pre.iqr_factor:g} x IQR of the training quartiles"
    rule = f"|z-score| > {pre.zscore_threshold:g} against training mean and std"
    return rule if pre.outliers == "zscore" else rule + " (reported only)"


def _table_columns(
    tidied: TidyTable,
    pre: TablePreprocessing,
    counts: dict[str, dict[str, Counter]],
    train: pd.DataFrame,
) -> list[ColumnProfile]:
    """Per raw column; outliers are counted on the training rows as fitted (dropped ones
    included) plus val/test against the training bounds."""
    constant = set(pre.constant_features_)
    held_out = _merged(counts, "outliers", ("val", "test"))
    columns = []
    for column in tidied.frame.columns:
        kind = tidied.kinds[column]
        entry = ColumnProfile(
            name=column,
            kind=kind,
            missing=tidied.missing.get(column, 0),
            outliers=pre.outlier_counts_.get(column, 0) + held_out.get(column, 0),
        )
        if kind in NUMERIC_KINDS:
            values = train[column].to_numpy(dtype=np.float64)
            present = values[~np.isnan(values)]
            if present.size:
                entry.min, entry.mean, entry.max = (
                    _f(present.min()),
                    _f(present.mean()),
                    _f(present.max()),
                )
            entry.constant = column in constant
        else:
            categories = pre.categories_[column]
            entry.distinct = len(categories)
            entry.constant = all(f"{column}={c}" in constant for c in categories)
        columns.append(entry)
    return columns


def _f(value: float) -> float | None:
    value = float(value)
    return value if np.isfinite(value) else None
