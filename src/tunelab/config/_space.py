"""Search spaces written in place of a value: ``{choice: [...]}`` or ``{low, high, log, step}``.

Any field declared ``Tunable[T]`` accepts either a plain ``T`` or a search space whose values
are each valid ``T``. The tune stage turns these objects into Optuna distributions; every other
stage sees only plain values (a trial's config is resolved before it runs).
"""

from __future__ import annotations

import math
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict, WrapSerializer, WrapValidator
from pydantic_core import PydanticCustomError

T = TypeVar("T")

_SPACE_KEYS = {"choice", "low", "high", "log", "step", "integer"}


class SearchSpace(BaseModel):
    """Base of the two search-space forms."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Choice(SearchSpace):
    """A categorical space: one of ``choice``."""

    choice: list[Any]

    def values(self) -> list[Any]:
        return list(self.choice)


class Range(SearchSpace):
    """A numeric range ``[low, high]``; ``log`` samples on a log scale, ``step`` discretises."""

    low: float
    high: float
    log: bool = False
    step: float | None = None
    integer: bool = False

    def values(self) -> list[Any]:
        """The grid points of a stepped range (grid search needs a finite set)."""
        if self.step is None:
            raise ValueError("a continuous range has no finite set of values; give it a step")
        n = math.floor((self.high - self.low) / self.step + 1e-9) + 1
        pts = [self.low + i * self.step for i in range(n)]
        return [round(p) for p in pts] if self.integer else pts


def is_space(value: Any) -> bool:
    return isinstance(value, SearchSpace)


def looks_like_space(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and bool(value)
        and set(value) <= _SPACE_KEYS
        and ("choice" in value or "low" in value or "high" in value)
    )


def parse_space(value: dict, validate_one: Any = None, *, integer: bool = False) -> SearchSpace:
    """Parse a search-space dict; ``validate_one`` checks each candidate value."""
    integer = bool(value.get("integer", integer))
    if "choice" in value:
        extra = set(value) - {"choice", "integer"}
        if extra:
            raise PydanticCustomError(
                "space",
                "a {choice: [...]} space takes no other keys, got {extra}",
                {"extra": ", ".join(sorted(extra))},
            )
        options = value["choice"]
        if not isinstance(options, list) or not options:
            raise PydanticCustomError("space", "choice must be a non-empty list", {})
        if validate_one is not None:
            options = [validate_one(o) for o in options]
        return Choice(choice=options)
    missing = {"low", "high"} - set(value)
    if missing:
        raise PydanticCustomError(
            "space",
            "a range needs both low and high (missing {missing})",
            {"missing": ", ".join(sorted(missing))},
        )
    low, high = value["low"], value["high"]
    for key, bound in (("low", low), ("high", high)):
        if isinstance(bound, bool) or not isinstance(bound, (int, float)):
            raise PydanticCustomError(
                "space", "range {key} must be a number, got {bound!r}", {"key": key, "bound": bound}
            )
    if validate_one is not None:
        low, high = validate_one(low), validate_one(high)
    if not low < high:
        raise PydanticCustomError(
            "space",
            "range low must be below high, got low={low}, high={high}",
            {"low": low, "high": high},
        )
    log = bool(value.get("log", False))
    if log and low <= 0:
        raise PydanticCustomError("space", "a log range needs low > 0, got low={low}", {"low": low})
    step = value.get("step")
    if step is not None and (
        isinstance(step, bool) or not isinstance(step, (int, float)) or step <= 0
    ):
        raise PydanticCustomError("space", "step must be a positive number, got {s!r}", {"s": step})
    if log and step is not None:
        raise PydanticCustomError("space", "a range cannot have both log and step", {})
    return Range(low=low, high=high, log=log, step=step, integer=integer)


def _make_validator(integer: bool):
    def _validate(value: Any, handler: Any) -> Any:
        if isinstance(value, SearchSpace):
            return value
        if looks_like_space(value):
            return parse_space(value, handler, integer=integer)
        return handler(value)

    return _validate


def _serialize(value: Any, handler: Any) -> Any:
    if isinstance(value, SearchSpace):
        return value.model_dump(exclude_defaults=True, exclude={"integer"})
    return handler(value)


class _TunableFactory:
    """``Tunable[float]``: the type itself, or a search space over it."""

    def __getitem__(self, item: Any) -> Any:
        integer = item is int
        return Annotated[
            item,
            WrapValidator(_make_validator(integer)),
            WrapSerializer(_serialize),
        ]


Tunable = _TunableFactory()


def resolve_nested_spaces(value: Any) -> Any:
    """Parse search-space dicts anywhere inside a free-form dict (e.g. ``model.params``)."""
    if isinstance(value, SearchSpace):
        return value
    if looks_like_space(value):
        return parse_space(value)
    if isinstance(value, dict):
        return {k: resolve_nested_spaces(v) for k, v in value.items()}
    return value
