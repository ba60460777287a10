"""The configs ``tunelab demo`` walks through: a poor start, then a search around the repair.

Two data sets: bundled digits as 1x8x8 images with a CNN (the default), and breast_cancer as a
table with an MLP. The starting config is deliberately poor in ways the doctor can see (inputs
left unscaled, a learning rate far too high); after the doctor's ``--fix`` the search spaces
below are laid over the repaired config, the learning-rate range centred on the repaired value.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

DATASETS = ("digits", "breast_cancer")


@dataclass(frozen=True)
class DemoBudget:
    """How much work each step does; ``quick`` is the size the tests run."""

    trials: int
    workers: int
    epochs: int
    doctor_epochs: int
    doctor_rounds: int
    compress_methods: tuple[str, ...]
    finetune_epochs: int


FULL = DemoBudget(
    trials=20,
    workers=2,
    epochs=8,
    doctor_epochs=4,
    doctor_rounds=3,
    compress_methods=("prune", "quantize"),
    finetune_epochs=2,
)
QUICK = DemoBudget(
    trials=8,  # enough for ASHA to let at least two trials complete (importances need two)
    workers=1,
    epochs=3,
    doctor_epochs=3,
    doctor_rounds=2,
    compress_methods=("quantize",),
    finetune_epochs=1,
)


def poor_config(dataset: str, *, budget: DemoBudget, run_root: str, seed: int = 0) -> dict:
    """The deliberately poor starting point the doctor examines (plain values, no spaces)."""
    if dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {', '.join(DATASETS)}, got {dataset!r}")
    images = dataset == "digits"
    model = (
        {"builder": "cnn", "params": {"channels": [8, 16], "hidden": 32, "dropout": 0.0}}
        if images
        else {"builder": "mlp", "params": {"depth": 2, "width": 64, "dropout": 0.0}}
    )
    return {
        "name": f"demo-{dataset}",
        "seed": seed,
        "run_root": run_root,
        "data": {
            "source": "sklearn",
            "dataset": dataset,
            "as_images": images,
            # Unscaled inputs (digits pixels 0..16, breast_cancer areas in the thousands).
            "scale": "none",
            "split": {"val": 0.15, "test": 0.15, "stratify": True},
        },
        "model": model,
        "train": {
            "epochs": budget.doctor_epochs,
            "optimizer": "sgd",
            "momentum": 0.9,
            "lr": 0.5,  # far too high for SGD with momentum on unscaled inputs
            "batch_size": 64,
            "monitor": "val_accuracy",
            "early_stopping": {"enabled": True, "monitor": "val_accuracy", "patience": 4},
            "progress": "none",
            # One thread per process: the search runs two worker processes on two cores, and a
            # small model on a busy machine loses more to thread contention than it gains.
            "threads": 1,
        },
        "diagnose": {"enabled": True},
        "tune": {
            "trials": budget.trials,
            "workers": budget.workers,
            "metric": "val_accuracy",
            "sampler": "auto",
            "pruner": "asha",
        },
        "compress": {
            "methods": list(budget.compress_methods),
            "finetune_epochs": budget.finetune_epochs,
        },
        "deploy": {"formats": ["onnx"]},
    }


def search_config(repaired: dict[str, Any], *, budget: DemoBudget) -> dict[str, Any]:
    """The repaired config with search spaces over the fields worth tuning.

    Fields the doctor fixed and that are not searched (scaling, clipping, batch norm...) keep
    the repaired value, so the search starts from a healthy configuration.
    """
    cfg = copy.deepcopy(repaired)
    train = cfg.setdefault("train", {})
    params = cfg.setdefault("model", {}).setdefault("params", {})
    lr = float(train.get("lr", 1e-3))
    # Centre the range on the repaired LR: a decade and a half each side, within sane bounds.
    low, high = max(lr / 30, 1e-5), min(lr * 30, 0.3)
    if not low < high:
        low, high = 1e-4, 1e-1
    train.update(
        {
            "epochs": budget.epochs,
            "optimizer": {"choice": ["adam", "adamw", "sgd"]},
            "lr": {"low": _round(low), "high": _round(high), "log": True},
            "batch_size": {"choice": [32, 64, 128]},
            "weight_decay": {"low": 1.0e-6, "high": 1.0e-3, "log": True},
        }
    )
    if cfg["model"].get("builder") == "cnn":
        params["channels"] = {"choice": [[8, 16], [16, 32]]}
        params["hidden"] = {"choice": [32, 64]}
    else:
        params["width"] = {"choice": [32, 64, 128]}
        params["depth"] = {"choice": [1, 2, 3]}
    params["dropout"] = {"low": 0.0, "high": 0.4}
    return cfg


def _round(value: float) -> float:
    """Two significant figures, so the config reads like a person wrote it."""
    digits = 1 - math.floor(math.log10(abs(value)))
    return round(value, digits)
