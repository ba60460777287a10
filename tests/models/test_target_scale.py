"""Regression heads predict standardised targets, mapped back to the targets' units."""

from __future__ import annotations

import torch

from tunelab.config import DataConfig, ModelConfig, TrainConfig
from tunelab.data import DataBundle, prepare_data
from tunelab.models import build_from_config, load_model, save_model
from tunelab.train import Trainer


def _regression_bundle(offset: float, spread: float) -> DataBundle:
    g = torch.Generator().manual_seed(0)
    X = torch.randn(300, 5, generator=g)
    y = offset + spread * (X[:, 0] - 0.5 * X[:, 1])
    return DataBundle.from_arrays(X[:200], y[:200], X[200:], y[200:], task="regression")


def test_a_fresh_regressor_starts_at_the_target_mean_and_saves_its_scale(tmp_path):
    bundle = _regression_bundle(offset=500.0, spread=40.0)
    model, spec = build_from_config(ModelConfig(builder="mlp", params={"width": 16}), bundle)
    mean, std = spec.target_scale
    assert abs(mean[0] - float(bundle.y_train.mean())) < 1e-3
    assert abs(std[0] - float(bundle.y_train.std(unbiased=False))) < 1e-3
    with torch.no_grad():
        start = model(bundle.X_val).mean()
    assert abs(float(start) - 500.0) < 40.0  # not near 0, as an unscaled head would be
    save_model(tmp_path / "m", model, spec)
    loaded = load_model(tmp_path / "m")
    assert loaded.spec.target_scale == spec.target_scale
    with torch.no_grad():
        assert torch.allclose(loaded.model(bundle.X_val), model.eval()(bundle.X_val))


def test_classifiers_have_no_output_scaling():
    X, y = torch.randn(20, 3), torch.arange(20) % 2
    bundle = DataBundle.from_arrays(X, y, X, y)
    model, spec = build_from_config(ModelConfig(builder="mlp", params={"width": 4}), bundle)
    assert spec.target_scale is None and model.output_scale is None
    assert not any("output_" in k for k in model.state_dict())


def test_diabetes_learns_in_a_few_epochs_at_the_default_learning_rate():
    bundle = prepare_data(DataConfig(source="sklearn", dataset="diabetes"), seed=0)
    model, _ = build_from_config(ModelConfig(builder="mlp", params={"width": 64}), bundle)
    config = TrainConfig(epochs=15, lr=1e-3, progress="none", tensorboard=False)
    result = Trainer(config).fit(model, bundle)
    # Without the scaling the head must learn a mean of 152 at ~lr per step: R2 -3.5 here.
    assert result.best_metrics["val_r2"] > 0.4
