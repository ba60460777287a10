"""Saving and loading compressed variants, so every row of the table is a usable model.

A torch variant is saved exactly like a trained model (``model.safetensors`` + ``model.json`` +
``preprocessing.json``, via :func:`tunelab.models.save_model`); an ONNX variant keeps its
``model.onnx`` next to the same two JSON files. ``variant.json`` says which methods made it.

Structured pruning leaves layers smaller than the builder's parameters say, so loading builds
the architecture from ``model.json`` and then resizes each Linear/Conv/norm layer to the shapes
stored in the safetensors file before filling the weights (nothing is pickled, the
architecture stays the builder's). A forward pass on a dummy batch confirms the result.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from ..errors import FatalError
from ._base import Variant
from ._predictor import OnnxPredictor, Predictor, TorchPredictor, refuse_pickle

VARIANT_FILE = "variant.json"
ONNX_FILE = "model.onnx"


@dataclass
class LoadedVariant:
    """A loaded model directory: how to run it, and what it is."""

    predictor: Predictor
    spec: Any
    preprocessing: Any = None
    metrics: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    model: nn.Module | None = None
    format: str = "torch"
    directory: Path | None = None


def save_variant(
    directory: str | Path,
    variant: Variant,
    *,
    preprocessing: Any = None,
    metrics: dict[str, Any] | None = None,
) -> Path:
    """Write ``variant`` to ``directory`` so :func:`load_variant` can run it alone."""
    from ..models import save_model

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if variant.model is not None:
        save_model(directory, variant.model, variant.spec, preprocessing, metrics)
        (directory / ONNX_FILE).unlink(missing_ok=True)
    else:
        assert variant.onnx_path is not None
        target = directory / ONNX_FILE
        if variant.onnx_path.resolve() != target.resolve():
            shutil.copyfile(variant.onnx_path, target)
        write_onnx_metadata(directory, variant.spec, preprocessing=preprocessing, metrics=metrics)
    record = {
        "name": variant.name,
        "methods": list(variant.methods),
        "format": variant.format,
        "info": variant.info,
    }
    (directory / VARIANT_FILE).write_text(json.dumps(record, indent=2, default=str) + "\n")
    return directory


def write_onnx_metadata(
    directory: Path, spec: Any, *, preprocessing: Any = None, metrics: dict[str, Any] | None = None
) -> None:
    """``model.json`` (spec, ``weights: model.onnx``) and ``preprocessing.json`` for an export."""
    meta = {
        "format": "tunelab.model",
        "format_version": 1,
        **spec.to_dict(),
        "weights": ONNX_FILE,
        "runtime": "onnxruntime",
        "preprocessing": "preprocessing.json" if preprocessing is not None else None,
        "metrics": dict(metrics or {}),
    }
    (directory / "model.json").write_text(json.dumps(meta, indent=2, default=float) + "\n")
    if preprocessing is not None:
        write_preprocessing(directory / "preprocessing.json", preprocessing)


def write_preprocessing(path: Path, preprocessing: Any) -> None:
    """Save a fitted preprocessing object (``save``/``to_json``) or plain JSON data."""
    if hasattr(preprocessing, "save"):
        preprocessing.save(path)
        return
    data = preprocessing.to_json() if hasattr(preprocessing, "to_json") else preprocessing
    text = data if isinstance(data, str) else json.dumps(data, indent=2)
    path.write_text(text, encoding="utf-8")


def read_preprocessing(path: Path) -> Any:
    """The data stage's ``Preprocessing`` when it has ``load``, otherwise the parsed JSON."""
    if not path.is_file():
        return None
    try:
        from ..data import Preprocessing  # type: ignore[attr-defined]
    except ImportError:
        Preprocessing = None
    if Preprocessing is not None and hasattr(Preprocessing, "load"):
        return Preprocessing.load(path)
    return json.loads(path.read_text(encoding="utf-8"))


def load_variant(
    directory: str | Path, *, threads: int | None = None, verify: bool = True
) -> LoadedVariant:
    """Load a model directory written by ``save_model``, :func:`save_variant` or an export.

    Args:
        directory: the folder (``best/``, ``compressed/<variant>/``, ``export/``).
        threads: ONNX Runtime intra-op threads for ONNX variants.
        verify: run one dummy batch through a resized torch model to prove it loads.
    """
    from ..models import ModelSpec, read_metadata

    directory = Path(directory)
    if directory.is_file():
        refuse_pickle(directory)
        if directory.suffix == ".onnx" or directory.name in ("model.json", "model.safetensors"):
            directory = directory.parent
        else:
            raise FatalError(
                f"error: cannot load a model from {directory}: expected a model directory "
                "(model.json + model.safetensors or model.onnx) or an .onnx file"
            )
    meta = read_metadata(directory)
    spec = ModelSpec.from_dict(meta)
    record = {}
    if (directory / VARIANT_FILE).is_file():
        record = json.loads((directory / VARIANT_FILE).read_text())
    preprocessing = read_preprocessing(directory / "preprocessing.json")
    metrics = dict(meta.get("metrics") or {})
    weights = directory / str(meta.get("weights") or "model.safetensors")
    if meta.get("runtime") == "torchscript":
        raise FatalError(
            f"error: {directory} holds only a TorchScript export; tunelab loads safetensors "
            "or ONNX models (export with --format onnx to serve it)"
        )
    if weights.suffix == ".onnx":
        predictor = OnnxPredictor(weights, threads=threads)
        predictor.session  # noqa: B018 - open now so a bad file fails here, not mid-request
        return LoadedVariant(
            predictor, spec, preprocessing, metrics, record.get("info", {}), None, "onnx", directory
        )
    model = load_torch_weights(spec, weights, verify=verify)
    return LoadedVariant(
        TorchPredictor(model),
        spec,
        preprocessing,
        metrics,
        record.get("info", {}),
        model,
        "torch",
        directory,
    )


def load_torch_weights(spec: Any, weights: Path, *, verify: bool = True) -> nn.Module:
    """Build ``spec``'s architecture, resize layers to the stored shapes, load the weights."""
    from safetensors import SafetensorError, safe_open

    from ..models import load_weights

    if not weights.is_file():
        raise FatalError(f"error: no weights file {weights}")
    refuse_pickle(weights)
    try:
        with safe_open(str(weights), framework="pt") as fh:
            shapes = {key: tuple(fh.get_slice(key).get_shape()) for key in fh.keys()}  # noqa: SIM118
    except (SafetensorError, OSError) as exc:
        raise FatalError(f"error: cannot read weights {weights}: {exc}") from None
    model = spec.build()
    resized = fit_to_state(model, shapes)
    load_weights(model, weights)
    model.eval()
    if resized and verify:
        try:
            with torch.no_grad():
                model(torch.zeros(2, *spec.input_shape))
        except Exception as exc:
            raise FatalError(
                f"error: the pruned weights in {weights} do not form a working "
                f"{spec.builder!r} model: {str(exc).splitlines()[0]}"
            ) from None
    return model


def fit_to_state(model: nn.Module, shapes: dict[str, tuple[int, ...]]) -> list[str]:
    """Resize parameters/buffers whose stored shape differs; returns the layers resized."""
    resized: list[str] = []
    for prefix, module in model.named_modules():
        changed = False
        for name, tensor in list(module.named_parameters(recurse=False)) + list(
            module.named_buffers(recurse=False)
        ):
            key = f"{prefix}.{name}" if prefix else name
            stored = shapes.get(key)
            if stored is None or tuple(stored) == tuple(tensor.shape):
                continue
            new = torch.empty(tuple(stored), dtype=tensor.dtype)
            if isinstance(tensor, nn.Parameter):
                setattr(module, name, nn.Parameter(new, requires_grad=tensor.requires_grad))
            else:
                module.register_buffer(name, new)
            changed = True
        if changed:
            _sync_attributes(module)
            resized.append(prefix)
    return resized


def _sync_attributes(module: nn.Module) -> None:
    """Keep a layer's size attributes in step with its resized weight."""
    weight = getattr(module, "weight", None)
    if isinstance(module, nn.Linear) and weight is not None:
        module.out_features, module.in_features = weight.shape
    elif isinstance(module, nn.modules.conv._ConvNd) and weight is not None:
        module.out_channels = weight.shape[0]
        module.in_channels = weight.shape[1] * module.groups
    elif isinstance(module, nn.modules.batchnorm._NormBase):
        ref = weight if weight is not None else module.running_mean
        module.num_features = ref.shape[0]
    elif isinstance(module, nn.LayerNorm) and weight is not None:
        module.normalized_shape = tuple(weight.shape)
    elif isinstance(module, nn.GroupNorm) and weight is not None:
        module.num_channels = weight.shape[0]
    elif isinstance(module, nn.Embedding) and weight is not None:
        module.num_embeddings, module.embedding_dim = weight.shape
