"""The example configs are valid, and the CIFAR-style recipe trains on a tiny generated folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tunelab.config import load_config
from tunelab.train import run_training

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
OURS = ("digits_mlp", "digits_cnn", "cifar_style_resnet", "breast_cancer_mlp", "sequence_lstm")


@pytest.mark.parametrize("name", OURS)
def test_example_config_is_valid_and_plain(name):
    cfg = load_config(EXAMPLES / f"{name}.yaml")
    assert cfg.search_spaces() == {}
    assert cfg.train.epochs >= 20


def test_cifar_recipe_is_seed_004s():
    cfg = load_config(EXAMPLES / "cifar_style_resnet.yaml")
    assert (cfg.data.augment.enabled, cfg.data.augment.crop_padding, cfg.data.augment.flip) == (
        True,
        4,
        True,
    )
    assert (cfg.train.optimizer, cfg.train.lr, cfg.train.weight_decay) == ("adam", 1e-4, 1e-4)
    assert cfg.model.builder == "resnet"


def test_cifar_style_resnet_trains_on_a_tiny_image_folder(tmp_path):
    rng = np.random.default_rng(0)
    for label, channel in (("cat", 0), ("ship", 2)):
        folder = tmp_path / "images" / label
        folder.mkdir(parents=True)
        for i in range(14):
            pixels = rng.integers(0, 80, size=(16, 16, 3), dtype=np.uint8)
            pixels[..., channel] += 150  # the class shows as a dominant colour
            Image.fromarray(pixels).save(folder / f"{i}.png")
    cfg = load_config(EXAMPLES / "cifar_style_resnet.yaml").with_values(
        {
            "data.source": "image_folder",
            "data.path": str(tmp_path / "images"),
            "data.split.val": 0.25,
            "data.split.test": 0.25,
            "model.params.stages": 2,
            "model.params.blocks_per_stage": 1,
            "model.params.width": 4,
            "train.epochs": 2,
            "train.batch_size": 8,
            "train.lr": 1e-2,
            "train.progress": "none",
            "train.tensorboard": False,
        }
    )
    run = run_training(cfg, run_dir=tmp_path / "run")
    assert run.bundle.augmenter is not None and run.bundle.input_shape == (3, 16, 16)
    assert run.result.status == "completed" and run.result.epochs_run == 2
    assert (tmp_path / "run" / "best" / "model.json").is_file()
