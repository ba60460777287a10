"""run_training writes the training directory; LR range test; DDP sharding and a 2-process run."""

from __future__ import annotations

import json

import pytest
import torch

from tunelab.config import parse_config
from tunelab.errors import ConfigError, FatalError
from tunelab.models import load_model
from tunelab.train import Trainer, run_training
from tunelab.train._lr_finder import find_lr, suggest_lr, write_lr


def _cfg(tmp_path, **train):
    return parse_config(
        {
            "name": "tiny",
            "run_root": str(tmp_path),
            "data": {"source": "sklearn", "dataset": "digits", "max_rows": 600},
            "model": {"builder": "mlp", "params": {"width": 32}},
            "train": {
                "epochs": 3,
                "progress": "none",
                "checkpoint_interval_s": 0,
                "lr": 3e-3,
                **train,
            },
        }
    )


def test_run_training_writes_the_training_directory(tmp_path):
    cfg = _cfg(tmp_path)
    run = run_training(cfg)
    folder = tmp_path / "tiny"
    assert run.run_dir == folder
    for name in ("config.yaml", "metrics.jsonl", "checkpoint.pt", "result.json"):
        assert (folder / name).is_file(), name
    assert list((folder / "tensorboard").glob("events.out.tfevents.*"))
    assert {"model.safetensors", "model.json", "preprocessing.json"} <= {
        p.name for p in (folder / "best").iterdir()
    }
    result = json.loads((folder / "result.json").read_text())
    assert result["status"] == "completed" and result["best_epoch"] == run.result.best_epoch
    assert result["test_metrics"]["test_accuracy"] > 0.5
    assert len(result["confusion_matrix"]) == 10 and "macro avg" in result["classification_report"]
    assert set(result["per_class"]) == {str(i) for i in range(10)}
    loaded = load_model(folder / "best")
    x = run.bundle.X_test[:5]
    torch.testing.assert_close(loaded.model(x), run.model.eval()(x))


def test_run_training_resume_continues_the_same_run(tmp_path):
    full = run_training(_cfg(tmp_path / "a", epochs=4))
    run_training(_cfg(tmp_path / "b", epochs=2))
    resumed = run_training(_cfg(tmp_path / "b", epochs=4), resume=True)
    assert resumed.result.epochs_run == 4
    drop = ("epoch_time_s",)
    assert [{k: v for k, v in r.items() if k not in drop} for r in resumed.result.history] == [
        {k: v for k, v in r.items() if k not in drop} for r in full.result.history
    ]


def test_a_fresh_run_replaces_the_previous_artifacts(tmp_path):
    run_training(_cfg(tmp_path, epochs=3))
    run_training(_cfg(tmp_path, epochs=1))
    lines = (tmp_path / "tiny" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 1


def test_run_training_refuses_search_spaces(tmp_path):
    cfg = _cfg(tmp_path, batch_size={"choice": [32, 64]})
    with pytest.raises(ConfigError, match="tunelab tune"):
        run_training(cfg)


def test_lr_range_test_sweeps_suggests_and_leaves_the_model_untouched(digits, make_mlp, quiet):
    model = make_mlp()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = find_lr(model, digits, quiet(optimizer="sgd"), steps=80, start_lr=1e-5, end_lr=10)
    assert result.lrs[0] == pytest.approx(1e-5)
    assert all(b > a for a, b in zip(result.lrs, result.lrs[1:], strict=False))
    assert 1e-4 < result.suggestion <= result.min_loss_lr
    assert min(result.losses) < result.losses[0]
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])


def test_suggestion_is_the_steepest_descent_before_the_minimum():
    lrs = [10 ** (-6 + i * 0.1) for i in range(60)]
    losses = [2.0] * 20 + [2.0 - 0.05 * i for i in range(10)] + [1.5 - 0.01 * i for i in range(10)]
    losses += [1.4 + 0.2 * i for i in range(20)]
    assert lrs[20] <= suggest_lr(lrs, losses) <= lrs[29]  # the steep stretch, not the minimum


def test_lr_plot_is_a_png(digits, make_mlp, quiet, tmp_path):
    result = find_lr(make_mlp(), digits, quiet(), steps=20)
    path = result.plot(tmp_path / "lr_find.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_write_lr_edits_the_yaml_in_place_and_keeps_comments(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text("# my experiment\ntrain:\n  epochs: 5  # short\n  lr: 0.1  # old guess\n")
    write_lr(path, 0.00312)
    assert path.read_text() == (
        "# my experiment\ntrain:\n  epochs: 5  # short\n  lr: 0.00312  # old guess\n"
    )
    other = tmp_path / "no_lr.yaml"
    other.write_text("name: x\ntrain:\n    epochs: 5\nmodel:\n    builder: mlp\n")
    write_lr(other, 0.02)
    assert "train:\n    lr: 0.02\n    epochs: 5\n" in other.read_text()
    tuned = tmp_path / "tuned.yaml"
    tuned.write_text("train:\n  lr:\n    low: 0.001\n    high: 0.1\n")
    with pytest.raises(FatalError, match="search space"):
        write_lr(tuned, 0.01)


def test_ddp_sharding_splits_each_epoch_like_distributed_sampler(digits, make_mlp, quiet):
    shards = []
    for rank in range(2):
        trainer = Trainer(quiet(epochs=1), seed=5)
        trainer.fit(make_mlp(), digits)  # sets up the tensors and the generator
        trainer.rank, trainer.world_size = rank, 2
        trainer.state.generator.manual_seed(5)
        shards.append(trainer._epoch_order())
    assert len(shards[0]) == len(shards[1]) == 300
    assert set(shards[0].tolist()).isdisjoint(shards[1].tolist())
    assert set(shards[0].tolist()) | set(shards[1].tolist()) == set(range(600))


@pytest.mark.slow
def test_two_process_ddp_run_trains_and_rank_zero_writes(tmp_path):
    from tunelab.train._distributed import run_distributed

    cfg = _cfg(tmp_path, epochs=2, batch_size=32)
    summary = run_distributed(cfg, 2)
    assert summary["status"] == "completed" and summary["epochs_run"] == 2
    assert summary["test_metrics"]["test_accuracy"] > 0.3
    rows = (tmp_path / "tiny" / "metrics.jsonl").read_text().splitlines()
    assert len(rows) == 2  # one writer: rank 0
