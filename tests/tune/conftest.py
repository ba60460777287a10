"""Shared fixtures of the tune tests: one torch thread, and a scratch working directory."""

from __future__ import annotations

import pytest


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    """Run the test inside ``tmp_path`` (run directories land under ``tmp_path/runs``)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def tiny_config(root, name="tiny", **sections):
    """A config that trains in well under a second per trial: 160 synthetic rows, a small MLP.

    ``sections`` replace whole top-level keys (``train={...}``, ``tune={...}``).
    """
    config = {
        "name": name,
        "seed": 0,
        "run_root": str(root / "runs"),
        "data": {
            "source": "synthetic",
            "synthetic": {"n_samples": 160, "n_features": 6, "n_informative": 4, "n_classes": 3},
        },
        "model": {"builder": "mlp", "params": {"depth": 1, "width": 8}},
        "train": {"epochs": 2, "batch_size": 32, "lr": {"low": 1e-3, "high": 1e-1, "log": True}},
        "tune": {"trials": 3, "progress": "none", "heartbeat_interval": 0},
    }
    for key, value in sections.items():
        config[key] = value
    return config


WORKER_LRS = [0.001, 0.002, 0.003, 0.005, 0.01, 0.02, 0.03, 0.05]


def worker_study_sections() -> dict:
    """``train``/``tune`` sections for the two-worker tests: a grid of 8 lrs, trials of a few
    seconds (about 30 s of work in all), so the helper process finishes importing torch (slower
    on a loaded CI machine) while trials remain; the parent starts training at once."""
    train = {
        "epochs": 300,
        "early_stopping": {"enabled": False},
        "batch_size": 16,
        "tensorboard": False,
        "deterministic": False,
        "lr": {"choice": WORKER_LRS},
    }
    tune = {"sampler": "grid", "pruner": "none", "progress": "none", "trials": 8}
    return {"train": train, "tune": tune}
