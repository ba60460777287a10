"""Latency measurement, the comparison table, and refusing pickles as models."""

from __future__ import annotations

import json
import pickle
import time

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from tunelab.compress import (
    CompressionRow,
    CompressionTable,
    Predictor,
    looks_like_pickle,
    measure_latency,
    refuse_pickle,
    task_metric,
)
from tunelab.errors import FatalError


class _Recorder(Predictor):
    def __init__(self, slow_first: float = 0.0) -> None:
        self.calls: list[tuple[int, int]] = []
        self.slow_first = slow_first

    def __call__(self, X: np.ndarray) -> np.ndarray:
        if not self.calls and self.slow_first:
            time.sleep(self.slow_first)
        self.calls.append((len(X), torch.get_num_threads()))
        return np.zeros((len(X), 2), np.float32)


def test_warm_up_calls_are_run_but_not_timed():
    rec = _Recorder(slow_first=0.5)
    lat = measure_latency(rec, np.zeros((10, 3), "f"), batch_sizes=(1, 64), warmup=3, repeats=5)
    assert [n for n, _ in rec.calls] == [1] * 8 + [64] * 8
    assert lat[1].calls == 5 and lat[64].calls == 5
    assert lat[1].p95_ms < 250  # the 500 ms first call was a warm-up
    assert lat[1].p50_ms <= lat[1].p95_ms


def test_latency_runs_with_the_thread_count_fixed_and_restores_it():
    torch.set_num_threads(1)
    rec = _Recorder()
    measure_latency(rec, np.zeros((4, 3), "f"), batch_sizes=(1,), warmup=1, repeats=5, threads=2)
    assert {t for _, t in rec.calls} == {2}
    assert torch.get_num_threads() == 1


def test_batches_larger_than_the_data_repeat_rows():
    rec = _Recorder()
    lat = measure_latency(rec, np.zeros((5, 3), "f"), batch_sizes=(64,), warmup=0, repeats=5)
    assert rec.calls[0][0] == 64
    assert lat[64].throughput_rows_s == pytest.approx(64_000 / lat[64].p50_ms)


def test_task_metric_is_accuracy_or_r2():
    logits = np.array([[2.0, 0.1], [0.0, 1.0], [3.0, 0.0]])
    assert task_metric(logits, np.array([0, 1, 1]), "classification") == ("accuracy", 2 / 3)
    y = np.array([1.0, 2.0, 3.0])
    assert task_metric(y[:, None], y, "regression") == ("r2", 1.0)


def _row(name: str, **kw) -> CompressionRow:
    base = dict(
        variant=name,
        methods=[name],
        format="torch",
        params=100,
        nonzero_params=100,
        file_bytes=4000,
        b1_p50_ms=1.0,
        b1_p95_ms=1.5,
        b64_p50_ms=4.0,
        b64_p95_ms=5.0,
        throughput_rows_s=16000.0,
        metric="accuracy",
        test_metric=0.95,
    )
    base.update(kw)
    return CompressionRow(**base)


def test_table_rows_are_relative_to_the_original_and_saved_as_json_and_csv(tmp_path):
    table = CompressionTable(
        [
            _row("original"),
            _row("quantize", format="onnx", file_bytes=1000, b64_p50_ms=1.0, test_metric=0.94),
        ],
        meta={"test_rows": 100},
    ).finalize()
    q = table.row("quantize")
    assert q.size_ratio == 4.0 and q.speedup_b64 == 4.0 and q.delta == pytest.approx(-0.01)
    json_path, csv_path = table.save(tmp_path)
    again = CompressionTable.from_json(json_path.read_text())
    assert again.rows == table.rows
    assert csv_path.read_text().splitlines()[0].startswith("variant,methods,format,params")
    text = table.format()
    assert "-1.00 pt" in text and "4.00" in text


def test_a_pickle_is_refused_whatever_its_name(tmp_path):
    evil = tmp_path / "model.onnx"
    evil.write_bytes(pickle.dumps({"weights": [1, 2, 3]}))
    with pytest.raises(FatalError, match=r"refusing to load .* pickle"):
        refuse_pickle(evil)
    saved = tmp_path / "weights.pt"
    torch.save({"w": torch.zeros(2)}, saved)
    assert looks_like_pickle(saved)
    fine = tmp_path / "model.safetensors"
    save_file({"w": torch.zeros(2)}, str(fine))
    refuse_pickle(fine)  # no error
    json_file = tmp_path / "model.json"
    json_file.write_text(json.dumps({"builder": "mlp"}))
    assert not looks_like_pickle(json_file)
