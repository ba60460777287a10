"""Fixtures of the compression tests: one CPU thread, digits bundles, small trained models."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from tunelab.compress import fit_loop
from tunelab.config import TrainConfig
from tunelab.data import DataBundle
from tunelab.models import ModelSpec


def _digits(images: bool) -> DataBundle:
    X, y = load_digits(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(X))
    X, y = ((X[order] / 16.0) - 0.3).astype(np.float32), y[order]
    if images:
        X = X.reshape(-1, 1, 8, 8)
    return DataBundle.from_arrays(
        X[:1000], y[:1000], X[1000:1300], y[1000:1300], X[1300:], y[1300:]
    )


@pytest.fixture(scope="session")
def digits() -> DataBundle:
    """1000 train / 300 val / 497 test flat digits."""
    return _digits(images=False)


@pytest.fixture(scope="session")
def digit_images() -> DataBundle:
    """The same split as ``digits``, shaped (1, 8, 8)."""
    return _digits(images=True)


def train(spec: ModelSpec, bundle: DataBundle, epochs: int = 8) -> torch.nn.Module:
    torch.manual_seed(0)
    model = spec.build()
    fit_loop(model, bundle, config=TrainConfig(lr=3e-3), epochs=epochs)
    return model.eval()


@pytest.fixture(scope="session")
def trained_mlp(digits: DataBundle) -> tuple[torch.nn.Module, ModelSpec]:
    torch.set_num_threads(1)
    spec = ModelSpec("mlp", {"depth": 2, "width": 128}, input_shape=(64,), output_size=10)
    return train(spec, digits), spec


@pytest.fixture(scope="session")
def trained_cnn(digit_images: DataBundle) -> tuple[torch.nn.Module, ModelSpec]:
    torch.set_num_threads(1)
    spec = ModelSpec(
        "cnn", {"channels": [16, 32], "hidden": 64}, input_shape=(1, 8, 8), output_size=10
    )
    return train(spec, digit_images, epochs=5), spec


def accuracy(model: torch.nn.Module, bundle: DataBundle) -> float:
    model.eval()
    with torch.no_grad():
        return float((model(bundle.X_test).argmax(1) == bundle.y_test).float().mean())
