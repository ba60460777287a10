"""The extension point: a compression method turns one model variant into a smaller one.

A method is a small class with one required method, ``apply(variant, ctx) -> Variant``,
registered by name so configs and the CLI can ask for it (``--methods distill,prune,quantize``).
Methods compose: each receives the previous method's output. A method that produces an ONNX
model (``quantize``) must come last, because the torch-based methods cannot read ONNX.
"""

from __future__ import annotations

import difflib
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
import torch.nn as nn

from ..config import CompressConfig, TrainConfig, register_name
from ..data import DataBundle
from ..errors import ConfigError
from ._predictor import OnnxPredictor, Predictor, TorchPredictor


@dataclass
class Variant:
    """One version of the model: the original, or the output of a chain of methods.

    Exactly one of ``model`` (a torch module) and ``onnx_path`` (an ONNX file) is set.
    ``spec`` is the ``ModelSpec`` the variant was built from (a distilled student has its own),
    ``info`` what the methods report (sparsity reached, quantisation mode, epochs, ...), and
    ``source`` the torch variant an ONNX variant was exported from.
    """

    name: str
    methods: tuple[str, ...]
    spec: Any
    model: nn.Module | None = None
    onnx_path: Path | None = None
    info: dict[str, Any] = field(default_factory=dict)
    source: Variant | None = None

    @property
    def format(self) -> Literal["torch", "onnx"]:
        return "torch" if self.model is not None else "onnx"

    def predictor(self, *, threads: int | None = None) -> Predictor:
        if self.model is not None:
            return TorchPredictor(self.model)
        if self.onnx_path is None:
            raise ValueError(f"variant {self.name!r} has neither a model nor an ONNX file")
        return OnnxPredictor(self.onnx_path, threads=threads)

    def torch_model(self) -> nn.Module:
        """The torch module, or a clear error when the variant is already ONNX."""
        if self.model is None:
            raise ConfigError(
                f"config error: compress.methods — variant {self.name!r} is an ONNX model; "
                "methods that change weights must come before quantize"
            )
        return self.model

    def derive(self, method: str, **changes: Any) -> Variant:
        """The variant a method makes from this one (name and method chain extended)."""
        methods = (*self.methods, method)
        values = {
            "name": "+".join(methods),
            "methods": methods,
            "spec": self.spec,
            "model": self.model,
            "onnx_path": self.onnx_path,
            "info": dict(self.info),
            "source": self.source,
        }
        values.update(changes)
        return Variant(**values)


@dataclass
class CompressContext:
    """What a method may use besides the variant: data, training settings, a scratch folder.

    ``bundle`` supplies the training split (fine-tuning, distillation, calibration) and the
    validation split (choosing the best epoch); the test split is left to the comparison table.
    """

    bundle: DataBundle
    train_config: TrainConfig = field(default_factory=TrainConfig)
    work_dir: Path = field(default_factory=lambda: Path("compressed"))
    seed: int = 0
    threads: int | None = 1
    log: Callable[[str], None] = lambda message: None

    @property
    def device(self) -> torch.device:
        wanted = self.train_config.device
        if wanted == "cuda" or (wanted == "auto" and torch.cuda.is_available()):
            return torch.device("cuda")
        return torch.device("cpu")


class CompressionMethod(ABC):
    """Base class of compression methods; subclasses implement :meth:`apply`.

    Example:
        >>> from tunelab.compress import CompressionMethod, register_method
        >>> @register_method("identity_doc")
        ... class Identity(CompressionMethod):
        ...     def apply(self, variant, ctx):
        ...         return variant.derive("identity_doc")
        >>> make_method("identity_doc", None).name
        'identity_doc'
    """

    name: ClassVar[str] = ""
    #: True when the method reads torch weights (so it cannot follow an ONNX-producing one).
    needs_torch: ClassVar[bool] = True
    #: ``"onnx"`` when the method's output is an ONNX model.
    produces: ClassVar[Literal["torch", "onnx"]] = "torch"

    @classmethod
    def from_config(cls, config: CompressConfig) -> CompressionMethod:
        """An instance with its settings read from the ``compress`` section."""
        return cls()

    @abstractmethod
    def apply(self, variant: Variant, ctx: CompressContext) -> Variant:
        """Return the compressed variant made from ``variant``."""

    def check(self, variant: Variant, ctx: CompressContext) -> None:
        """Optional: raise a ``ConfigError`` before the chain starts if ``apply`` cannot work
        on this kind of model (so a late method does not fail after an hour of distillation)."""
        return None


_METHODS: dict[str, type[CompressionMethod]] = {}


def register_method(name: str) -> Callable[[type[CompressionMethod]], type[CompressionMethod]]:
    """Class decorator: make ``name`` usable in ``compress.methods`` and ``--methods``."""

    def decorate(cls: type[CompressionMethod]) -> type[CompressionMethod]:
        if not (isinstance(cls, type) and issubclass(cls, CompressionMethod)):
            raise TypeError(f"{cls!r} must subclass CompressionMethod")
        cls.name = name
        _METHODS[name] = cls
        register_name("compress.methods", name)
        return cls

    return decorate


def method_names() -> list[str]:
    return sorted(_METHODS)


def get_method(name: str) -> type[CompressionMethod]:
    """The class registered as ``name``; a one-line error lists the known names."""
    try:
        return _METHODS[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(_METHODS), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(
            f"config error: compress.methods — unknown method {name!r}; expected one of "
            f"{', '.join(method_names())}{hint}",
            field="compress.methods",
        ) from None


def make_method(name: str, config: CompressConfig | None) -> CompressionMethod:
    """An instance of method ``name`` configured from ``config`` (defaults when None)."""
    return get_method(name).from_config(config if config is not None else CompressConfig())


def check_order(names: list[str]) -> None:
    """Refuse chains where a torch method follows one that already produced ONNX."""
    if not names:
        raise ConfigError("config error: compress.methods — give at least one method")
    onnx_from = None
    for name in names:
        cls = get_method(name)
        if onnx_from is not None and cls.needs_torch:
            raise ConfigError(
                f"config error: compress.methods = {names} — {name!r} changes torch weights "
                f"but {onnx_from!r} before it already produced an ONNX model; put "
                f"{onnx_from!r} last"
            )
        if cls.produces == "onnx":
            onnx_from = name
    if len(set(names)) != len(names):
        raise ConfigError(f"config error: compress.methods = {names} — a method is repeated")
