"""Built-in callbacks that record a fit: ``metrics.jsonl``, TensorBoard and the progress display.

They are ordinary :class:`Callback` subclasses that the trainer appends after the user's
callbacks, so a run logs through the same hooks everyone else uses. All per-step work is kept
off the host: TensorBoard samples per-layer gradient norms into a device buffer a few times per
epoch and reads it once at the epoch's end; every scalar of an epoch goes out as one event,
written in the training thread (see :class:`EventFile`).
"""

from __future__ import annotations

import itertools
import json
import math
import os
import socket
import struct
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..rundir import TrainingDir
from ._callbacks import Callback
from ._grad_norms import GradientNormSampler, fused_norms

if TYPE_CHECKING:
    from ._result import FitResult
    from ._trainer import Trainer

GRAD_SAMPLES_PER_EPOCH = 4
# The trainer's files are flushed at most this often during a fit (and always when it ends):
# an epoch of a small model takes milliseconds, and a flush per epoch is a system call per file
# per epoch that no reader can tell from one per second (TensorBoard reloads every few seconds;
# SummaryWriter flushes every 120 s). A resumed run rewrites metrics.jsonl from the checkpoint,
# so a crash loses nothing the checkpoint kept.
FLUSH_EVERY_S = 1.0


def jsonable(value: Any) -> Any:
    """Numbers as JSON allows them: NaN and infinities become ``null``."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


# json.dumps' own settings, except that a NaN/inf raises instead of being written as NaN.
_FINITE_JSON = json.JSONEncoder(allow_nan=False)


class MetricsFile(Callback):
    """Appends each epoch's metrics as one JSON line to ``<run_dir>/metrics.jsonl``."""

    def __init__(self, path: Path, *, flush_every_s: float = FLUSH_EVERY_S) -> None:
        self.path = path
        self.flush_every_s = flush_every_s
        self._fh: Any = None
        self._flushed = 0.0

    def on_fit_start(self, trainer: Trainer) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # A resumed run rewrites the file from the restored history, so epochs logged after the
        # last checkpoint (and then lost to a crash) do not appear twice.
        self._fh = open(self.path, "w", encoding="utf-8")  # noqa: SIM115 (open for the fit)
        for row in trainer.history:
            self._fh.write(json.dumps(jsonable(row)) + "\n")
        self._fh.flush()
        self._flushed = time.monotonic()

    def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: dict[str, Any]) -> None:
        try:  # the usual row, all finite: encoded in C without a jsonable() copy first
            line = _FINITE_JSON.encode(metrics)
        except ValueError:  # NaN/inf somewhere: written as null
            line = json.dumps(jsonable(metrics))
        self._fh.write(line + "\n")
        now = time.monotonic()
        if now - self._flushed >= self.flush_every_s:
            self._fh.flush()
            self._flushed = now

    def on_fit_end(self, trainer: Trainer, result: FitResult) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def _tag(name: str) -> str:
    for prefix in ("train_", "val_", "test_"):
        if name.startswith(prefix):
            return f"{prefix[:-1]}/{name[len(prefix) :]}"
    return name


_EVENT_FILES = itertools.count()


def _masked_crc32c_function() -> Any:
    """TFRecord's masked CRC-32C: google-crc32c's C implementation, else tensorboard's own.

    Without TensorFlow, tensorboard checksums in pure Python (~70 us per record, two records
    per event: a quarter of the per-epoch TensorBoard cost of a small model); the C one is ~1 us.
    """
    try:
        import google_crc32c
    except ImportError:  # pragma: no cover - google-crc32c is a dependency
        from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c

        return masked_crc32c

    def masked_crc32c(data: bytes) -> int:
        crc = google_crc32c.value(data)
        return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF

    return masked_crc32c


class EventFile:
    """A TensorBoard event file written synchronously, one record per event.

    ``SummaryWriter`` hands every event to a background thread that wakes, serialises and
    checksums it while the training thread waits for the GIL; with one event per epoch that
    thread costs more than the event. This writes the TFRecord format tensorboard reads
    (length, masked CRC-32C of the length, the ``event_pb2.Event`` bytes, their masked CRC-32C)
    directly. ``purge_step`` marks a resumed run, so TensorBoard drops the events an earlier
    attempt wrote from that step on. Each event is flushed to disk, or with ``flush_every_s``
    at most that often (and on :meth:`close`).
    """

    def __init__(
        self,
        logdir: Path,
        *,
        purge_step: int | None = None,
        suffix: str = "",
        flush_every_s: float = 0.0,
    ) -> None:
        self.logdir = logdir
        self.purge_step = purge_step
        self.suffix = suffix
        self.flush_every_s = flush_every_s  # 0: flush every event
        self._file: Any = None
        self._crc: Any = None
        self._flushed = 0.0

    def open(self) -> EventFile:
        from tensorboard.compat.proto import event_pb2

        self.logdir.mkdir(parents=True, exist_ok=True)
        name = (
            f"events.out.tfevents.{int(time.time()):010d}.{socket.gethostname()}."
            # Zero-padded: TensorBoard reads a run's files in name order, and an unpadded
            # counter would put file 10 before file 9 of the same second.
            f"{os.getpid()}.{next(_EVENT_FILES):06d}{self.suffix}"
        )
        self._crc = _masked_crc32c_function()
        self._file = open(self.logdir / name, "wb")  # noqa: SIM115 (open for the fit)
        self._write(event_pb2.Event(wall_time=time.time(), file_version="brain.Event:2"))
        if self.purge_step is not None:
            log = event_pb2.SessionLog(status=event_pb2.SessionLog.START)
            self._write(
                event_pb2.Event(wall_time=time.time(), step=self.purge_step, session_log=log)
            )
        self._file.flush()
        self._flushed = time.monotonic()
        return self

    def add_summary(self, summary: Any, step: int) -> None:
        """Append ``summary`` (a ``Summary`` proto) at ``step`` and flush it to disk."""
        from tensorboard.compat.proto import event_pb2

        self.add_event(event_pb2.Event(wall_time=time.time(), step=step, summary=summary))

    def add_event(self, event: Any) -> None:
        """Append ``event`` (an ``Event`` proto, e.g. one built in place); flush it to disk
        unless the last flush is under ``flush_every_s`` old (closing flushes the rest)."""
        self._write(event)
        now = time.monotonic()
        if now - self._flushed >= self.flush_every_s:
            self._file.flush()
            self._flushed = now

    def add_scalars(self, scalars: dict[str, float], step: int) -> None:
        """Append ``{tag: value}`` at ``step`` as one event (one write, one flush)."""
        from tensorboard.compat.proto.summary_pb2 import Summary

        values = [Summary.Value(tag=tag, simple_value=float(v)) for tag, v in scalars.items()]
        if values:
            self.add_summary(Summary(value=values), step)

    def add_text(self, tag: str, text: str, step: int = 0) -> None:
        """Append ``text`` (markdown) under ``tag``: TensorBoard's Text tab."""
        from tensorboard.compat.proto.summary_pb2 import Summary, SummaryMetadata
        from tensorboard.compat.proto.tensor_pb2 import TensorProto
        from tensorboard.compat.proto.tensor_shape_pb2 import TensorShapeProto

        plugin = SummaryMetadata.PluginData(plugin_name="text")
        tensor = TensorProto(
            dtype="DT_STRING",
            string_val=[text.encode("utf-8")],
            tensor_shape=TensorShapeProto(dim=[TensorShapeProto.Dim(size=1)]),
        )
        value = Summary.Value(tag=tag, metadata=SummaryMetadata(plugin_data=plugin), tensor=tensor)
        self.add_summary(Summary(value=[value]), step)

    def _write(self, event: Any) -> None:
        data = event.SerializeToString()
        header = struct.pack("<Q", len(data))
        self._file.write(
            header
            + struct.pack("<I", self._crc(header))
            + data
            + struct.pack("<I", self._crc(data))
        )

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class TensorBoardLogger(Callback):
    """Scalars and LR per epoch, plus a histogram of each layer's gradient norm per epoch.

    The histogram of layer ``L`` at epoch ``e`` holds ``L``'s gradient norm at up to
    ``GRAD_SAMPLES_PER_EPOCH`` evenly spaced optimiser steps of that epoch (every ``every``
    epochs; 0 turns them off). A sample is one fused norm over all gradients, left on the
    device; the epoch's samples are read in one transfer at its end, and its scalars and
    histograms go out together as a single event.
    """

    def __init__(self, logdir: Path, *, every: int = 1) -> None:
        self.logdir = logdir
        self.every = every
        self.writer: Any = None
        self._sampler: GradientNormSampler | None = None
        self._buffer: torch.Tensor | None = None
        self._samples: list[Any] = []  # per sampled step: its per-layer norms (device tensors)
        self._stride = 1
        self._active = False
        self._due: frozenset[int] = frozenset()
        self._one_device = False
        self._tags: dict[str, str] = {}
        self._histogram_tags: list[str] = []
        self._event_cls: Any = None

    def on_fit_start(self, trainer: Trainer) -> None:
        from tensorboard.compat.proto import event_pb2

        self._event_cls = event_pb2.Event  # looked up once, not per epoch
        self.writer = EventFile(
            self.logdir, purge_step=trainer.epoch + 1, flush_every_s=FLUSH_EVERY_S
        ).open()
        self._sampler = GradientNormSampler(trainer.model)
        self._histogram_tags = [f"grad_norm/{layer}" for layer in self._sampler.names]
        shape = (GRAD_SAMPLES_PER_EPOCH, len(self._sampler))
        self._buffer = torch.zeros(shape, device=trainer.device)
        self._stride = max(1, trainer.steps_per_epoch // GRAD_SAMPLES_PER_EPOCH)
        # With every layer on one device, a sample is the fused norm kernel alone (no stack
        # into a buffer row per sample): the epoch's samples are stacked once, at its end.
        devices = {p.device for p in self._sampler.params}
        self._one_device = len(devices) == 1

    def on_epoch_start(self, trainer: Trainer, epoch: int) -> None:
        self._samples = []
        self._active = self.every > 0 and epoch % self.every == 0 and len(self._sampler) > 0
        # The steps sampled this epoch: the first GRAD_SAMPLES_PER_EPOCH multiples of the stride
        # among its steps (global_step counts the steps done before the current one).
        done, stride = trainer.state.global_step, self._stride
        first = done + (-done) % stride
        steps = range(first, done + trainer.steps_per_epoch, stride)[:GRAD_SAMPLES_PER_EPOCH]
        self._due = frozenset(steps) if self._active else frozenset()

    def after_backward(self, trainer: Trainer, loss: torch.Tensor) -> None:
        if trainer.state.global_step not in self._due:
            return
        samples = self._samples
        # One fused norm per layer, left on the device until the epoch's end. A frozen layer
        # (no gradient) counts as 0: the buffer path writes zeros for it.
        if self._one_device:
            grads = [p.grad for p in self._sampler.params]
            if not any(g is None for g in grads):
                samples.append(fused_norms(grads))
                return
        row = self._buffer[len(samples)]
        self._sampler.sample_into(row)
        samples.append(row)

    def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: dict[str, Any]) -> None:
        event_cls = self._event_cls
        event = event_cls(wall_time=time.time(), step=epoch)
        add = event.summary.value.add  # built in place: no Value objects copied into the event
        tags = self._tags
        for k, v in metrics.items():
            if k != "epoch" and isinstance(v, (int, float)) and not isinstance(v, bool):
                tag = tags.get(k)
                if tag is None:
                    tag = tags[k] = _tag(k)
                add(tag=tag, simple_value=float(v))
        if self._active and self._samples:
            # One host transfer of a few dozen numbers, then plain Python: each torch or numpy
            # call on them would cost more than the arithmetic.
            samples = _rows_on_host(self._samples, len(self._sampler))
            for j, tag in enumerate(self._histogram_tags):
                norms = [v for row in samples if math.isfinite(v := row[j])]
                if norms:
                    _fill_histogram(add(tag=tag).histo, norms)
        self.writer.add_event(event)

    def on_fit_end(self, trainer: Trainer, result: FitResult) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def _rows_on_host(samples: list[Any], layers: int) -> list[list[float]]:
    """The sampled norms as float32 rows of Python floats, in one transfer.

    A sample is a sequence of per-layer 0-d norms or a float32 buffer row (see
    :meth:`TensorBoardLogger.after_backward`); both become float32, as the buffer always held.
    """
    flat: list[torch.Tensor] = []
    for sample in samples:
        flat.extend(sample.unbind() if isinstance(sample, torch.Tensor) else sample)
    values = torch.stack(flat).float().tolist()
    return [values[i : i + layers] for i in range(0, len(values), layers)]


def _fill_histogram(histogram: Any, values: list[float], buckets: int = 8) -> None:
    """Fill ``histogram`` (an empty ``HistogramProto``, e.g. inside an event being built) from
    finite ``values`` (at least one): up to ``buckets`` equal buckets, no more than values."""
    buckets = min(buckets, len(values))
    low, high = min(values), max(values)
    width = (high - low) / buckets or 1e-12
    counts = [0.0] * buckets
    for v in values:
        counts[min(int((v - low) / width), buckets - 1)] += 1.0
    histogram.min = low
    histogram.max = high
    histogram.num = float(len(values))
    histogram.sum = float(sum(values))
    histogram.sum_squares = float(sum(v * v for v in values))
    histogram.bucket_limit.extend([low + width * (i + 1) for i in range(buckets)])
    histogram.bucket.extend(counts)


def _headline(metrics: dict[str, Any], monitor: str) -> str:
    keys = [
        "train_loss",
        "val_loss",
        monitor,
        "val_accuracy",
        "val_f1_macro",
        "val_r2",
        "val_mae",
        "lr",
    ]
    seen: list[str] = []
    for k in keys:
        if k in metrics and k not in seen:
            seen.append(k)
    parts = [f"{k} {metrics[k]:.4g}" for k in seen if isinstance(metrics[k], (int, float))]
    return "  ".join(parts)


class PlainProgress(Callback):
    """One line per epoch on stdout (for logs, CI and pipes)."""

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream

    def _print(self, text: str) -> None:
        print(text, file=self.stream or sys.stdout, flush=True)

    def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: dict[str, Any]) -> None:
        total = trainer.config.epochs
        line = _headline(metrics, trainer.config.monitor)
        self._print(f"epoch {epoch}/{total}  {line}  ({metrics.get('epoch_time_s', 0):.2f}s)")

    def on_fit_end(self, trainer: Trainer, result: FitResult) -> None:
        self._print(f"{result.status}: {result.reason}")


class RichProgress(Callback):
    """A live bar per epoch and per batch with the latest metrics and the ETA (TTY only)."""

    def __init__(self) -> None:
        self._progress: Any = None
        self._epoch_task: Any = None
        self._batch_task: Any = None

    def on_fit_start(self, trainer: Trainer) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[info]}"),
            transient=False,
        )
        self._progress.start()
        total = trainer.config.epochs
        self._epoch_task = self._progress.add_task(
            "epochs", total=total, completed=trainer.epoch, info=""
        )
        self._batch_task = self._progress.add_task(
            "batches", total=trainer.steps_per_epoch, info=""
        )

    def on_epoch_start(self, trainer: Trainer, epoch: int) -> None:
        self._progress.reset(self._batch_task, total=trainer.steps_per_epoch, info="")
        self._progress.update(self._epoch_task, description=f"epoch {epoch}")

    def on_batch_end(self, trainer: Trainer, step: int, loss: torch.Tensor) -> None:
        self._progress.advance(self._batch_task)

    def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: dict[str, Any]) -> None:
        line = _headline(metrics, trainer.config.monitor)
        self._progress.console.print(f"epoch {epoch}/{trainer.config.epochs}  {line}")
        # The bar keeps only the loss and the monitored metric, so it fits a narrow terminal.
        short = {k: metrics[k] for k in ("train_loss", trainer.config.monitor) if k in metrics}
        info = "  ".join(f"{k} {v:.4g}" for k, v in short.items())
        self._progress.update(self._epoch_task, advance=1, info=info)

    def on_fit_end(self, trainer: Trainer, result: FitResult) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress.console.print(f"{result.status}: {result.reason}")
            self._progress = None


def builtin_loggers(cfg: Any, run_dir: Path | None) -> list[Callback]:
    """The recording callbacks ``cfg`` asks for: files in ``run_dir``, the progress display."""
    found: list[Callback] = []
    if run_dir is not None:
        found.append(MetricsFile(TrainingDir(run_dir).metrics))
        if cfg.tensorboard:
            found.append(
                TensorBoardLogger(run_dir / "tensorboard", every=cfg.grad_histograms_every)
            )
    progress = cfg.progress
    if progress == "auto":
        progress = "rich" if sys.stdout.isatty() else "plain"
    if progress == "rich":
        found.append(RichProgress())
    elif progress == "plain":
        found.append(PlainProgress())
    return found
