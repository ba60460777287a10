"""Which file ``tunelab serve --model best|onnx|int8|PATH`` runs, loaded without unpickling.

* ``best``: ``RUN_DIR/best`` (safetensors, run by torch);
* ``onnx``: ``RUN_DIR/export/model.onnx`` (``tunelab export RUN_DIR --format onnx``);
* ``int8``: ``RUN_DIR/export/model.int8.onnx``, else the newest quantised variant in
  ``RUN_DIR/compressed/``;
* a path: a model directory (``compressed/distill-prune``) or an ``.onnx`` file. A pickle is
  refused with a clear message, whatever its name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..compress import (
    CompressionTable,
    LoadedVariant,
    OnnxPredictor,
    Predictor,
    load_variant,
    read_preprocessing,
    refuse_pickle,
)
from ..errors import FatalError
from ..rundir import RunDir
from ._export import FILES


@dataclass
class ServedModel:
    """Everything the server needs: how to run the model and what it expects and returns."""

    name: str
    predictor: Predictor
    spec: Any
    preprocessing: Any = None
    metrics: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None
    format: str = "torch"


def _from_loaded(name: str, loaded: LoadedVariant, path: Path) -> ServedModel:
    return ServedModel(
        name,
        loaded.predictor,
        loaded.spec,
        loaded.preprocessing,
        loaded.metrics,
        path,
        loaded.format,
    )


def _onnx_file(name: str, path: Path, threads: int | None) -> ServedModel:
    """An ONNX file whose folder carries ``model.json`` (an export or compressed variant)."""
    from ..models import ModelSpec, read_metadata

    meta = read_metadata(path.parent)
    predictor = OnnxPredictor(path, threads=threads)
    predictor.session  # noqa: B018 - open now: a bad file fails at start-up, not per request
    return ServedModel(
        name,
        predictor,
        ModelSpec.from_dict(meta),
        read_preprocessing(path.parent / "preprocessing.json"),
        dict(meta.get("metrics") or {}),
        path,
        "onnx",
    )


def _latest_int8(run: RunDir) -> Path | None:
    """The ``model.onnx`` of the last quantised row of ``compressed/table.json``, if any."""
    if not run.compressed_table.is_file():
        return None
    table = CompressionTable.load(run.compressed_table)
    for row in reversed(table.rows):
        if row.methods[-1:] == ["quantize"]:
            candidate = Path(row.path) / "model.onnx"
            if not candidate.is_absolute() and not candidate.is_file():
                # The run directory was moved: the variant sits in this run's compressed/.
                candidate = run.compressed_variant(Path(row.path).name) / "model.onnx"
            if candidate.is_file():
                return candidate
    return None


def load_served_model(
    run_dir: str | Path, model: str = "best", *, threads: int | None = None
) -> ServedModel:
    """Resolve ``model`` against ``run_dir`` and load it (see the module docstring)."""
    run = RunDir(run_dir)
    run.refuse_config_file()
    run_dir = run.path
    if model == "best":
        model_dir = run.saved_model()
        return _from_loaded("best", load_variant(model_dir, threads=threads), model_dir)
    if model == "onnx":
        path = run.export_dir / FILES["onnx"]
        if not path.is_file():
            raise FatalError(
                f"error: no ONNX export at {path}; run `tunelab export {run_dir} --format onnx`"
            )
        return _onnx_file("onnx", path, threads)
    if model == "int8":
        path = run.export_dir / FILES["int8"]
        found = path if path.is_file() else _latest_int8(run)
        if found is None:
            raise FatalError(
                f"error: no int8 model in {run_dir}; run `tunelab export {run_dir} --format "
                f"onnx --int8` or `tunelab compress {run_dir} --methods quantize`"
            )
        return _onnx_file("int8", found, threads)
    path = Path(model)
    if not path.exists() and (run_dir / model).exists():
        path = run_dir / model
    if not path.exists():
        raise FatalError(f"error: --model {model!r} is not best, onnx, int8 or an existing path")
    if path.is_file():
        refuse_pickle(path)
        if path.suffix == ".onnx":
            return _onnx_file(path.parent.name, path, threads)
        if path.name not in ("model.json", "model.safetensors"):
            raise FatalError(
                f"error: cannot serve {path}: expected a model directory, model.safetensors "
                "or an .onnx file"
            )
        path = path.parent
    return _from_loaded(path.name, load_variant(path, threads=threads), path)
