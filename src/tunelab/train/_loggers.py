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
from ._grad_norms import GradientNormSampler

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
    """Appends each epoch's metrics as one JSON line to ``<run_dir>/metrics.jsonl``.

    Rows are encoded and written when the file is flushed: at most once every
    ``flush_every_s`` seconds during a fit, and when it ends (:meth:`close`). Encoding a batch
    of rows in one go costs a fraction of encoding each between the epochs' kernels, which
    evict the interpreter's data from the caches.
    """

    def __init__(self, path: Path, *, flush_every_s: float = FLUSH_EVERY_S) -> None:
        self.path = path
        self.flush_every_s = flush_every_s
        self._fh: Any = None
        self._pending: list[dict[str, Any]] = []
        self._flushed = 0.0

    def on_fit_start(self, trainer: Trainer) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # A resumed run rewrites the file from the restored history, so epochs logged after the
        # last checkpoint (and then lost to a crash) do not appear twice.
        self._fh = open(self.path, "w", encoding="utf-8")  # noqa: SIM115 (open for the fit)
        self._pending = [dict(row) for row in trainer.history]
        self._flush(time.monotonic())

    def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: dict[str, Any]) -> None:
        self._pending.append(dict(metrics))  # the row as it is now
        now = time.monotonic()
        if now - self._flushed >= self.flush_every_s:
            self._flush(now)

    def on_fit_end(self, trainer: Trainer, result: FitResult) -> None:
        self.close()

    def close(self) -> None:
        """Write what is pending and close the file (also when a fit raised)."""
        if self._fh is not None:
            self._flush(time.monotonic())
            self._fh.close()
            self._fh = None

    def _flush(self, now: float) -> None:
        self._fh.write("".join([_json_line(row) for row in self._pending]))
        self._pending.clear()
        self._fh.flush()
        self._flushed = now


def _json_line(row: dict[str, Any]) -> str:
    try:  # the usual row, all finite: encoded in C without a jsonable() copy first
        return _FINITE_JSON.encode(row) + "\n"
    except ValueError:  # NaN/inf somewhere: written as null
        return json.dumps(jsonable(row)) + "\n"


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
    attempt wrote from that step on.
    """

    def __init__(self, logdir: Path, *, purge_step: int | None = None, suffix: str = "") -> None:
        self.logdir = logdir
        self.purge_step = purge_step
        self.suffix = suffix
        self._file: Any = None
        self._crc: Any = None

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
        return self

    def add_summary(self, summary: Any, step: int) -> None:
        """Append ``summary`` (a ``Summary`` proto) at ``step`` and flush it to disk."""
        from tensorboard.compat.proto import event_pb2

        self.add_event(event_pb2.Event(wall_time=time.time(), step=step, summary=summary))

    def add_event(self, event: Any, *, flush: bool = True) -> None:
        """Append ``event`` (an ``Event`` proto, e.g. one built in place); ``flush=False``
        leaves it in the file's buffer until :meth:`flush` or :meth:`close`."""
        self._write(event)
        if flush:
            self._file.flush()

    def flush(self) -> None:
        self._file.flush()

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
    device. An epoch's scalars and histograms go out together as one event (stamped with the
    time the epoch ended), built when the file is flushed: at most once every
    ``FLUSH_EVERY_S`` seconds and when the fit ends, with the samples of all the epochs since
    the last flush read in one transfer.
    """

    def __init__(self, logdir: Path, *, every: int = 1) -> None:
        self.logdir = logdir
        self.every = every
        self.writer: Any = None
        self._sampler: GradientNormSampler | None = None
        self._device = torch.device("cpu")
        self._samples: list[Any] = []  # per sampled step: its per-layer norms (device tensors)
        # Per epoch not yet written: (wall time, epoch, metrics, samples).
        self._pending: list[tuple[float, int, dict[str, Any], list[Any]]] = []
        self._flushed = 0.0
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
        self.writer = EventFile(self.logdir, purge_step=trainer.epoch + 1).open()
        self._flushed = time.monotonic()
        self._pending = []
        self._sampler = GradientNormSampler(trainer.model)
        self._histogram_tags = [f"grad_norm/{layer}" for layer in self._sampler.names]
        self._device = trainer.device
        self._stride = max(1, trainer.steps_per_epoch // GRAD_SAMPLES_PER_EPOCH)
        # With every layer on one device, a sample is the fused norm kernel alone (no stack
        # into a row per sample): the samples are stacked once, when the events are written.
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
        if self._one_device:
            try:  # one fused norm per layer, left on the device until the events are written
                self._samples.append(torch._foreach_norm([p.grad for p in self._sampler.params]))
                return
            except (RuntimeError, TypeError):  # a layer without a gradient (TypeError), ...
                pass
        # ... or no fused kernel for these gradients: the sampler's row path, which counts a
        # frozen layer (no gradient) as 0 and falls back to one norm per layer.
        row = torch.empty(len(self._sampler), device=self._device)
        self._sampler.sample_into(row)
        self._samples.append(row)

    def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: dict[str, Any]) -> None:
        samples = self._samples if self._active else []
        self._pending.append((time.time(), epoch, dict(metrics), samples))
        now = time.monotonic()
        if now - self._flushed >= FLUSH_EVERY_S:
            self._write_pending(now)

    def on_fit_end(self, trainer: Trainer, result: FitResult) -> None:
        self.close()

    def close(self) -> None:
        """Write the pending events and close the file (also when a fit raised)."""
        if self.writer is not None:
            self._write_pending(time.monotonic())
            self.writer.close()
            self.writer = None

    def _write_pending(self, now: float) -> None:
        pending, self._pending = self._pending, []
        layers = len(self._sampler)
        # One host transfer of a few dozen numbers per flush, then plain Python: each torch or
        # numpy call on them would cost more than the arithmetic.
        values = _norms_on_host([sample for *_, samples in pending for sample in samples])
        at = 0
        for wall_time, epoch, metrics, samples in pending:
            rows = [values[at + i * layers : at + (i + 1) * layers] for i in range(len(samples))]
            at += len(samples) * layers
            self.writer.add_event(self._event(wall_time, epoch, metrics, rows), flush=False)
        self.writer.flush()
        self._flushed = now

    def _event(
        self, wall_time: float, epoch: int, metrics: dict[str, Any], rows: list[list[float]]
    ) -> Any:
        """The epoch's event: its numeric metrics as scalars, a histogram per layer."""
        event = self._event_cls(wall_time=wall_time, step=epoch)
        add = event.summary.value.add  # built in place: no Value objects copied into the event
        tags = self._tags
        for k, v in metrics.items():
            if k != "epoch" and isinstance(v, (int, float)) and not isinstance(v, bool):
                tag = tags.get(k)
                if tag is None:
                    tag = tags[k] = _tag(k)
                add(tag=tag, simple_value=float(v))
        if rows:
            for j, tag in enumerate(self._histogram_tags):
                norms = [v for row in rows if math.isfinite(v := row[j])]
                if norms:
                    _fill_histogram(add(tag=tag).histo, norms)
        return event


def _norms_on_host(samples: list[Any]) -> list[float]:
    """The sampled norms, flattened, as float32 values in Python floats (one transfer).

    A sample is a sequence of per-layer 0-d norms or a float32 row (see
    :meth:`TensorBoardLogger.after_backward`); both become float32, as the histograms always
    held.
    """
    flat: list[torch.Tensor] = []
    for sample in samples:
        flat.extend(sample.unbind() if isinstance(sample, torch.Tensor) else sample)
    return torch.stack(flat).float().tolist() if flat else []


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


def close_files(callbacks: list[Callback]) -> None:
    """Close the files of the recording callbacks among ``callbacks``, writing what they hold.

    ``on_fit_end`` does this when a fit ends; the trainer calls this too when a fit raised.
    """
    for cb in callbacks:
        if isinstance(cb, (MetricsFile, TensorBoardLogger)):
            cb.close()


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
