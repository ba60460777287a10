"""``Preparer``: one kind of data (table, image) from a source's raw container to model input.

A preparer owns everything that differs between kinds: the stateless cleaning before the split
(``tidy``), the fitted preprocessing and the cleaning actions its fitted steps emit (``fit``),
the kind-specific part of the profile (``profile_fields``) and the batch augmenter. The
pipeline in ``_prepare.py`` (split, labels, bundle, the common profile) is the same for every
kind and asks the preparer for the rest, so it never tests what kind of data it holds.

scikit-learn discipline: the constructor only stores the config; ``fit`` learns attributes
ending in ``_``. Preparers are registered by the ``kind`` of the raw container they take
(``RawTable.kind == "table"``); :func:`register_preparer` adds one or replaces a built-in.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar, Generic, TypeVar

import numpy as np

from ..config import DataConfig
from ..errors import DataError
from ._profile import CleaningAction
from ._raw import Loaded
from ._split import SplitPositions
from ._tidy import Tidy

P = TypeVar("P", bound=type["Preparer"])
RawT = TypeVar("RawT", bound=Loaded)
TidyT = TypeVar("TidyT", bound=Tidy)

_PREPARERS: dict[str, type[Preparer[Any, Any]]] = {}


class Preparer(ABC, Generic[RawT, TidyT]):
    """Cleans, fits and describes one kind of data; subclasses register with
    :func:`register_preparer`.

    After :meth:`fit`: ``preprocessing_`` (the fitted :class:`~tunelab.data.Preprocessing`),
    ``X_`` (``{"train"|"val"|"test": float32 array}``), ``final_`` (the split positions used:
    those given, less any training rows the fitted steps dropped) and ``actions_`` (the
    :class:`CleaningAction` list of the fitted steps, in the order they ran).
    """

    #: ``"table"`` or ``"image"``: what the profile shows; a subclass inherits it
    kind: ClassVar[str] = ""
    #: whether ``data.augment`` applies to this kind (images only, among the built-ins)
    augments: ClassVar[bool] = False

    def __init__(self, cfg: DataConfig) -> None:
        self.cfg = cfg

    @abstractmethod
    def tidy(self, raw: RawT, *, seed: int) -> TidyT:
        """The stateless cleaning (row by row, before the split); removals become actions."""

    @abstractmethod
    def fit(self, tidied: TidyT, parts: SplitPositions) -> Preparer[RawT, TidyT]:
        """Fit the preprocessing on ``parts.train`` and transform every split; returns self."""

    @abstractmethod
    def profile_fields(self, tidied: TidyT) -> dict[str, Any]:
        """The kind's part of the :class:`DataProfile`: ``input_shape``, ``features``,
        ``columns`` and, where they apply, ``constant_columns`` and ``outlier_rule``."""

    def augmenter(self) -> Any:
        """The training-batch augmenter for ``data.augment``, or ``None``."""
        return None

    @property
    def is_fitted(self) -> bool:
        return all(hasattr(self, name) for name in ("preprocessing_", "X_", "final_", "actions_"))

    def _fitted(
        self,
        preprocessing: Any,
        X: dict[str, np.ndarray],
        final: SplitPositions,
        actions: list[CleaningAction],
    ) -> Preparer[RawT, TidyT]:
        """Set the learned attributes together, so a preparer is fitted all or nothing."""
        self.preprocessing_ = preprocessing
        self.X_ = X
        self.final_ = final
        self.actions_ = actions
        return self

    def __repr__(self) -> str:
        return f"{type(self).__name__}(kind={self.kind!r})"


def register_preparer(kind: str) -> Callable[[P], P]:
    """Class decorator: ``kind``'s raw data is prepared by the decorated :class:`Preparer`.

    Registering a kind again replaces the earlier preparer: a subclass of ``TablePreparer``
    registered as ``"table"`` changes how every table is prepared, e.g. one more cleaning step
    after ``super().tidy(...)``. ``register_preparer("table")(TablePreparer)`` restores the
    built-in.
    """
    if not kind:
        raise ValueError("a preparer needs a non-empty kind")

    def decorate(cls: P) -> P:
        if not (isinstance(cls, type) and issubclass(cls, Preparer)):
            raise TypeError(f"register_preparer({kind!r}) needs a Preparer subclass, got {cls!r}")
        _PREPARERS[kind] = cls
        return cls

    return decorate


def preparer_for(raw: Loaded) -> type[Preparer[Any, Any]]:
    """The registered preparer for ``raw.kind``."""
    found = _PREPARERS.get(raw.kind)
    if found is None:
        raise DataError(
            f"data error: {raw.origin}: no preparer for {raw.kind!r} data; registered: "
            f"{', '.join(sorted(_PREPARERS)) or 'none'}"
        )
    return found


def registered_preparers() -> dict[str, type[Preparer[Any, Any]]]:
    """A copy of the registry, ``{kind: Preparer class}``."""
    return dict(_PREPARERS)
