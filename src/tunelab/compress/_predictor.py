"""One calling convention for every runnable variant: ``predictor(X) -> raw outputs``.

A compression table compares a torch model, its ONNX export and its int8 ONNX model side by
side, and the server runs whichever the user picked; both only need "numpy batch in, numpy
logits (or regression values) out". ONNX files are opened with ONNX Runtime, never unpickled,
and anything that looks like a pickle is refused before it is read further.
"""

from __future__ import annotations

import contextlib
import zipfile
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from ..errors import FatalError

_PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib", ".pt", ".pth", ".ckpt", ".bin", ".sav")


class Predictor(ABC):
    """Runs a model on a float32 batch and returns its raw outputs (logits or values)."""

    kind: str = "torch"

    @abstractmethod
    def __call__(self, X: np.ndarray) -> np.ndarray:
        """Raw outputs for ``X`` of shape ``(n, *input_shape)``."""


class TorchPredictor(Predictor):
    """A ``torch.nn.Module`` in eval mode on the CPU, without autograd."""

    kind = "torch"

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self._in_eval: nn.Module | None = None

    def __call__(self, X: np.ndarray) -> np.ndarray:
        # eval() walks every submodule (~40 us on a 3-layer MLP, 15% of a batch-64 call), so
        # it runs once per model object, not per call.
        if self._in_eval is not self.model or self.model.training:
            self.model.eval()
            self._in_eval = self.model
        with torch.inference_mode():
            out = self.model(torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32)))
        return out.numpy()


class OnnxPredictor(Predictor):
    """An ONNX model run by ONNX Runtime on the CPU with a fixed number of threads.

    Args:
        path: the ``.onnx`` file.
        threads: intra-op threads; fixed so latencies compare fairly with torch.
    """

    kind = "onnx"

    def __init__(self, path: str | Path, *, threads: int | None = None) -> None:
        self.path = Path(path)
        self.threads = threads
        self._session = None

    @property
    def session(self):
        if self._session is None:
            self._session = open_onnx_session(self.path, threads=self.threads)
        return self._session

    def __call__(self, X: np.ndarray) -> np.ndarray:
        session = self.session
        feed = {session.get_inputs()[0].name: np.ascontiguousarray(X, dtype=np.float32)}
        return session.run(None, feed)[0]

    @property
    def is_int8(self) -> bool:
        return onnx_is_quantized(self.path)


def require(module: str, extra: str) -> Any:
    """Import an optional dependency, or say in one line which extra installs it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise FatalError(
            f"error: this needs the {module.split('.')[0]} package: pip install 'tunelab[{extra}]'"
        ) from None


def open_onnx_session(path: str | Path, *, threads: int | None = None):
    """An ``onnxruntime.InferenceSession`` on the CPU; a non-ONNX file is one clear error."""
    ort = require("onnxruntime", "onnx")

    path = Path(path)
    refuse_pickle(path)
    if not path.is_file():
        raise FatalError(f"error: no ONNX model at {path}")
    options = ort.SessionOptions()
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own types for corrupt files
        raise FatalError(f"error: {path} is not a loadable ONNX model ({exc})") from None


def onnx_is_quantized(path: str | Path) -> bool:
    """Whether the ONNX graph holds int8/uint8 weights (what ``quantize`` produces)."""
    import onnx

    model = onnx.load(str(path))
    int8 = {onnx.TensorProto.INT8, onnx.TensorProto.UINT8}
    return any(init.data_type in int8 for init in model.graph.initializer)


def looks_like_pickle(path: str | Path) -> bool:
    """True for Python pickles and ``torch.save`` archives (a zip holding ``*.pkl``)."""
    path = Path(path)
    if path.suffix.lower() in _PICKLE_SUFFIXES:
        return True
    if not path.is_file():
        return False
    with path.open("rb") as fh:
        head = fh.read(2)
    if len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return True
    if zipfile.is_zipfile(path):
        with contextlib.suppress(zipfile.BadZipFile), zipfile.ZipFile(path) as zf:
            return any(name.endswith(".pkl") for name in zf.namelist())
    return False


def refuse_pickle(path: str | Path) -> None:
    """Raise a one-line error if ``path`` is a pickle: tunelab never unpickles a model."""
    if looks_like_pickle(path):
        raise FatalError(
            f"error: refusing to load {path}: it is a pickle (or a torch.save archive), which "
            "can run arbitrary code; tunelab loads models only from safetensors (model "
            "directory) or ONNX files"
        )


@contextlib.contextmanager
def fixed_threads(threads: int | None) -> Iterator[None]:
    """Run torch with ``threads`` intra-op threads, restoring the previous setting after."""
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(int(threads))
    try:
        yield
    finally:
        torch.set_num_threads(before)
