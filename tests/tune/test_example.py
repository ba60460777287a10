"""examples/cifar_style_grid.yaml (seed 004) on a tiny generated CIFAR-format data set."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import yaml

from tunelab.config import load_config
from tunelab.tune import run_study

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "cifar_style_grid.yaml"


def _write_cifar(folder: Path, n_train: int = 72, n_test: int = 18) -> None:
    """CIFAR-10's python layout: rows of 3*32*32 uint8, labels, and a batches.meta file."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)

    def batch(n: int) -> dict:
        labels = rng.integers(0, 3, n)
        # Each class has its own mean colour, so a model can learn something in one epoch.
        images = rng.normal(80 + 50 * labels[:, None], 30, (n, 3 * 32 * 32))
        return {b"data": images.clip(0, 255).astype(np.uint8), b"labels": labels.tolist()}

    for name, n in (("data_batch_1", n_train), ("test_batch", n_test)):
        (folder / name).write_bytes(pickle.dumps(batch(n), protocol=2))
    meta = {b"label_names": [b"plane", b"car", b"bird"]}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))


def test_the_seed_004_grid_runs_each_of_its_six_points_once(tmp_path):
    _write_cifar(tmp_path / "cifar")
    data = yaml.safe_load(EXAMPLE.read_text())
    # The example as written, on tiny data: one epoch and a narrow CNN keep it to seconds.
    data["data"]["path"] = str(tmp_path / "cifar")
    data["data"]["split"] = {"val": 0.2, "test": 0.1, "stratify": True}
    data["model"]["params"].update({"channels": [4, 8], "hidden": 16})
    data["train"].update({"epochs": 1, "tensorboard": False, "deterministic": False})
    data["run_root"] = str(tmp_path / "runs")
    data["tune"]["progress"] = "none"
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(data))

    cfg = load_config(path)
    assert cfg.train.weight_decay == 1e-4
    assert cfg.data.augment.crop_padding == 4 and cfg.data.augment.flip

    result = run_study(path)
    points = sorted((t.params["train.lr"], t.params["train.batch_size"]) for t in result.trials)
    assert points == [(lr, b) for lr in (1e-4, 1e-3) for b in (32, 64, 128)]
    assert result.sampler == "grid"
    assert result.directions == ["maximize"]  # val_accuracy
    assert result.count("complete") == 6  # one epoch: nothing can be pruned before the end
    assert (tmp_path / "runs" / "cifar-style-grid" / "best" / "model.safetensors").is_file()
