"""Saving and loading models: ``model.safetensors`` + ``model.json`` + ``preprocessing.json``.

Weights only ever travel as safetensors and metadata as JSON; a pickle (``torch.save``,
``.pkl``) offered as weights is refused with a clear message instead of being unpickled.
Every file is written to a temporary name and renamed, and ``model.json`` is written last, so a
directory with a ``model.json`` is complete even if a save was interrupted.
"""

from __future__ import annotations

import json
import os
import struct
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .. import __version__
from ..errors import FatalError
from ._init import count_parameters
from ._spec import ModelSpec

WEIGHTS = "model.safetensors"
METADATA = "model.json"
PREPROCESSING = "preprocessing.json"
FORMAT = "tunelab.model"
FORMAT_VERSION = 1
_PICKLE_SUFFIXES = (".pt", ".pth", ".pkl", ".pickle", ".bin", ".ckpt")


@dataclass
class LoadedModel:
    """What :func:`load_model` returns: the model (eval mode), its spec and companions."""

    model: nn.Module
    spec: ModelSpec
    preprocessing: Any = None
    metrics: dict[str, Any] = field(default_factory=dict)


def unwrap_model(model: nn.Module) -> nn.Module:
    """The plain module under ``torch.compile`` and DistributedDataParallel wrappers."""
    while True:
        if hasattr(model, "_orig_mod"):  # torch.compile's OptimizedModule
            model = model._orig_mod
        elif isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
            model = model.module
        else:
            return model


def _atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _jsonable(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.item() if value.numel() == 1 else value.tolist()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return value.item()
    return value


def _write_preprocessing(path: Path, preprocessing: Any) -> None:
    if hasattr(preprocessing, "save"):
        preprocessing.save(path)
        return
    data = preprocessing.to_json() if hasattr(preprocessing, "to_json") else preprocessing
    text = data if isinstance(data, str) else json.dumps(_jsonable(data), indent=2)
    path.write_text(text, encoding="utf-8")


def save_model(
    directory: str | Path,
    model: nn.Module,
    spec: ModelSpec,
    preprocessing: Any = None,
    metrics: dict[str, Any] | None = None,
) -> Path:
    """Write ``model`` to ``directory`` (created if needed) and return the directory.

    Args:
        directory: destination; existing files of the same names are replaced atomically.
        model: the trained module (compile/DDP wrappers are unwrapped).
        spec: how to rebuild its architecture.
        preprocessing: the fitted data transform (``save(path)`` or ``to_json()``), if any.
        metrics: numbers worth keeping with the weights (best epoch, validation accuracy...).

    Example:
        >>> import tempfile, torch
        >>> from tunelab.models import ModelSpec, load_model, save_model
        >>> spec = ModelSpec("mlp", {"width": 8}, input_shape=(4,), output_size=3)
        >>> net = spec.build()
        >>> folder = save_model(tempfile.mkdtemp(), net, spec, metrics={"val_accuracy": 0.9})
        >>> loaded = load_model(folder)
        >>> x = torch.randn(2, 4)
        >>> torch.equal(loaded.model(x), net.eval()(x)), loaded.metrics["val_accuracy"]
        (True, 0.9)
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    plain = unwrap_model(model)
    # Shared tensors (tied weights) cannot be stored twice in safetensors; keep the first name.
    tensors: dict[str, torch.Tensor] = {}
    seen: set[tuple[int, int]] = set()
    for name, tensor in plain.state_dict().items():
        key = _storage_key(tensor)
        if key in seen and tensor.numel() > 0:
            continue
        seen.add(key)
        tensors[name] = tensor.detach().to("cpu").contiguous()
    _atomic_write(directory / WEIGHTS, lambda p: save_file(tensors, str(p), {"format": "pt"}))
    has_pre = preprocessing is not None
    if has_pre:
        _atomic_write(directory / PREPROCESSING, lambda p: _write_preprocessing(p, preprocessing))
    else:
        (directory / PREPROCESSING).unlink(missing_ok=True)
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "tunelab_version": __version__,
        **spec.to_dict(),
        "parameters": count_parameters(plain),
        "weights": WEIGHTS,
        "preprocessing": PREPROCESSING if has_pre else None,
        "metrics": _jsonable(dict(metrics or {})),
    }
    text = json.dumps(meta, indent=2, allow_nan=True)
    _atomic_write(directory / METADATA, lambda p: p.write_text(text, encoding="utf-8"))
    return directory


def refuse_pickle(path: Path) -> None:
    """Raise a one-line error if ``path`` is not a safetensors file (pickles are never read)."""
    with path.open("rb") as fh:
        head = fh.read(9)
    size = path.stat().st_size
    # safetensors first: an 8-byte little-endian header length, then the JSON header. The
    # length's low byte can be 0x80 with 2..5 next (a 640-byte header starts 80 02), which is
    # also how a pickle starts, so the pickle test alone would refuse good weights.
    if len(head) == 9 and head[8:9] == b"{" and 1 < struct.unpack("<Q", head[:8])[0] <= size - 8:
        return
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        kind = "a Python pickle"
    elif head[:4] == b"PK\x03\x04":
        kind = "a torch.save zip archive (pickle inside)"
    else:
        kind = "not a safetensors file"
    raise FatalError(
        f"refusing to load {str(path)!r}: it is {kind}; tunelab never unpickles weights "
        "(unpickling can run arbitrary code) — save them as safetensors, e.g. "
        "tunelab.models.save_model(directory, model, spec)"
    )


def _resolve_directory(path: str | Path) -> Path:
    path = Path(path)
    if path.is_file():
        if path.name in (WEIGHTS, METADATA, PREPROCESSING):
            return path.parent
        if path.suffix.lower() in _PICKLE_SUFFIXES:
            refuse_pickle(path)
        raise FatalError(
            f"cannot load a model from {str(path)!r}: expected a directory written by "
            f"save_model ({METADATA} + {WEIGHTS})"
        )
    if not path.is_dir():
        raise FatalError(f"cannot load a model from {str(path)!r}: no such directory")
    return path


def load_weights(model: nn.Module, path: str | Path, *, strict: bool = True) -> nn.Module:
    """Fill ``model`` with the safetensors weights at ``path`` (refusing pickles)."""
    path = Path(path)
    if not path.is_file():
        raise FatalError(f"cannot load weights: {str(path)!r} does not exist")
    refuse_pickle(path)
    try:
        state = load_file(str(path))
    except SafetensorError as exc:
        raise FatalError(f"cannot read weights {str(path)!r}: {exc}") from None
    target = unwrap_model(model)
    try:
        missing, unexpected = target.load_state_dict(state, strict=False)
    except RuntimeError as exc:
        lines = str(exc).strip().splitlines()
        detail = " ".join(line.strip() for line in lines[1:3]) or lines[0]
        raise FatalError(f"weights {str(path)!r} do not fit the architecture: {detail}") from None
    if strict:
        # A tied tensor was stored once (see save_model); its alias is filled through the tie.
        current = target.state_dict()
        loaded = {_storage_key(current[k]) for k in state if k in current}
        missing = [k for k in missing if _storage_key(current[k]) not in loaded]
        if missing or unexpected:
            raise FatalError(
                f"weights {str(path)!r} do not fit the architecture: missing "
                f"{', '.join(missing[:5]) or 'none'}; "
                f"unexpected {', '.join(unexpected[:5]) or 'none'}"
            )
    return model


def _storage_key(tensor: torch.Tensor) -> tuple[int, int]:
    return tensor.untyped_storage().data_ptr(), tensor.storage_offset()


def read_metadata(directory: str | Path) -> dict[str, Any]:
    """The parsed ``model.json`` of a saved model directory."""
    directory = _resolve_directory(directory)
    meta_path = directory / METADATA
    if not meta_path.is_file():
        pickles = sorted(p.name for p in directory.glob("*") if p.suffix in _PICKLE_SUFFIXES)
        hint = f" (found {', '.join(pickles)}: pickles are never loaded)" if pickles else ""
        raise FatalError(
            f"cannot load a model from {str(directory)!r}: no {METADATA}; expected a directory "
            f"written by save_model{hint}"
        )
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise FatalError(f"{meta_path} is not valid JSON: {exc}") from None
    if not isinstance(meta, dict):
        raise FatalError(f"{meta_path} must hold a JSON object")
    return meta


def load_model(directory: str | Path, *, device: str | torch.device = "cpu") -> LoadedModel:
    """Rebuild a model saved by :func:`save_model`; returns it in eval mode on ``device``.

    Preprocessing comes back as the data stage's ``Preprocessing`` when that class exists,
    otherwise as the parsed JSON.
    """
    directory = _resolve_directory(directory)
    meta = read_metadata(directory)
    spec = ModelSpec.from_dict(meta)
    model = spec.build()
    weights = directory / str(meta.get("weights") or WEIGHTS)
    load_weights(model, weights)
    model.to(device).eval()
    preprocessing = None
    pre_path = directory / PREPROCESSING
    if meta.get("preprocessing") and pre_path.is_file():
        preprocessing = _read_preprocessing(pre_path)
    return LoadedModel(model, spec, preprocessing, dict(meta.get("metrics") or {}))


def _read_preprocessing(path: Path) -> Any:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise FatalError(f"{path} is not valid JSON: {exc}") from None
    try:
        from ..data import Preprocessing  # type: ignore[attr-defined]
    except ImportError:  # the data stage without its Preprocessing class: keep the document
        return data
    if isinstance(data, dict) and data.get("format") == "tunelab.preprocessing":
        return Preprocessing.load(path)
    return data
