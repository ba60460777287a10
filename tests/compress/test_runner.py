"""Composing methods, the comparison table, and ``tunelab compress`` on a real run directory."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tunelab.cli import main
from tunelab.compress import (
    compress_model,
    compress_run,
    layer_widths,
    load_variant,
    onnx_is_quantized,
    predict_batched,
    task_metric,
)
from tunelab.config import CompressConfig, TrainConfig, parse_config
from tunelab.errors import ConfigError

QUICK = CompressConfig(
    distill_epochs=3, finetune_epochs=1, latency_repeats=5, calibration_batches=2
)


def test_methods_compose_in_order_and_every_variant_is_saved_and_loadable(
    trained_mlp, digits, tmp_path
):
    model, spec = trained_mlp
    result = compress_model(
        model,
        spec,
        digits,
        methods=["distill", "prune", "quantize"],
        out_dir=tmp_path,
        config=QUICK,
        train_config=TrainConfig(epochs=2, progress="none", tensorboard=False),
    )
    names = [r.variant for r in result.table.rows]
    assert names == [
        "original",
        "distill",
        "distill+prune",
        "distill+prune+onnx",
        "distill+prune+quantize",
    ]
    assert (tmp_path / "table.json").is_file() and (tmp_path / "table.csv").is_file()
    saved = json.loads((tmp_path / "table.json").read_text())
    assert [r["variant"] for r in saved["rows"]] == names
    original = result.table.rows[0]
    X, y = digits.X_test.numpy(), digits.y_test.numpy()
    for row in result.table.rows:
        loaded = load_variant(row.path)
        _, value = task_metric(predict_batched(loaded.predictor, X), y, "classification")
        assert value == pytest.approx(row.test_metric, abs=1e-9), row.variant
        assert row.delta == pytest.approx(row.test_metric - original.test_metric)
        assert row.b1_p50_ms > 0 and row.b64_p95_ms >= row.b64_p50_ms
    distilled = load_variant(result.folders["distill"])
    assert distilled.spec.params["width"] == 64
    pruned = load_variant(result.folders["distill+prune"])
    assert layer_widths(pruned.model) == [32, 32, 10]
    assert onnx_is_quantized(result.folders["distill+prune+quantize"] / "model.onnx")
    q = result.table.row("distill+prune+quantize")
    assert q.format == "onnx" and q.size_ratio > 10
    assert q.params == result.table.row("distill+prune").params
    assert "int8 static" in q.notes


def test_compressing_twice_replaces_the_table_and_keeps_the_previous(trained_mlp, digits, tmp_path):
    model, spec = trained_mlp
    compress_model(model, spec, digits, methods=["quantize"], out_dir=tmp_path, config=QUICK)
    compress_model(
        model,
        spec,
        digits,
        methods=["prune"],
        out_dir=tmp_path,
        config=QUICK,
        train_config=TrainConfig(epochs=1, progress="none", tensorboard=False),
    )
    # Issue 16: the previous compress run is kept whole as versions/1, not deleted.
    folders = sorted(p.name for p in tmp_path.iterdir() if p.is_dir())
    assert folders == ["original", "prune", "versions"]
    kept = tmp_path / "versions" / "1"
    assert (kept / "table.json").is_file() and (kept / "quantize").is_dir()


def test_unknown_method_names_the_valid_ones(trained_mlp, digits, tmp_path):
    with pytest.raises(ConfigError, match="expected one of distill, prune, quantize"):
        compress_model(*trained_mlp, digits, methods=["prun"], out_dir=tmp_path)


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    from tunelab.train._run import run_training

    cfg = parse_config(
        {
            "name": "digits",
            "data": {"source": "sklearn", "dataset": "digits"},
            "model": {"builder": "mlp", "params": {"depth": 1, "width": 64}},
            "train": {"epochs": 4, "lr": 0.003, "progress": "none", "tensorboard": False},
            "compress": {"finetune_epochs": 1, "latency_repeats": 5, "distill_epochs": 2},
        }
    )
    run_dir = tmp_path_factory.mktemp("runs") / "digits"
    run_training(cfg, run_dir=run_dir)
    return run_dir


def test_compress_run_measures_the_runs_own_test_split(digits_run):
    result = compress_run(digits_run, methods=["prune", "quantize"])
    saved = json.loads((digits_run / "result.json").read_text())
    test_accuracy = saved["test_metrics"]["test_accuracy"]
    original = result.table.rows[0]
    assert original.test_metric == pytest.approx(test_accuracy, abs=1e-6)
    assert (
        result.table.meta["test_rows"] == round(0.15 * 1797) or result.table.meta["test_rows"] > 200
    )
    assert (digits_run / "compressed" / "prune-quantize" / "preprocessing.json").is_file()


def test_cli_compress_prints_the_table(digits_run, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["compress", str(digits_run), "--methods", "quantize"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "original" in out and "quantize" in out and "test accuracy" in out


def test_cli_compress_bad_method_is_one_line_exit_2(digits_run, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["compress", str(digits_run), "--methods", "prune,shrink"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "shrink" in err and "Traceback" not in err


def test_cli_compress_on_a_directory_without_a_model(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["compress", str(tmp_path)])
    assert exit_info.value.code == 2
    assert "holds no saved model" in capsys.readouterr().err


def test_variant_predictions_on_test_rows_are_finite(digits_run):
    loaded = load_variant(digits_run / "best")
    out = loaded.predictor(np.zeros((3, 64), np.float32))
    assert np.isfinite(out).all()
