"""Fixtures of the trainer tests: one CPU thread, small digits bundles, tiny models."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import load_diabetes, load_digits

from tunelab.config import TrainConfig
from tunelab.data import DataBundle


@pytest.fixture(scope="session")
def digits() -> DataBundle:
    """600 train / 200 val / 200 test digits rows, features scaled to [0, 1]."""
    X, y = load_digits(return_X_y=True)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(X))[:1000]
    X, y = (X[order] / 16.0).astype(np.float32), y[order]
    return DataBundle.from_arrays(
        X[:600], y[:600], X[600:800], y[600:800], X[800:], y[800:], task="classification"
    )


@pytest.fixture(scope="session")
def tiny_digits() -> DataBundle:
    """160 train / 64 val digits rows, features in [0, 1]: the population tests' bundle."""
    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    return DataBundle.from_arrays(X[:160], y[:160], X[160:224], y[160:224])


@pytest.fixture(scope="session")
def diabetes() -> DataBundle:
    X, y = load_diabetes(return_X_y=True)
    X = ((X - X.mean(0)) / X.std(0)).astype(np.float32)
    y = ((y - y.mean()) / y.std()).astype(np.float32)
    return DataBundle.from_arrays(
        X[:300], y[:300], X[300:370], y[300:370], X[370:], y[370:], task="regression"
    )


def _mlp(inputs: int = 64, outputs: int = 10, width: int = 32, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Linear(inputs, width), torch.nn.ReLU(), torch.nn.Linear(width, outputs)
    )


def _quiet(**overrides) -> TrainConfig:
    base = {
        "epochs": 3,
        "batch_size": 64,
        "progress": "none",
        "tensorboard": False,
        "checkpoint_interval_s": 0,
    }
    base.update(overrides)
    return TrainConfig(**base)


@pytest.fixture
def make_mlp():
    """A tiny seeded MLP factory (64 inputs, 10 outputs by default)."""
    return _mlp


@pytest.fixture
def quiet():
    """A TrainConfig factory that prints nothing and checkpoints every epoch."""
    return _quiet
