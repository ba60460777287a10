"""``Preprocessing``: the fitted transform from raw rows or raw images to model input.

Fitted once on the training split (sklearn's habit: the constructor stores parameters, ``fit``
learns attributes ending in ``_``) and then applied unchanged to train, val, test and, after a
JSON round trip, to whatever a server receives. The preparation path and ``transform`` share one
code path, so a raw row transformed later gives exactly the tensor the model was trained on.

Two kinds: :class:`TablePreprocessing` (dtypes, missing values, outliers, one-hot, constant
columns, scaling) and :class:`ImagePreprocessing` (pixel scale, per-channel normalisation).
Saved as JSON, never pickled.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..errors import DataError

FORMAT = "tunelab.preprocessing"
VERSION = 1


@dataclass
class InputField:
    """One raw input a server must accept: name, dtype (float, int, bool, category, str or
    image), the allowed categories of a categorical column, the shape ``[C, H, W]`` of an image."""

    name: str
    dtype: str
    categories: list[str] | None = None
    shape: list[int] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Preprocessing(ABC):
    """Base of the fitted transforms; one subclass per kind of input, registered by ``kind``.

    Subclasses implement ``fit``, ``transform``, ``input_schema`` and list their constructor
    parameters in ``_params`` and learned attributes in ``_fitted``.
    """

    kind: ClassVar[str] = ""
    _params: ClassVar[tuple[str, ...]] = ()
    _fitted: ClassVar[tuple[str, ...]] = ()
    _registry: ClassVar[dict[str, type[Preprocessing]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.kind:
            Preprocessing._registry[cls.kind] = cls

    # ---- what every kind offers ------------------------------------------------------------

    @abstractmethod
    def fit(self, data: Any) -> Preprocessing:
        """Learn the transform's statistics from training data; returns ``self``."""

    @abstractmethod
    def transform(self, raw: Any) -> np.ndarray:
        """Raw input -> float32 model input ``(n, *input_shape)``."""

    @abstractmethod
    def input_schema(self) -> list[InputField]:
        """The raw input fields a caller sends (names, dtypes, categories)."""

    @property
    def raw_feature_names(self) -> list[str]:
        return [f.name for f in self.input_schema()]

    @property
    def is_fitted(self) -> bool:
        return all(hasattr(self, name) for name in self._fitted)

    def get_params(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self._params}

    # ---- JSON ------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        if not self.is_fitted:
            raise ValueError(f"{type(self).__name__} is not fitted; call fit() first")
        return {
            "format": FORMAT,
            "version": VERSION,
            "kind": self.kind,
            "params": _plain(self.get_params()),
            "fitted": _plain({name: getattr(self, name) for name in self._fitted}),
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_json() + "\n", encoding="utf-8")
        return path

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Preprocessing:
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise DataError(f"data error: not a tunelab preprocessing document ({FORMAT})")
        if data.get("version") != VERSION:
            raise DataError(
                f"data error: preprocessing version {data.get('version')} is not {VERSION}"
            )
        kind = data.get("kind")
        target = Preprocessing._registry.get(str(kind))
        if target is None:
            raise DataError(
                f"data error: unknown preprocessing kind {kind!r}; expected one of "
                f"{', '.join(sorted(Preprocessing._registry))}"
            )
        try:
            instance = target(**data["params"])
            for name in target._fitted:
                setattr(instance, name, data["fitted"][name])
            instance._restore()
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(
                f"data error: incomplete {kind} preprocessing document: {type(exc).__name__}: {exc}"
            ) from None
        return instance

    @classmethod
    def from_json(cls, text: str) -> Preprocessing:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(f"data error: preprocessing JSON is invalid: {exc}") from None
        return cls.from_dict(data)

    @classmethod
    def load(cls, path: str | Path) -> Preprocessing:
        path = Path(path)
        if not path.is_file():
            raise DataError(f"data error: {path}: no such preprocessing file")
        return cls.from_json(path.read_text(encoding="utf-8"))

    def _restore(self) -> None:  # noqa: B027 (an optional hook, not abstract)
        """Turn JSON lists back into arrays after loading."""

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items() if k != "columns")
        return f"{type(self).__name__}({params})"


def _plain(value: Any) -> Any:
    """numpy values and tuples -> JSON types."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    return value
