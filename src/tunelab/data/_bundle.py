"""``DataBundle``: the prepared data every later stage receives.

Tensors are already cleaned, scaled and split; ``preprocessing`` holds the fitted transform so
serving applies exactly the same steps to raw input; ``augmenter`` (images only) is applied per
training batch by the trainer and never at evaluation time. ``provenance`` records what a bundle
from ``prepare_data`` was built from, so cross-validation can refit the preprocessing per fold
and ``source_rows`` can name the file rows of each split.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch

if TYPE_CHECKING:
    from ..config import DataConfig
    from ._preparer import Preparer
    from ._split import SplitPositions
    from ._tidy import Tidy

Task = Literal["classification", "regression"]
SPLIT_TENSORS = ("X_train", "y_train", "X_val", "y_val", "X_test", "y_test")


@dataclass(frozen=True)
class Provenance:
    """What a bundle from ``prepare_data`` was built from.

    ``tidied`` is the data after the stateless cleaning (before anything was fitted), ``cfg``
    and ``seed`` the settings, ``preparer`` the :class:`~tunelab.data.Preparer` class that
    fitted it, ``parts`` the split positions (into ``tidied``) as cut, and ``final`` the
    positions actually used (``parts`` less the training rows dropped as outliers).
    """

    tidied: Tidy
    cfg: DataConfig
    seed: int
    preparer: type[Preparer]
    parts: SplitPositions
    final: SplitPositions

    def source_rows(self, split: str) -> np.ndarray:
        """0-based source rows of ``split`` (``"train"``, ``"val"`` or ``"test"``)."""
        return self.tidied.source_index[getattr(self.final, split)]


@dataclass
class DataBundle:
    """Train/val/test tensors plus what a model needs to know about them.

    ``X_*`` are float32 with shape ``(n, *input_shape)``; ``y_*`` are int64 class indices for
    classification and float32 ``(n,)`` or ``(n, k)`` targets for regression.
    """

    X_train: torch.Tensor
    y_train: torch.Tensor
    X_val: torch.Tensor
    y_val: torch.Tensor
    X_test: torch.Tensor
    y_test: torch.Tensor
    task: Task
    classes: list[str] = field(default_factory=list)
    feature_names: list[str] = field(default_factory=list)
    preprocessing: Any = None
    augmenter: Any = None
    profile: Any = None
    name: str = "data"
    # Kept out of repr and equality: it holds the whole cleaned source.
    provenance: Provenance | None = field(default=None, repr=False, compare=False)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.X_train.shape[1:])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def output_size(self) -> int:
        """Units of the model's last layer: classes, or regression targets."""
        if self.task == "classification":
            return self.num_classes
        return 1 if self.y_train.ndim == 1 else int(self.y_train.shape[1])

    @property
    def is_image(self) -> bool:
        return self.X_train.ndim == 4

    def split(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """``(X, y)`` of ``"train"``, ``"val"`` or ``"test"``."""
        if name not in ("train", "val", "test"):
            raise ValueError(f"split must be one of train, val, test, got {name!r}")
        return getattr(self, f"X_{name}"), getattr(self, f"y_{name}")

    def source_rows(self, split: str) -> np.ndarray | None:
        """0-based rows of the source (file row after the header, array index, image number)
        that make up ``split``, in order; ``None`` for a bundle without :attr:`provenance`
        (``from_arrays``, or a :meth:`replace` copy with new split tensors)."""
        if split not in ("train", "val", "test"):
            raise ValueError(f"split must be one of train, val, test, got {split!r}")
        return None if self.provenance is None else self.provenance.source_rows(split)

    def replace(self, **changes: Any) -> DataBundle:
        """A shallow copy with some fields changed (e.g. the folds of cross-validation).

        ``provenance`` is kept, so a renamed bundle or one with another augmenter still refits
        per fold. It is dropped (``None``) when a split's tensors change, unless ``provenance``
        is passed too: it describes the tensors it was built into, and stale provenance would
        make ``kfold_splits`` refit from the old data and ``source_rows`` name the wrong rows.
        """
        values = {f: getattr(self, f) for f in self.__dataclass_fields__}
        if "provenance" not in changes and any(name in changes for name in SPLIT_TENSORS):
            values["provenance"] = None
        values.update(changes)
        return DataBundle(**values)

    @classmethod
    def from_arrays(
        cls,
        X_train: Any,
        y_train: Any,
        X_val: Any,
        y_val: Any,
        X_test: Any = None,
        y_test: Any = None,
        *,
        task: Task = "classification",
        classes: list[str] | None = None,
        **extra: Any,
    ) -> DataBundle:
        """Wrap ready arrays (numpy or torch) without any preprocessing; test defaults to val."""

        def as_x(a: Any) -> torch.Tensor:
            return torch.as_tensor(a, dtype=torch.float32)

        def as_y(a: Any) -> torch.Tensor:
            dtype = torch.int64 if task == "classification" else torch.float32
            return torch.as_tensor(a, dtype=dtype)

        if X_test is None:
            X_test, y_test = X_val, y_val
        y_tr = as_y(y_train)
        if classes is None and task == "classification":
            classes = [str(i) for i in range(int(y_tr.max()) + 1)]
        return cls(
            as_x(X_train),
            y_tr,
            as_x(X_val),
            as_y(y_val),
            as_x(X_test),
            as_y(y_test),
            task=task,
            classes=list(classes or []),
            **extra,
        )
