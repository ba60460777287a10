"""Exporting a saved model to TorchScript or ONNX, with a parity check that can fail the export.

An export is only useful if it computes what the trained model computes. Tracing bakes in one
path through data-dependent Python control flow, an unsupported operator can be replaced by a
wrong one, int8 rounding can flip predictions; so every export is run on the same batch as the
original and compared:

* float exports (TorchScript, ONNX fp32): max |difference| of the outputs <= ``atol`` (1e-4),
  scaled by the largest |output| when that exceeds 1 — float32 keeps about 7 significant
  digits, so logits around 50 legitimately differ by a few 1e-4 between two runtimes;
* int8 ONNX: predicted classes differ on at most ``max_mismatch`` (0.5%) of the rows (for
  regression: max |difference| <= 5% of the outputs' standard deviation).

A failed check deletes the exported file and raises :class:`ExportError`. The export folder
carries ``model.json`` and ``preprocessing.json``, so it is usable on its own.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn as nn

from ..compress import (
    LoadedVariant,
    OnnxPredictor,
    TorchPredictor,
    calibration_rows,
    export_onnx,
    load_variant,
    predict_batched,
    predicted_labels,
    quantize_onnx,
    write_onnx_metadata,
)
from ..config import ExperimentConfig
from ..data import DataBundle
from ..errors import FatalError
from ..rundir import RunDir

ExportFormat = Literal["onnx", "torchscript", "int8"]
FILES = {"onnx": "model.onnx", "torchscript": "model.pt", "int8": "model.int8.onnx"}


class ExportError(FatalError):
    """An export failed its parity check (or could not be produced)."""


@dataclass
class ParityReport:
    """How closely an export reproduces the original on the check batch."""

    kind: Literal["float", "int8"]
    rows: int
    max_abs_diff: float
    mismatch_rate: float
    tolerance: float
    passed: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        if self.kind == "float":
            return (
                f"max |diff| {self.max_abs_diff:.2e} on {self.rows} rows "
                f"(limit {self.tolerance:.0e})"
            )
        return (
            f"predictions differ on {self.mismatch_rate:.2%} of {self.rows} rows "
            f"(limit {self.tolerance:.2%}); max |diff| {self.max_abs_diff:.3g}"
        )


def check_parity(
    reference: np.ndarray,
    candidate: np.ndarray,
    *,
    kind: Literal["float", "int8"] = "float",
    task: str = "classification",
    atol: float = 1e-4,
    max_mismatch: float = 0.005,
) -> ParityReport:
    """Compare an export's outputs with the original's; never raises (see :func:`require`)."""
    reference = np.asarray(reference, dtype=np.float64)
    candidate = np.asarray(candidate, dtype=np.float64)
    if reference.shape != candidate.shape:
        return ParityReport(kind, len(reference), float("inf"), 1.0, atol, False)
    finite = np.isfinite(candidate).all()
    diff = float(np.abs(reference - candidate).max()) if reference.size else 0.0
    if not finite:
        diff = float("inf")
    if kind == "float":
        scale = float(np.abs(reference).max()) if reference.size else 0.0
        limit = atol * max(1.0, scale if np.isfinite(scale) else 1.0)
        return ParityReport(kind, len(reference), diff, 0.0, limit, finite and diff <= limit)
    if task == "classification":
        mismatch = float((predicted_labels(reference) != predicted_labels(candidate)).mean())
        return ParityReport(
            kind, len(reference), diff, mismatch, max_mismatch, finite and mismatch <= max_mismatch
        )
    limit = 0.05 * float(reference.std() or 1.0)
    return ParityReport(kind, len(reference), diff, 0.0, limit, finite and diff <= limit)


@dataclass
class ExportResult:
    """One exported file and the parity check it passed."""

    format: str
    path: Path
    parity: ParityReport

    def to_dict(self) -> dict[str, Any]:
        return {"format": self.format, "path": str(self.path), "parity": self.parity.to_dict()}


def export_torchscript(model: nn.Module, example: torch.Tensor, path: str | Path) -> Path:
    """``torch.jit.trace`` the model on ``example`` and save it (batch size stays free)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.cpu().eval()
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            traced = torch.jit.trace(model, example.cpu().float(), check_trace=False)
            torch.jit.save(traced, str(path))
    except Exception as exc:
        raise ExportError(
            f"error: could not trace {type(model).__name__} to TorchScript: "
            f"{str(exc).splitlines()[0]}"
        ) from None
    return path


class _TorchScriptPredictor:
    def __init__(self, path: Path) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.module = torch.jit.load(str(path), map_location="cpu").eval()

    def __call__(self, X: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return self.module(torch.from_numpy(np.ascontiguousarray(X, "f"))).numpy()


def export_variant(
    loaded: LoadedVariant,
    out_dir: str | Path,
    *,
    format: ExportFormat,
    X_check: np.ndarray,
    task: str = "classification",
    calibration: np.ndarray | None = None,
    atol: float = 1e-4,
    max_mismatch: float = 0.005,
) -> ExportResult:
    """Export a loaded torch model to ``out_dir`` and check parity on ``X_check``.

    Args:
        loaded: from :func:`tunelab.compress.load_variant` (must be a torch model).
        out_dir: the export folder (``RUN_DIR/export``).
        format: ``onnx`` (fp32), ``torchscript``, or ``int8`` (ONNX Runtime quantised ONNX).
        X_check: model-ready inputs (the test split) the export must reproduce.
        task: ``classification`` or ``regression`` (how int8 parity is judged).
        calibration: training rows for static int8 quantisation of conv nets.
        atol, max_mismatch: the parity limits (float and int8).
    """
    if loaded.model is None:
        raise ExportError("error: export needs a torch model; this one is already ONNX")
    if format not in FILES:
        raise ExportError(f"error: unknown export format {format!r}; expected onnx, torchscript")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / FILES[format]
    X_check = np.ascontiguousarray(X_check, dtype=np.float32)
    example = torch.from_numpy(X_check[:2])
    reference = predict_batched(TorchPredictor(loaded.model), X_check)
    if format == "torchscript":
        export_torchscript(loaded.model, example, path)
        exported: Any = _TorchScriptPredictor(path)
    elif format == "onnx":
        export_onnx(loaded.model, example, path)
        exported = OnnxPredictor(path)
    else:
        fp32 = export_onnx(loaded.model, example, out_dir / ".int8-source.onnx")
        try:
            quantize_onnx(fp32, path, mode="auto", calibration=calibration)
        finally:
            fp32.unlink(missing_ok=True)
        exported = OnnxPredictor(path)
    candidate = predict_batched(exported, X_check)
    kind = "int8" if format == "int8" else "float"
    report = check_parity(
        reference, candidate, kind=kind, task=task, atol=atol, max_mismatch=max_mismatch
    )
    if not report.passed:
        path.unlink(missing_ok=True)
        raise ExportError(
            f"error: {format} export failed its parity check: {report.describe()}; "
            f"the file was not kept"
        )
    _write_bundle(out_dir, loaded, format, report)
    return ExportResult(format, path, report)


def _write_bundle(out_dir: Path, loaded: LoadedVariant, format: str, report: ParityReport) -> None:
    """``model.json`` (+ ``preprocessing.json``) describing every export in the folder."""
    meta_path = out_dir / "model.json"
    exports: dict[str, Any] = {}
    if meta_path.is_file():
        try:
            exports = dict(json.loads(meta_path.read_text()).get("exports") or {})
        except (json.JSONDecodeError, AttributeError):
            exports = {}
    exports[format] = {"file": FILES[format], "parity": report.to_dict()}
    exports = {k: v for k, v in exports.items() if (out_dir / FILES[k]).is_file()}
    write_onnx_metadata(
        out_dir, loaded.spec, preprocessing=loaded.preprocessing, metrics=loaded.metrics
    )
    meta = json.loads(meta_path.read_text())
    # The default runnable file for load_variant: fp32 ONNX, else int8 ONNX, else TorchScript.
    meta["weights"] = next(
        (FILES[k] for k in ("onnx", "int8", "torchscript") if k in exports), FILES[format]
    )
    meta["runtime"] = "torchscript" if meta["weights"].endswith(".pt") else "onnxruntime"
    meta["exports"] = exports
    meta["parity"] = {k: ParityReport(**v["parity"]).describe() for k, v in exports.items()}
    meta_path.write_text(json.dumps(meta, indent=2, default=float) + "\n")


def export_run(
    run_dir: str | Path,
    formats: list[ExportFormat],
    *,
    out_dir: str | Path | None = None,
    run_config: ExperimentConfig | None = None,
    bundle: DataBundle | None = None,
    log: Any = None,
) -> list[ExportResult]:
    """Export the run's saved model to ``RUN_DIR/export`` in each format, checked on test data.

    The check rows are the test split, rebuilt once from the run's resolved config
    (``RunDir.resolved_config()``: ``best/config.yaml`` after tuning); ``run_config`` and
    ``bundle`` pass that config and its data when the caller has them already. Without a
    config, float exports are checked on 256 standard-normal rows (said in the log) and int8 is
    refused, since judging and calibrating int8 needs real data.
    """
    log = log or (lambda message: None)
    run = RunDir(run_dir)
    model_dir = run.saved_model()
    loaded = load_variant(model_dir)
    out_dir = Path(out_dir) if out_dir is not None else run.export_dir
    X_check, task, calibration = _check_data(run, loaded, formats, run_config, bundle, log)
    results = []
    for fmt in formats:
        result = export_variant(
            loaded, out_dir, format=fmt, X_check=X_check, task=task, calibration=calibration
        )
        # The caller prints the result (its path and parity) once; no log line repeats it.
        results.append(result)
    return results


def _check_data(
    run: RunDir,
    loaded: LoadedVariant,
    formats: list[ExportFormat],
    cfg: ExperimentConfig | None,
    bundle: DataBundle | None,
    log: Any,
) -> tuple[np.ndarray, str, np.ndarray | None]:
    """``(rows to check parity on, task, int8 calibration rows)``, the data prepared once."""
    from ..data import prepare_data

    try:
        cfg = cfg if cfg is not None else run.resolved_config()
    except FatalError as exc:
        if "int8" in formats:
            raise ExportError(f"{exc}; int8 export needs the run's data") from None
        log(f"note: {exc}; checking parity on 256 random rows instead")
        rng = np.random.default_rng(0)
        X_check = rng.standard_normal((256, *loaded.spec.input_shape)).astype(np.float32)
        return X_check, loaded.spec.task, None
    if bundle is None:
        bundle = prepare_data(cfg.data, seed=cfg.seed)
    calibration = calibration_rows(
        bundle.X_train,
        batches=cfg.compress.calibration_batches,
        batch_size=int(cfg.train.batch_size),
        seed=cfg.seed,
    )
    return bundle.X_test.cpu().numpy(), bundle.task, calibration
