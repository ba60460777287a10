"""What a compression row reports: latency percentiles, throughput, size and test metric.

Latency is wall time of one call on a batch taken from the test split, with warm-up calls run
first and not counted (first calls pay for allocation, ORT graph optimisation and lazy init),
and with the thread count fixed for torch and ONNX Runtime alike so the two compare fairly.

Each call's process CPU time is recorded too. On a machine shared with other work, wall time
includes the time the scheduler gave to other processes, which inflates long calls far more
than short ones (a 3 ms torch call measured 11 ms wall at load 7 on 2 cores, a 0.5 ms ONNX call
0.5 ms), so ratios of wall times exaggerate speed-ups. With one thread, CPU time is what the
call costs and what it would take on an idle core.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch.nn as nn

from ._predictor import OnnxPredictor, Predictor, fixed_threads


@dataclass(frozen=True)
class Latency:
    """Per-call latency at one batch size (milliseconds) and the rows per second it gives."""

    batch_size: int
    p50_ms: float
    p95_ms: float
    mean_ms: float
    calls: int
    throughput_rows_s: float
    cpu_p50_ms: float = 0.0

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def measure_latency(
    predictor: Predictor,
    X: np.ndarray,
    *,
    batch_sizes: tuple[int, ...] = (1, 64),
    warmup: int = 10,
    repeats: int = 100,
    threads: int | None = 1,
    max_seconds: float = 10.0,
) -> dict[int, Latency]:
    """Time ``predictor`` on batches cut from ``X``.

    Args:
        predictor: what to time.
        X: inputs (e.g. the test split); a batch larger than ``X`` repeats rows.
        batch_sizes: the batch sizes to time.
        warmup: calls before timing starts; never counted.
        repeats: timed calls per batch size (fewer if ``max_seconds`` runs out first, at
            least 5).
        threads: intra-op threads for torch; ONNX predictors are opened with the same count.
        max_seconds: time budget per batch size, so a large model does not stall a run.

    Example:
        >>> import numpy as np, torch.nn as nn
        >>> from tunelab.compress import TorchPredictor, measure_latency
        >>> lat = measure_latency(TorchPredictor(nn.Linear(4, 2)), np.zeros((8, 4), "f"),
        ...                       batch_sizes=(1,), repeats=5, warmup=1)
        >>> lat[1].p50_ms <= lat[1].p95_ms
        True
    """
    if isinstance(predictor, OnnxPredictor) and predictor.threads != threads:
        predictor = OnnxPredictor(predictor.path, threads=threads)
    results: dict[int, Latency] = {}
    with fixed_threads(threads):
        for batch_size in batch_sizes:
            batch = _batch(X, batch_size)
            for _ in range(warmup):
                predictor(batch)
            times: list[float] = []
            cpu: list[float] = []
            started = time.perf_counter()
            while len(times) < repeats and (
                len(times) < 5 or time.perf_counter() - started < max_seconds
            ):
                c0, t0 = time.process_time(), time.perf_counter()
                predictor(batch)
                times.append(time.perf_counter() - t0)
                cpu.append(time.process_time() - c0)
            ms = np.asarray(times) * 1000.0
            p50 = float(np.percentile(ms, 50))
            results[batch_size] = Latency(
                batch_size=batch_size,
                p50_ms=p50,
                p95_ms=float(np.percentile(ms, 95)),
                mean_ms=float(ms.mean()),
                calls=len(times),
                throughput_rows_s=batch_size * 1000.0 / p50 if p50 > 0 else float("inf"),
                cpu_p50_ms=float(np.percentile(cpu, 50)) * 1000.0,
            )
    return results


def _batch(X: np.ndarray, batch_size: int) -> np.ndarray:
    X = np.asarray(X, dtype=np.float32)
    if len(X) == 0:
        raise ValueError("cannot time a model on an empty input set")
    reps = -(-batch_size // len(X))
    return np.ascontiguousarray(
        np.concatenate([X] * reps)[:batch_size] if reps > 1 else X[:batch_size]
    )


def predict_batched(predictor: Predictor, X: np.ndarray, *, batch_size: int = 512) -> np.ndarray:
    """Outputs for all of ``X``, in batches so large test sets do not exhaust memory."""
    outs = [predictor(X[i : i + batch_size]) for i in range(0, len(X), batch_size)]
    return np.concatenate(outs) if outs else np.zeros((0,), dtype=np.float32)


def task_metric(outputs: np.ndarray, y: np.ndarray, task: str) -> tuple[str, float]:
    """``("accuracy", acc)`` for classification, ``("r2", r2)`` for regression."""
    y = np.asarray(y)
    if task == "classification":
        return "accuracy", float((predicted_labels(outputs) == y).mean())
    pred = outputs.reshape(y.shape) if outputs.size == y.size else outputs
    ss_res = float(((y - pred) ** 2).sum())
    ss_tot = float(((y - y.mean(axis=0)) ** 2).sum())
    return "r2", 1.0 - ss_res / ss_tot if ss_tot > 0 else 0.0


def predicted_labels(outputs: np.ndarray) -> np.ndarray:
    """Class indices from logits; a single logit per row is a binary task (logit > 0)."""
    if outputs.ndim == 1 or outputs.shape[-1] == 1:
        return (outputs.reshape(-1) > 0).astype(np.int64)
    return outputs.argmax(axis=-1)


def count_params(model: nn.Module) -> tuple[int, int]:
    """``(parameters, non-zero parameters)``; the second shows what unstructured pruning did."""
    total = nonzero = 0
    for p in model.parameters():
        total += p.numel()
        nonzero += int((p.detach() != 0).sum())
    return total, nonzero


def directory_bytes(paths: list[Path]) -> int:
    """Bytes on disk of the files that make up a variant's weights."""
    return sum(p.stat().st_size for p in paths if p.is_file())
