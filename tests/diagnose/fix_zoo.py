"""Faulty experiment configs for ``tunelab doctor --fix``: what each must be diagnosed with, and
the validation score the repaired config must reach within the repair rounds."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from torch import nn

from tunelab.models import builder_names, register_builder

from .zoo import MemoryCapped

if "memory_capped_mlp" not in builder_names():

    @register_builder("memory_capped_mlp")
    def memory_capped_mlp(*, input_shape, output_size, limit: int = 32, width: int = 64):
        inner = nn.Sequential(
            nn.Flatten(),
            nn.Linear(math.prod(input_shape), width),
            nn.ReLU(),
            nn.Linear(width, output_size),
        )
        return MemoryCapped(inner, limit, mib_per_row=64)


DIGITS = {"source": "sklearn", "dataset": "digits", "max_rows": 700}


@dataclass
class FixCase:
    name: str
    expect: str  # a kind round 0 must report at warning/error
    config: dict[str, Any]
    epochs: int = 4
    metric_at_least: float = 0.8  # best monitored val metric the returned round must reach
    in_suite: bool = True  # False: only bench/doctor_zoo.py runs it (keeps the suite fast)


def _cfg(name: str, model: dict, train: dict, data: dict | None = None) -> dict[str, Any]:
    return {"name": name, "data": data or DIGITS, "model": model, "train": train}


def _mlp(**params: Any) -> dict[str, Any]:
    return {"builder": "mlp", "params": {"depth": 1, "width": 64, **params}}


FIX_CASES = [
    FixCase(
        "diverging",
        "diverging_loss",
        _cfg("diverging", _mlp(), {"optimizer": "sgd", "lr": 5.0, "momentum": 0.0}),
    ),
    FixCase(
        "slow",
        "slow_convergence",
        _cfg("slow", _mlp(), {"optimizer": "sgd", "lr": 1e-4, "momentum": 0.0}),
        metric_at_least=0.75,
    ),
    FixCase(
        "vanishing",
        "vanishing_gradients",
        _cfg(
            "vanishing",
            _mlp(depth=6, width=32, activation="sigmoid"),
            {"optimizer": "sgd", "lr": 0.05, "momentum": 0.0},
        ),
        metric_at_least=0.6,
    ),
    FixCase(
        "dead",
        "dead_relu",
        _cfg("dead", _mlp(depth=2), {"optimizer": "adam", "lr": 0.3}),
    ),
    FixCase(
        "oscillating",
        "oscillating_loss",
        _cfg("oscillating", _mlp(depth=2, width=32), {"lr": 0.05, "batch_size": 16}),
    ),
    FixCase(
        "underfitting",
        "underfitting",
        _cfg("underfitting", _mlp(), {"optimizer": "adam", "lr": 1e-2, "weight_decay": 1.0}),
    ),
    FixCase(
        "unscaled",
        "unscaled_inputs",
        _cfg(
            "unscaled",
            _mlp(width=32, activation="sigmoid"),
            {"optimizer": "sgd", "lr": 0.05, "momentum": 0.9},
            {"source": "sklearn", "dataset": "breast_cancer", "scale": "none"},
        ),
        metric_at_least=0.9,
    ),
    FixCase(
        "out_of_memory",
        "memory_pressure",
        _cfg(
            "out_of_memory",
            {"builder": "memory_capped_mlp", "params": {"limit": 40}},
            {"optimizer": "adam", "lr": 1e-3, "batch_size": 128},
        ),
        metric_at_least=0.6,
    ),
    FixCase(
        "overfitting",
        "overfitting",
        _cfg(
            "overfitting",
            _mlp(depth=2, width=128),
            {"optimizer": "adam", "lr": 1e-3, "batch_size": 32},
            {
                "source": "synthetic",
                "synthetic": {
                    "n_samples": 500,
                    "n_features": 20,
                    "n_informative": 8,
                    "flip_y": 0.2,
                },
            },
        ),
        epochs=20,
        metric_at_least=0.75,
    ),
    # Cases added for issue 17 (bench/doctor_zoo.py runs them at several seeds).
    FixCase(
        "tiny_lr",
        "slow_convergence",
        _cfg("tiny_lr", _mlp(), {"optimizer": "adam", "lr": 1e-6}),
        metric_at_least=0.85,
        in_suite=False,
    ),
    FixCase(
        "narrow",
        "underfitting",
        _cfg("narrow", _mlp(width=3), {"optimizer": "adam", "lr": 1e-2}),
        epochs=12,
        metric_at_least=0.85,
        in_suite=False,
    ),
    FixCase(
        "imbalanced_f1",
        "class_imbalance",
        _cfg(
            "imbalanced_f1",
            _mlp(width=32),
            {"optimizer": "adam", "lr": 3e-3, "monitor": "val_f1_macro"},
            {
                "source": "synthetic",
                "synthetic": {
                    "n_samples": 1200,
                    "n_features": 10,
                    "n_informative": 5,
                    "weights": [0.94, 0.06],
                    "flip_y": 0.0,
                },
            },
        ),
        epochs=8,
        metric_at_least=0.6,  # macro F1 with ~10 minority rows in validation: noisy
        in_suite=False,
    ),
]
