"""The extension point for training checks: one small :class:`Detector` class per problem.

A detector reads the :class:`~tunelab.diagnose._record.TrainingRecord` (plain numbers, nothing
on the device) and returns findings without remedies; the doctor asks the remedy registry for
the prescription. Add a detector by subclassing and registering it::

    @register_detector("my_check")
    class MyCheck(Detector):
        kinds = ("slow_convergence",)

        def check(self, record):
            return []
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar

from ._finding import KINDS, Finding, Severity
from ._record import TrainingRecord

_DETECTORS: dict[str, type[Detector]] = {}


class Detector(ABC):
    """Looks at the training record and reports findings of its ``kinds``."""

    name: ClassVar[str] = ""
    kinds: ClassVar[tuple[str, ...]] = ()

    @abstractmethod
    def check(self, record: TrainingRecord) -> list[Finding]:
        """The findings this detector sees in ``record`` (possibly none)."""

    def finding(
        self,
        kind: str,
        severity: Severity,
        evidence: str,
        figures: dict[str, Any] | None = None,
        first_seen: dict[str, int | None] | None = None,
    ) -> Finding:
        """A finding without remedy; the doctor fills the remedy in."""
        return Finding(kind, severity, evidence, dict(figures or {}), first_seen=first_seen)


def register_detector(name: str) -> Callable[[type[Detector]], type[Detector]]:
    """Class decorator: make a detector available by ``name`` (and on by default)."""

    def decorate(cls: type[Detector]) -> type[Detector]:
        unknown = [k for k in cls.kinds if k not in KINDS]
        if unknown:
            raise ValueError(f"detector {name!r} reports unknown kinds {unknown}; known: {KINDS}")
        cls.name = name
        _DETECTORS[name] = cls
        return cls

    return decorate


def detector_names() -> list[str]:
    """Every registered detector, in registration order."""
    return list(_DETECTORS)


def make_detectors(names: list[str] | None = None) -> list[Detector]:
    """Instances of the named detectors (all registered ones by default)."""
    if names is None:
        return [cls() for cls in _DETECTORS.values()]
    missing = [n for n in names if n not in _DETECTORS]
    if missing:
        raise ValueError(
            f"unknown detector(s) {missing}; registered detectors: {', '.join(_DETECTORS)}"
        )
    return [_DETECTORS[n]() for n in names]
