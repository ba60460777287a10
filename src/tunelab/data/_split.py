"""Train/val/test splits and k-fold iterators, stratified for classification, seeded.

Splits are positions into the cleaned data, computed before anything is fitted, so every
statistic learned afterwards sees the training rows only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..config import SplitConfig
from ._raw import data_error


@dataclass
class SplitPositions:
    """Positions of each split in the cleaned data, and whether stratification was used."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    stratified: bool
    note: str | None = None


def split_positions(
    y: np.ndarray, *, task: str, split: SplitConfig, seed: int, origin: str = "data"
) -> SplitPositions:
    """Cut ``len(y)`` rows into train/val/test (test first, then val from the rest)."""
    n = len(y)
    positions = np.arange(n)
    if not split.shuffle:
        n_test = _count(n, split.test)
        n_val = _count(n - n_test, split.val / (1 - split.test) if split.test < 1 else 0)
        n_train = n - n_val - n_test
        parts = SplitPositions(
            positions[:n_train],
            positions[n_train : n_train + n_val],
            positions[n_train + n_val :],
            stratified=False,
        )
        return _checked(parts, origin)
    stratify = split.stratify and task == "classification"
    note = None
    if stratify:
        try:
            parts = _split(positions, y, split, seed, stratified=True)
            return _checked(parts, origin)
        except ValueError as exc:
            # sklearn refuses when a class is too small for every split to get one row.
            note = f"stratification turned off: {str(exc).splitlines()[0]}"
    parts = _split(positions, y, split, seed, stratified=False)
    parts.note = note
    return _checked(parts, origin)


def _split(
    positions: np.ndarray, y: np.ndarray, split: SplitConfig, seed: int, *, stratified: bool
) -> SplitPositions:
    from sklearn.model_selection import train_test_split

    empty = positions[:0]
    rest, test = positions, empty
    if split.test > 0:
        rest, test = train_test_split(
            positions,
            test_size=split.test,
            random_state=seed,
            stratify=y if stratified else None,
        )
    train, val = rest, empty
    if split.val > 0:
        train, val = train_test_split(
            rest,
            test_size=split.val / (1 - split.test),
            random_state=seed + 1,
            stratify=y[rest] if stratified else None,
        )
    return SplitPositions(np.sort(train), np.sort(val), np.sort(test), stratified=stratified)


def _count(n: int, fraction: float) -> int:
    return int(np.ceil(n * fraction)) if fraction > 0 else 0


def _checked(parts: SplitPositions, origin: str) -> SplitPositions:
    if len(parts.train) == 0:
        raise data_error(origin, "too few rows to split: the training split is empty")
    return parts


def fold_positions(
    y: np.ndarray, *, folds: int, stratified: bool, seed: int, origin: str = "data"
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``folds`` (train, val) position pairs over ``len(y)`` rows, shuffled with ``seed``."""
    from sklearn.model_selection import KFold, StratifiedKFold

    if folds < 2:
        raise ValueError(f"folds must be at least 2, got {folds}")
    if folds > len(y):
        raise data_error(origin, f"{folds} folds need at least {folds} rows, got {len(y)}")
    if stratified:
        counts = np.bincount(y.astype(np.int64))
        smallest = int(counts[counts > 0].min())
        if smallest < folds:
            raise data_error(
                origin,
                f"stratified {folds}-fold needs {folds} rows of every class; the smallest class "
                f"has {smallest} (use fewer folds or stratified: false)",
            )
        splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
        pairs = splitter.split(np.zeros(len(y)), y)
    else:
        pairs = KFold(n_splits=folds, shuffle=True, random_state=seed).split(np.zeros(len(y)))
    return [(np.sort(tr), np.sort(va)) for tr, va in pairs]
