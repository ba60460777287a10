"""``prepare_data`` and ``kfold_splits``: load -> stateless cleaning -> split -> fit on train ->
transform every split -> profile -> :class:`DataBundle`.

What differs between tables and images lives in their :class:`Preparer`; this module is the
pipeline common to every kind. The cleaned-but-unfitted data stays on the bundle as
``bundle.provenance`` so that cross-validation refits the whole preprocessing on each fold's
training rows instead of reusing statistics that saw the fold's validation rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..config import DataConfig
from ..errors import ConfigError
from . import _image_preparer, _table_preparer  # noqa: F401 (they register the built-in kinds)
from ._bundle import DataBundle, Provenance
from ._preparer import Preparer, preparer_for
from ._profile import CleaningAction, DataProfile
from ._sources import load_source
from ._split import SPLITS, SplitPositions, fold_positions, split_positions
from ._tidy import Tidy


def prepare_data(cfg: DataConfig, *, seed: int) -> DataBundle:
    """Load, clean, split, fit preprocessing on the training split, scale, profile.

    >>> from tunelab.config import DataConfig
    >>> bundle = prepare_data(DataConfig(dataset="iris"), seed=0)
    >>> bundle.task, bundle.input_shape, bundle.num_classes
    ('classification', (4,), 3)
    """
    raw = load_source(cfg, seed=seed)
    kind = preparer_for(raw)
    tidied = kind(cfg).tidy(raw, seed=seed)
    if cfg.augment.enabled and not kind.augments:
        raise ConfigError(
            "config error: data.augment.enabled = True — augmentation needs image data "
            "(image_folder, cifar, image arrays in .npz, or sklearn digits with as_images)"
        )
    parts = split_positions(
        tidied.y, task=tidied.task, split=cfg.split, seed=seed, origin=tidied.origin
    )
    return build_bundle(kind, tidied, cfg, parts, seed=seed, name=_name(cfg))


def kfold_splits(
    bundle: DataBundle, folds: int, stratified: bool = True, seed: int = 0
) -> Iterator[DataBundle]:
    """``folds`` bundles over train+val pooled (test untouched), for cross-validation.

    A bundle with :attr:`~DataBundle.provenance` (from :func:`prepare_data`) refits its
    preprocessing on each fold's training rows; one without (``DataBundle.from_arrays``) is
    re-cut as it is. Stratification applies to classification only.
    """
    stratify = stratified and bundle.task == "classification"
    if bundle.provenance is not None:
        yield from _refitted_folds(bundle, bundle.provenance, folds, stratify, seed)
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


def _refitted_folds(
    bundle: DataBundle, origin: Provenance, folds: int, stratify: bool, seed: int
) -> Iterator[DataBundle]:
    pool = np.concatenate([origin.parts.train, origin.parts.val])
    pairs = fold_positions(
        origin.tidied.y[pool],
        folds=folds,
        stratified=stratify,
        seed=seed,
        origin=origin.tidied.origin,
    )
    for k, (train, val) in enumerate(pairs):
        parts = SplitPositions(
            np.sort(pool[train]), np.sort(pool[val]), origin.parts.test, stratified=stratify
        )
        yield build_bundle(
            origin.preparer,
            origin.tidied,
            origin.cfg,
            parts,
            seed=origin.seed,
            name=f"{bundle.name}-fold{k}",
        )


def build_bundle(
    kind: type[Preparer[Any, Any]],
    tidied: Tidy,
    cfg: DataConfig,
    parts: SplitPositions,
    *,
    seed: int,
    name: str,
) -> DataBundle:
    """Fit ``kind``'s preprocessing on ``parts.train`` and turn every split into tensors."""
    preparer = kind(cfg).fit(tidied, parts)
    final = preparer.final_
    ys = {s: _labels(tidied, getattr(final, s)) for s in SPLITS}
    actions = [*tidied.actions, *preparer.actions_]
    profile = _profile(tidied, cfg, preparer, actions, name)
    return DataBundle(
        X_train=torch.from_numpy(preparer.X_["train"]),
        y_train=ys["train"],
        X_val=torch.from_numpy(preparer.X_["val"]),
        y_val=ys["val"],
        X_test=torch.from_numpy(preparer.X_["test"]),
        y_test=ys["test"],
        task=tidied.task,  # type: ignore[arg-type]
        classes=list(tidied.classes),
        feature_names=list(preparer.preprocessing_.feature_names),
        preprocessing=preparer.preprocessing_,
        augmenter=preparer.augmenter(),
        profile=profile,
        name=name,
        provenance=Provenance(tidied, cfg, seed, kind, parts, final),
    )


def _labels(tidied: Tidy, positions: np.ndarray) -> torch.Tensor:
    y = tidied.y[positions]
    dtype = torch.int64 if tidied.task == "classification" else torch.float32
    return torch.as_tensor(np.ascontiguousarray(y), dtype=dtype)


def _name(cfg: DataConfig) -> str:
    if cfg.source == "sklearn":
        return cfg.dataset
    if cfg.source == "synthetic":
        return f"synthetic-{cfg.synthetic.task}"
    return Path(cfg.path or "data").stem or "data"


# ---- profile ---------------------------------------------------------------------------------


def _profile(
    tidied: Tidy,
    cfg: DataConfig,
    preparer: Preparer[Any, Any],
    actions: list[CleaningAction],
    name: str,
) -> DataProfile:
    """The profile's common part (rows, duplicates, balance or target) plus the kind's part
    (``preparer.profile_fields``)."""
    parts = preparer.final_
    splits = {s: getattr(parts, s) for s in SPLITS}
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
        kind=preparer.kind,
        task=tidied.task,
        rows_loaded=tidied.rows_loaded,
        rows={s: len(p) for s, p in splits.items()},
        classes=list(tidied.classes),
        duplicate_rows=tidied.duplicate_rows,
        cross_split_duplicates=cross,
        actions=actions,
        stratified=parts.stratified,
        notes=notes,
        **preparer.profile_fields(tidied),
    )
    if tidied.task == "classification":
        _class_balance(profile, tidied, splits)
    else:
        _target_stats(profile, tidied, splits)
    return profile


def _class_balance(profile: DataProfile, tidied: Tidy, splits: dict[str, np.ndarray]) -> None:
    for split, positions in splits.items():
        if len(positions):
            counted = np.bincount(tidied.y[positions], minlength=len(tidied.classes))
            profile.class_balance[split] = {
                c: int(n) for c, n in zip(tidied.classes, counted, strict=True)
            }
    absent = [c for c, n in profile.class_balance["train"].items() if n == 0]
    if absent:
        profile.notes.append(f"no training rows for class(es) {', '.join(absent[:10])}")


def _target_stats(profile: DataProfile, tidied: Tidy, splits: dict[str, np.ndarray]) -> None:
    for split, positions in splits.items():
        if len(positions):
            y = tidied.y[positions].astype(np.float64)
            profile.target[split] = {
                "mean": float(y.mean()),
                "std": float(y.std()),
                "min": float(y.min()),
                "max": float(y.max()),
            }
