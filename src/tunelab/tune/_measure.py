"""Model-cost objectives measured on a trial's trained model: latency, parameters, size.

Multi-objective studies trade a validation metric against one of these; they are measured on
the model the trial actually produced (best weights), on the CPU, so trials compare fairly.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import torch
from torch import nn

COST_METRICS = ("latency_ms", "params", "size_mb")


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def size_mb(model: nn.Module, weights_file: Path | None = None) -> float:
    """Megabytes of the saved weights file, or of parameters plus buffers when there is none."""
    if weights_file is not None and weights_file.is_file():
        return weights_file.stat().st_size / 1e6
    tensors = [*model.parameters(), *model.buffers()]
    return sum(t.numel() * t.element_size() for t in tensors) / 1e6


def latency_ms(model: nn.Module, example: torch.Tensor, *, repeats: int = 20) -> float:
    """Median milliseconds of one forward pass on a batch of one example, on the CPU.

    One example is what a prediction server answers most often; the median over ``repeats``
    runs (after a warm-up) shrugs off the odd slow run on a shared machine.
    """
    was_training = model.training
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    model = model.eval().to("cpu")
    x = example[:1].to("cpu")
    times: list[float] = []
    with torch.inference_mode():
        for _ in range(3):
            model(x)
        for _ in range(repeats):
            start = time.perf_counter()
            model(x)
            times.append((time.perf_counter() - start) * 1000)
    model.to(device).train(was_training)
    return statistics.median(times)


def measure_cost(
    metric: str, model: nn.Module, example: torch.Tensor, weights_file: Path | None = None
) -> float:
    """The value of one of :data:`COST_METRICS` for ``model``."""
    if metric == "latency_ms":
        return latency_ms(model, example)
    if metric == "params":
        return float(count_params(model))
    if metric == "size_mb":
        return size_mb(model, weights_file)
    raise ValueError(f"unknown cost metric {metric!r}; expected one of {', '.join(COST_METRICS)}")
