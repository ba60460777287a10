"""Which file ``tunelab serve --model best|onnx|int8|PATH`` runs, loaded without unpickling.

* ``best``: ``RUN_DIR/best`` (safetensors, run by torch);
* ``onnx``: ``RUN_DIR/export/model.onnx`` (``tunelab export RUN_DIR --format onnx``);
* ``int8``: ``RUN_DIR/export/model.int8.onnx``, else the newest quantised variant in
  ``RUN_DIR/compressed/``;
* a path: a model directory (``compressed/distill-prune``) or an ``.onnx`` file. A pickle is
  refused with a clear message, whatever its name.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..compress import (
    LoadedVariant,
    OnnxPredictor,
    Predictor,
    find_model_dir,
    load_variant,
    read_preprocessing,
    refuse_pickle,
)
from ..errors import FatalError


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


def _latest_int8(run_dir: Path) -> Path | None:
    table = run_dir / "compressed" / "table.json"
    if not table.is_file():
        return None
    rows = json.loads(table.read_text()).get("rows", [])
    for row in reversed(rows):
        if row.get("methods", [])[-1:] == ["quantize"]:
            candidate = Path(row["path"]) / "model.onnx"
            if not candidate.is_absolute() and not candidate.is_file():
                candidate = run_dir / "compressed" / Path(row["path"]).name / "model.onnx"
            if candidate.is_file():
                return candidate
    return None


def load_served_model(
    run_dir: str | Path, model: str = "best", *, threads: int | None = None
) -> ServedModel:
    """Resolve ``model`` against ``run_dir`` and load it (see the module docstring)."""
    run_dir = Path(run_dir)
    if model == "best":
        model_dir = find_model_dir(run_dir)
        return _from_loaded("best", load_variant(model_dir, threads=threads), model_dir)
    if model == "onnx":
        path = run_dir / "export" / "model.onnx"
        if not path.is_file():
            raise FatalError(
                f"error: no ONNX export at {path}; run `tunelab export {run_dir} --format onnx`"
            )
        return _onnx_file("onnx", path, threads)
    if model == "int8":
        path = run_dir / "export" / "model.int8.onnx"
        found = path if path.is_file() else _latest_int8(run_dir)
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
