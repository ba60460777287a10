"""Fixtures of the deploy tests: real run directories trained from generated and bundled data.

``table_run``: a CSV with numeric, integer and categorical columns, a missing value and string
class labels (exercises the table preprocessing end to end). ``image_run``: digits as 1x8x8
images with a small CNN (image preprocessing, nested-list input).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.datasets import make_classification

from tunelab.config import parse_config


def _train(cfg: dict, run_dir: Path) -> Path:
    from tunelab.train._run import run_training

    torch.set_num_threads(1)
    run_training(parse_config(cfg), run_dir=run_dir)
    return run_dir


@pytest.fixture(scope="session")
def table_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("table")
    X, y = make_classification(
        n_samples=600, n_features=5, n_informative=4, n_redundant=0, random_state=0
    )
    df = pd.DataFrame(X, columns=["f1", "f2", "f3", "f4", "f5"])
    df["color"] = np.where(y == 1, "red", np.where(X[:, 0] > 0, "green", "blue"))
    df["count"] = (np.abs(X[:, 1]) * 3).astype(int)
    df.loc[::17, "f2"] = np.nan
    df["label"] = np.where(y == 1, "yes", "no")
    df.to_csv(root / "table.csv", index=False)
    cfg = {
        "name": "table",
        "data": {"source": "csv", "path": str(root / "table.csv"), "label": "label"},
        "model": {"builder": "mlp", "params": {"depth": 1, "width": 32}},
        "train": {"epochs": 6, "lr": 0.01, "progress": "none", "tensorboard": False},
    }
    return _train(cfg, root / "run")


@pytest.fixture(scope="session")
def image_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("image")
    cfg = {
        "name": "digits-cnn",
        "data": {"source": "sklearn", "dataset": "digits", "as_images": True},
        "model": {"builder": "cnn", "params": {"channels": [8, 16], "hidden": 32}},
        "train": {"epochs": 4, "lr": 0.01, "progress": "none", "tensorboard": False},
    }
    return _train(cfg, root / "run")


def table_row(**changes) -> dict:
    row = {"f1": 0.5, "f2": -1.0, "f3": 0.0, "f4": 1.2, "f5": 0.3, "color": "red", "count": 2}
    row.update(changes)
    return row


@pytest.fixture(scope="session")
def regression_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("regression")
    cfg = {
        "name": "diabetes",
        "data": {"source": "sklearn", "dataset": "diabetes"},
        "model": {"builder": "mlp", "params": {"depth": 1, "width": 16}},
        "train": {"epochs": 3, "progress": "none", "tensorboard": False},
    }
    return _train(cfg, root / "run")
