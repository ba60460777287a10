"""A tuned run: ``tunelab tune`` writes ``best/config.yaml``; compress and export read only it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tunelab.compress import compress_run
from tunelab.config import load_config, parse_config
from tunelab.deploy import export_run
from tunelab.rundir import RunDir


@pytest.fixture(scope="module")
def tuned_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[RunDir, object]:
    from tunelab.tune import run_study

    root = tmp_path_factory.mktemp("tuned")
    cfg = parse_config(
        {
            "name": "tiny",
            "seed": 0,
            "run_root": str(root / "runs"),
            "data": {
                "source": "synthetic",
                "synthetic": {
                    "n_samples": 160,
                    "n_features": 6,
                    "n_informative": 4,
                    "n_classes": 3,
                },
            },
            "model": {"builder": "mlp", "params": {"depth": 1, "width": {"choice": [8, 16]}}},
            "train": {
                "epochs": 2,
                "batch_size": 32,
                "tensorboard": False,
                "lr": {"choice": [0.003, 0.03]},
            },
            "tune": {"trials": 2, "pruner": "none", "progress": "none", "heartbeat_interval": 0},
            "compress": {"methods": ["quantize"], "latency_repeats": 5},
        }
    )
    result = run_study(cfg)
    return RunDir.for_config(cfg), result


def test_tune_writes_the_best_trials_plain_config(tuned_run):
    run, result = tuned_run
    best = load_config(run.best_config)
    assert best.search_spaces() == {}
    assert run.read_config().search_spaces()  # config.yaml keeps the search as the user wrote it
    assert best.train.lr == result.best.params["train.lr"]
    assert best.model.params["width"] == result.best.params["model.params.width"]
    # the search's values and the seed the best trial trained from (tune.seed_per_trial)
    values = {**result.best.params, "seed": result.best.user_attrs["seed"]}
    assert best.to_dict() == run.read_config().with_values(values).to_dict()


def test_compress_and_export_use_best_config_and_never_re_derive_it(tuned_run, tmp_path):
    run, _ = tuned_run
    copy = RunDir(tmp_path / "copy")
    shutil.copytree(run.path, copy.path)
    # Without tune.json, and with a config.yaml nobody could resolve, only best/config.yaml is left.
    copy.tune_summary.unlink()
    copy.config.write_text("data: [this is not a config\n")
    table = compress_run(copy.path).table
    assert table.rows[0].variant == "original" and table.rows[-1].variant == "quantize"
    assert table.meta["test_rows"] > 0
    exported = export_run(copy.path, ["onnx"])
    assert exported[0].parity.passed and exported[0].path == copy.export_dir / "model.onnx"
    assert Path(copy.compressed_table).is_file()
