"""Resource detectors: a data pipeline that starves the model, and memory pressure / OOM."""

from __future__ import annotations

from typing import Any

import torch

from ._detector import Detector, register_detector
from ._finding import Finding
from ._record import TrainingRecord
from ._short import median


def data_source(loader: Any) -> str | None:
    """Where a loader's rows come from: "tensors", "dataset" or None (see TrainingRecord)."""
    dataset = getattr(loader, "dataset", None)
    if dataset is None:
        return None
    return "tensors" if isinstance(dataset, torch.utils.data.TensorDataset) else "dataset"


@register_detector("data_bottleneck")
class DataBottleneck(Detector):
    """Most of the loop's time is spent waiting for the next batch (``Doctor.watch`` timing).

    SageMaker's profiler rules (LowGPUUtilization, IOBottleneck) look for the same thing from
    the device side. Here: data wait above ``WAIT_SHARE`` of wall time (in-memory DataLoaders
    feeding tiny models in our zoo stay below 0.45, even on a loaded machine); trivial waits
    (less than ``MIN_WAIT_PER_BATCH_S`` per batch or ``MIN_TOTAL_WAIT_S`` in all) are ignored,
    since no remedy would pay for itself there.

    A finding is worth a warning only if the prescription can win the time back (practical
    significance: what the user could gain, not what the clock says). When the DataLoader
    serves a ``TensorDataset`` the rows are already in memory: the wait is the DataLoader's
    own per-row indexing and collation (``default_collate`` stacks the rows one by one, a few
    microseconds each), not loading. Nothing is left to pre-process, and worker processes only
    add the cost of sending every batch between processes (PyTorch's data docs: workers help
    when fetching an item is slow). The one change that removes that wait is indexing whole
    batches from the tensors (a ``BatchSampler`` as the loader's ``sampler`` with
    ``batch_size=None``, or slicing a shuffled index yourself), a rewrite of the input loop
    that pays only when the loop would run several times faster. So for in-memory tensors
    the finding is an ``info`` note below ``ERROR_SHARE`` (removing the wait would speed the
    loop up less than 1 / (1 - 0.85), about 6.7x) and a warning above it; for a dataset that
    reads or builds its rows per item (the cases pre-processing once or workers do fix) the
    rule is unchanged.
    """

    kinds = ("data_bottleneck",)
    WAIT_SHARE = 0.6
    ERROR_SHARE = 0.85
    MIN_WAIT_PER_BATCH_S = 2e-3
    MIN_TOTAL_WAIT_S = 0.1

    def check(self, record: TrainingRecord) -> list[Finding]:
        epochs = list(record.epochs)
        if record.partial is not None:
            epochs.append(record.partial)
        wait = sum(e.data_wait_s for e in epochs)
        compute = sum(e.compute_s for e in epochs)
        batches = sum(e.batches for e in epochs)
        if batches == 0 or wait + compute <= 0:
            return []
        # The typical epoch's share and wait per batch (medians over the epochs), not the
        # totals': one stall of the machine (a VM pausing 0.1 s inside a batch fetch) is one
        # epoch's, and in the totals it made a healthy run at 0.5 ms a batch look like a
        # pipeline at 2 ms (zoo, digits with batch 256, once in 255 runs); a pipeline that is
        # slow is slow in every epoch.
        timed = [e for e in epochs if e.batches and e.data_wait_s + e.compute_s > 0]
        if not timed:
            return []
        share = median([e.data_wait_s / (e.data_wait_s + e.compute_s) for e in timed])
        per_batch = median([e.data_wait_s / e.batches for e in timed])
        if (
            share < self.WAIT_SHARE
            or per_batch < self.MIN_WAIT_PER_BATCH_S
            or wait < self.MIN_TOTAL_WAIT_S
        ):
            return []
        in_memory = record.data_source == "tensors"
        if share >= self.ERROR_SHARE:
            severity = "warning" if in_memory else "error"
        else:
            severity = "info" if in_memory else "warning"
        what = (
            " (the rows are tensors in memory: this is the DataLoader's per-row indexing and "
            "collation, which only indexing whole batches removes)"
            if in_memory
            else ""
        )
        return [
            self.finding(
                "data_bottleneck",
                severity,
                f"the loop waited for data {share:.0%} of the time in a typical epoch "
                f"({per_batch * 1e3:.1f} ms per batch against {compute / batches * 1e3:.1f} ms "
                f"of compute, {batches} batches)"
                f"{what}",
                {
                    "wait_share": share,
                    "wait_s": wait,
                    "compute_s": compute,
                    "batches": batches,
                    "wait_per_batch_s": per_batch,
                    "speedup_without_wait": (wait + compute) / compute if compute > 0 else None,
                    "data_source": record.data_source,
                },
            )
        ]


@register_detector("memory_pressure")
class MemoryPressure(Detector):
    """Out-of-memory errors, or a memory peak close to the limit (CUDA allocator or RSS)."""

    kinds = ("memory_pressure",)
    HIGH = 0.9

    def check(self, record: TrainingRecord) -> list[Finding]:
        if record.ooms:
            first = record.ooms[0]
            size = f" with batch size {first['batch_size']}" if first.get("batch_size") else ""
            return [
                self.finding(
                    "memory_pressure",
                    "error",
                    f"out of memory {len(record.ooms)} time(s), first at step {first['step']} "
                    f"(epoch {first['epoch']}){size}: {first['message']}",
                    {"ooms": len(record.ooms), **first},
                    {"epoch": first["epoch"], "step": first["step"]},
                )
            ]
        epochs = list(record.epochs)
        if record.partial is not None:
            epochs.append(record.partial)
        measured = [e for e in epochs if e.memory_peak and e.memory_limit]
        if not measured:
            return []
        top = max(measured, key=lambda e: e.memory_peak / e.memory_limit)
        share = top.memory_peak / top.memory_limit
        if share < self.HIGH:
            return []
        what = "CUDA memory reserved" if top.memory_device == "cuda" else "process memory (RSS)"
        return [
            self.finding(
                "memory_pressure",
                "warning",
                f"peak {what} reached {top.memory_peak / 2**20:.0f} MiB, {share:.0%} of the "
                f"{top.memory_limit / 2**20:.0f} MiB available (epoch {top.epoch})",
                {
                    "peak_bytes": top.memory_peak,
                    "limit_bytes": top.memory_limit,
                    "share": share,
                    "device": top.memory_device,
                },
                record.where(epoch=top.epoch),
            )
        ]
