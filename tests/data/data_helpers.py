"""Helpers for the data stage tests: configs and small files in every format."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pandas as pd

from tunelab.config import DataConfig


def config(**fields) -> DataConfig:
    """A validated ``DataConfig`` from keyword fields (nested sections as dicts)."""
    return DataConfig.model_validate(fields)


def table_frame(rows: int = 120, seed: int = 0) -> pd.DataFrame:
    """Numeric, categorical and boolean columns with a 3-class string label."""
    rng = np.random.default_rng(seed)
    label = rng.choice(["cat", "dog", "owl"], size=rows)
    return pd.DataFrame(
        {
            "age": rng.normal(40, 10, rows).round(1),
            "income": rng.lognormal(3, 0.5, rows).round(2),
            "colour": rng.choice(["red", "green", "blue"], size=rows),
            "member": rng.random(rows) < 0.5,
            "label": label,
        }
    )


def write_images(root: Path, *, classes=("cat", "dog"), per_class=6, size=(8, 10), fmt="png"):
    """Class sub-folders of small random RGB images."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for name in classes:
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = rng.integers(0, 256, size=(*size, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / f"{i}.{fmt}")
    return root


def write_cifar(folder: Path, *, batches=2, per_batch=20, classes=10, side=8, meta=True):
    """CIFAR-10 python batches: pickled dicts with bytes keys, flat uint8 rows, int labels."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for b in range(batches):
        data = rng.integers(0, 256, size=(per_batch, 3 * side * side), dtype=np.uint8)
        labels = [int(v) for v in np.arange(per_batch) % classes]
        batch = {
            b"batch_label": f"training batch {b + 1} of {batches}".encode(),
            b"labels": labels,
            b"data": data,
            b"filenames": [f"img_{b}_{i}.png".encode() for i in range(per_batch)],
        }
        with open(folder / f"data_batch_{b + 1}", "wb") as handle:
            pickle.dump(batch, handle, protocol=2)
    if meta:
        names = [f"class{i}".encode() for i in range(classes)]
        with open(folder / "batches.meta", "wb") as handle:
            pickle.dump({b"label_names": names, b"num_vis": 3 * side * side}, handle, protocol=2)
    return folder
