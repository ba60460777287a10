"""Train/val/test splits and k-fold iterators, stratified for classification, seeded.

Splits are positions into the cleaned data, computed before anything is fitted, so every
statistic learned afterwards sees the training rows only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..config import SplitConfig
from ._raw import data_error

SPLITS = ("train", "val", "test")


@dataclass
class SplitPositions:
    """Positions of each split in the cleaned data, and whether stratification was used."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    stratified: bool


def split_positions(
    y: np.ndarray, *, task: str, split: SplitConfig, seed: int, origin: str = "data"
) -> SplitPositions:
    """Cut ``len(y)`` rows into train/val/test: ``ceil(n * test)`` test rows,
    ``ceil(n * val)`` val rows, the rest train; stratified means every class is cut in the
    same proportions (largest-remainder rounding, so the totals stay exact)."""
    n = len(y)
    n_test = _count(n, split.test)
    n_val = _count(n, split.val)
    if n - n_test - n_val <= 0:
        raise data_error(origin, f"too few rows ({n}) to split: the training split would be empty")
    positions = np.arange(n)
    if not split.shuffle:
        n_train = n - n_val - n_test
        return SplitPositions(
            positions[:n_train],
            positions[n_train : n_train + n_val],
            positions[n_train + n_val :],
            stratified=False,
        )
    rng = np.random.default_rng(seed)
    stratify = split.stratify and task == "classification"
    groups = [positions[y == c] for c in np.unique(y)] if stratify else [positions]
    sizes = np.array([len(g) for g in groups])
    # Every class keeps at least one training row where it can: a class seen only at
    # evaluation time cannot be learned.
    spare = np.maximum(sizes - 1, 0)
    test_counts = _allocate(spare, n_test, rng, weights=sizes)
    val_counts = _allocate(spare - test_counts, n_val, rng, weights=sizes)
    train, val, test = [], [], []
    for group, t, v in zip(groups, test_counts, val_counts, strict=True):
        shuffled = rng.permutation(group)
        test.append(shuffled[:t])
        val.append(shuffled[t : t + v])
        train.append(shuffled[t + v :])
    return SplitPositions(
        np.sort(np.concatenate(train)),
        np.sort(np.concatenate(val)),
        np.sort(np.concatenate(test)),
        stratified=stratify,
    )


def _allocate(
    available: np.ndarray, total: int, rng: np.random.Generator, weights: np.ndarray | None = None
) -> np.ndarray:
    """Split ``total`` across groups in proportion to ``weights`` (default ``available``),
    never more than a group has; remainders go to the largest fractions, ties at random."""
    weights = available if weights is None else weights
    exact = weights * total / max(1, weights.sum())
    counts = np.minimum(np.floor(exact).astype(np.int64), available)
    order = np.lexsort((rng.random(len(exact)), -(exact - counts)))
    while counts.sum() < total:
        room = order[counts[order] < available[order]]
        if len(room) == 0:
            break
        step = min(total - int(counts.sum()), len(room))
        counts[room[:step]] += 1
    return counts


def _count(n: int, fraction: float) -> int:
    return int(np.ceil(n * fraction)) if fraction > 0 else 0


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
