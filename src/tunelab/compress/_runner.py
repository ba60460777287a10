"""Running a chain of methods on a saved model and measuring every variant on the test split.

``compress_model`` is the engine (a model, its spec and a ``DataBundle`` in; a table and one
saved folder per variant out); ``compress_run`` finds those inputs in a run directory through
:class:`tunelab.rundir.RunDir`: the weights in ``best/``, the data rebuilt from the run's
resolved config (``best/config.yaml`` after tuning) with the run's seed, so the test split is
the one the model never trained on.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch.nn as nn

from ..config import CompressConfig, ExperimentConfig, TrainConfig
from ..data import DataBundle
from ..rundir import RunDir, Versioned
from ._base import CompressContext, Variant, check_order, make_method
from ._io import save_variant
from ._measure import count_params, measure_latency, predict_batched, task_metric
from ._table import CompressionRow, CompressionTable

BATCH_SIZES = (1, 64)


@dataclass
class CompressionResult:
    """The table and where each variant was saved (``{variant name: folder}``)."""

    table: CompressionTable
    folders: dict[str, Path] = field(default_factory=dict)
    out_dir: Path | None = None
    previous: Path | None = None  # where the previous compress run was kept (versions/<N>)


def folder_name(variant: str) -> str:
    return variant.replace("+", "-")


def measure_variant(
    variant: Variant,
    folder: Path,
    bundle: DataBundle,
    *,
    threads: int,
    repeats: int,
    notes: str = "",
    monitor: str | None = None,
) -> CompressionRow:
    """One table row for a saved variant: params, file size, latency, test metric.

    ``monitor`` is the run's ``train.monitor``: when it is a score other than the table's
    metric (``val_f1_macro``), the row also holds its test value.
    """
    predictor = variant.predictor(threads=threads)
    X_test = bundle.X_test.cpu().numpy().astype(np.float32)
    outputs = predict_batched(predictor, X_test)
    metric, value = task_metric(outputs, bundle.y_test.cpu().numpy(), bundle.task)
    monitor_metric, monitor_value = _monitored(monitor, metric, outputs, bundle)
    latency = measure_latency(
        predictor, X_test, batch_sizes=BATCH_SIZES, threads=threads, repeats=repeats
    )
    torch_model = (
        variant.model
        if variant.model is not None
        else (variant.source.model if variant.source is not None else None)
    )
    params, nonzero = count_params(torch_model) if torch_model is not None else (0, 0)
    weights = folder / ("model.safetensors" if variant.format == "torch" else "model.onnx")
    b1, b64 = latency[1], latency[64]
    return CompressionRow(
        variant=variant.name,
        methods=list(variant.methods),
        format=variant.format,
        params=params,
        nonzero_params=nonzero,
        file_bytes=weights.stat().st_size,
        b1_p50_ms=b1.p50_ms,
        b1_p95_ms=b1.p95_ms,
        b64_p50_ms=b64.p50_ms,
        b64_p95_ms=b64.p95_ms,
        throughput_rows_s=b64.throughput_rows_s,
        metric=metric,
        test_metric=value,
        b1_cpu_ms=b1.cpu_p50_ms,
        b64_cpu_ms=b64.cpu_p50_ms,
        threads=threads,
        path=str(folder),
        notes=notes,
        monitor_metric=monitor_metric,
        monitor_value=monitor_value,
    )


def _monitored(
    monitor: str | None, metric: str, outputs: np.ndarray, bundle: DataBundle
) -> tuple[str, float | None]:
    """The monitored score on the test split (``("", None)`` when it is the table's metric
    or not a score the outputs give: a loss)."""
    import torch

    from ..train._metrics import (
        confusion,
        predicted_classes,
        regression_scores,
        regression_values,
        scores_from_confusion,
    )

    name = (monitor or "").removeprefix("val_")
    if not name or name == metric or name == "loss":
        return "", None
    out, y = torch.from_numpy(np.asarray(outputs)), bundle.y_test.cpu()
    if bundle.task == "classification":
        k = max(int(bundle.num_classes), 2)
        scores = scores_from_confusion(confusion(predicted_classes(out), y.long(), k))
    else:
        scores = regression_scores(regression_values(out, y), y)
    return (name, float(scores[name])) if name in scores else ("", None)


def _notes(variant: Variant) -> str:
    parts = []
    if "distill" in variant.info and "distill" in variant.methods:
        d = variant.info["distill"]
        parts.append(f"student {d['student_params']}")
    if "prune" in variant.info and "prune" in variant.methods:
        p = variant.info["prune"]
        if p["structured"]:
            parts.append(f"structured {p['target']:.0%} of neurons/channels removed")
        else:
            parts.append(f"{p['weight_sparsity']:.0%} of weights zero (stored dense)")
    if "quantize" in variant.info and variant.methods[-1:] == ("quantize",):
        parts.append(f"int8 {variant.info['quantize']['mode']} (ONNX Runtime)")
    return "; ".join(parts)


def compress_model(
    model: nn.Module,
    spec: Any,
    bundle: DataBundle,
    *,
    methods: Sequence[str],
    out_dir: str | Path,
    config: CompressConfig | None = None,
    train_config: TrainConfig | None = None,
    preprocessing: Any = None,
    seed: int = 0,
    log: Callable[[str], None] | None = None,
    monitor: str | None = None,
) -> CompressionResult:
    """Apply ``methods`` in order to ``model`` and measure the original and every variant.

    Args:
        model: the trained model (left untouched; methods work on copies).
        spec: its ``ModelSpec``.
        bundle: train/val splits for fine-tuning, distillation and calibration; the test
            split for the table.
        methods: registered method names, applied in this order.
        out_dir: ``compressed/``: one folder per variant plus ``table.json``/``table.csv``.
        config: the ``compress`` section (defaults when None).
        train_config: optimiser, learning rate and batch size for fine-tuning/distillation.
        preprocessing: saved next to every variant so each folder is usable alone.
        seed: seeds fine-tuning, distillation and calibration sampling.
        log: called with progress lines.
        monitor: the run's ``train.monitor``; a score other than the table's metric (e.g.
            ``val_f1_macro``) is measured too (``monitor_metric``/``monitor_value``).
    """
    config = config or CompressConfig()
    train_config = train_config or TrainConfig()
    log = log or (lambda message: None)
    names = list(methods)
    check_order(names)
    instances = [make_method(name, config) for name in names]
    out_dir = Path(out_dir)
    threads, repeats = config.latency_threads, config.latency_repeats

    table = CompressionTable(
        meta={
            "methods": names,
            "threads": threads,
            "test_rows": len(bundle.X_test),
            "batch_sizes": list(BATCH_SIZES),
            "task": bundle.task,
            "builder": spec.builder,
        }
    )
    folders: dict[str, Path] = {}

    def record(variant: Variant, notes: str = "") -> None:
        folder = out_dir / folder_name(variant.name)
        save_variant(folder, variant, preprocessing=preprocessing)
        row = measure_variant(
            variant, folder, bundle, threads=threads, repeats=repeats, notes=notes, monitor=monitor
        )
        table.rows.append(row)
        folders[variant.name] = folder
        log(
            f"{variant.name}: test {row.metric} {row.test_metric:.4f}, "
            f"batch-64 p50 {row.b64_p50_ms:.3f} ms, {row.file_bytes / 1024:.1f} KiB"
        )

    original = copy.deepcopy(model).cpu().eval()
    current = Variant("original", (), spec, model=original)
    preflight = CompressContext(bundle=bundle, train_config=train_config, seed=seed)
    for method in instances:
        method.check(current, preflight)
    # Every check passed: only now is out_dir touched. A previous compress run there is kept
    # whole as out_dir/versions/<N>/ (nothing a user made is lost; tunelab.rundir.Versioned).
    previous = Versioned(out_dir).archive_previous()
    if previous is not None:
        log(f"previous compress run kept as {previous}")
    out_dir.mkdir(parents=True, exist_ok=True)
    record(Variant("original", ("original",), spec, model=original), "the saved model, fp32")
    for name, method in zip(names, instances, strict=True):
        log(f"applying {name} to {current.name if current.methods else 'original'} ...")
        ctx = CompressContext(
            bundle=bundle,
            train_config=train_config,
            work_dir=out_dir / folder_name("+".join((*current.methods, name))),
            seed=seed,
            threads=threads,
            log=log,
        )
        result = method.apply(current, ctx)
        fp32 = result.info.get("quantize", {}).get("fp32_onnx") if name == "quantize" else None
        if fp32:
            # The float ONNX model separates the runtime's speed-up from int8's.
            base = (*current.methods, "onnx") if current.methods else ("onnx",)
            reference = Variant(
                "+".join(base),
                base,
                result.spec,
                onnx_path=Path(fp32),
                info=dict(current.info),
                source=result.source,
            )
            record(reference, "fp32 ONNX Runtime export (reference for int8)")
            Path(fp32).unlink(missing_ok=True)
            result.info["quantize"]["fp32_onnx"] = str(out_dir / folder_name(reference.name))
        record(result, _notes(result))
        current = result
    table.finalize()
    table.save(out_dir)
    return CompressionResult(table, folders, out_dir, previous)


def compress_run(
    run_dir: str | Path,
    *,
    methods: Sequence[str] | None = None,
    config: CompressConfig | None = None,
    run_config: ExperimentConfig | None = None,
    bundle: DataBundle | None = None,
    log: Callable[[str], None] | None = None,
) -> CompressionResult:
    """Compress the run's saved model with ``methods`` (default: the run's ``compress.methods``).

    The model is ``RUN_DIR/best`` (or ``RUN_DIR`` itself when it is a model folder); the data
    are prepared once, from the run's resolved config (``RunDir.resolved_config()``: the best
    trial's ``best/config.yaml`` after tuning, ``config.yaml`` after a plain training) with the
    run's seed, so the test split is the one the model never trained on. ``run_config`` is that
    config when the caller has already read it, ``bundle`` its data when already prepared
    (``tunelab demo``). Writes ``RUN_DIR/compressed/`` (one folder per
    variant, ``table.json``, ``table.csv``).
    """
    from ..data import prepare_data
    from ..models import load_model

    run = RunDir(run_dir)
    model_dir = run.saved_model()
    cfg = run_config if run_config is not None else run.resolved_config()
    if bundle is None:
        bundle = prepare_data(cfg.data, seed=cfg.seed)
    config = config or cfg.compress
    loaded = load_model(model_dir)
    return compress_model(
        loaded.model,
        loaded.spec,
        bundle,
        methods=list(methods or config.methods),
        out_dir=run.compressed_dir,
        config=config,
        train_config=cfg.train,
        preprocessing=loaded.preprocessing,
        seed=cfg.seed,
        log=log,
        monitor=cfg.train.monitor,
    )
