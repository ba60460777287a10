"""Search spaces written in place of a value: ``{choice: [...]}`` or ``{low, high, log, step}``.

Any field declared ``Tunable[T]`` accepts either a plain ``T`` or a search space whose values
are each valid ``T``. The tune stage turns these objects into Optuna distributions; every other
stage sees only plain values (a trial's config is resolved before it runs).
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal, TypeVar, get_args, get_origin

from pydantic import BaseModel, ConfigDict, ValidationError, WrapSerializer, WrapValidator
from pydantic_core import PydanticCustomError

T = TypeVar("T")

_SPACE_KEYS = {"choice", "low", "high", "log", "step", "integer"}
# Keys people write for a space from other tools (Ray Tune, W&B, argparse): named in the error.
_NEAR_KEYS = {
    "min": "low",
    "max": "high",
    "lower": "low",
    "upper": "high",
    "lo": "low",
    "hi": "high",
    "from": "low",
    "to": "high",
    "choices": "choice",
    "values": "choice",
    "options": "choice",
    "categories": "choice",
    "grid": "choice",
    "grid_search": "choice",
    "q": "step",
    "log_scale": "log",
}
SPACE_SYNTAX = (
    "a search space is {low: L, high: H} (optionally log: true or step: S) "
    "or {choice: [v1, v2, ...]}"
)


class SearchSpace(BaseModel):
    """Base of the two search-space forms."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class Choice(SearchSpace):
    """A categorical space: one of ``choice``."""

    choice: list[Any]

    def values(self) -> list[Any]:
        return list(self.choice)


class Range(SearchSpace):
    """A numeric range ``[low, high]``; ``log`` samples on a log scale, ``step`` discretises.

    The bounds keep the type they were written with (``16`` stays an int, ``1e-4`` a float).
    """

    low: int | float
    high: int | float
    log: bool = False
    step: int | float | None = None
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


def attempts_space(value: Any) -> bool:
    """A dict that is meant as a search space, even a misspelt one (``{min: 1, max: 2}``)."""
    if not isinstance(value, dict) or not value:
        return False
    keys = {str(k) for k in value}
    if keys & {"choice", "low", "high"}:
        return True
    return bool(keys & set(_NEAR_KEYS)) and keys <= _SPACE_KEYS | set(_NEAR_KEYS)


def space_syntax_error(value: Any, expected: str = "a plain value") -> PydanticCustomError:
    """The error for a dict or list where a value or a search space belongs."""
    if isinstance(value, list):
        shown = _short(value)
        return PydanticCustomError(
            "space",
            f"expected {expected} or a search space; a bare list is not one: "
            f"write {{choice: {shown}}}",
        )
    if isinstance(value, dict):
        wrong = [str(k) for k in value if k not in _SPACE_KEYS]
        hints = [f"{k} -> {_NEAR_KEYS[k]}" for k in wrong if k in _NEAR_KEYS]
        hint = f" (did you mean {', '.join(hints)}?)" if hints else ""
        keys = ", ".join(wrong) or "none"
        return PydanticCustomError(
            "space",
            f"expected {expected} or a search space; unknown space key(s) {keys}{hint}; "
            f"{SPACE_SYNTAX}",
        )
    return PydanticCustomError("space", f"expected {expected} or a search space; {SPACE_SYNTAX}")


def _short(value: Any) -> str:
    text = "[" + ", ".join(repr(v) if isinstance(v, str) else str(v) for v in value) + "]"
    return text if len(text) <= 60 else text[:57] + "...]"


def _is_number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)


def _not_a_number(what: str, value: Any) -> PydanticCustomError:
    if isinstance(value, str):
        detail = f"{what} must be a number, got the string {value!r}"
        try:
            float(value)
            detail += " (write it without quotes)"
        except ValueError:
            pass
    elif isinstance(value, bool):
        detail = f"{what} must be a number, got the boolean {value}"
    elif isinstance(value, float):
        detail = f"{what} must be a finite number, got {value}"
    else:
        detail = f"{what} must be a number, got {value!r}"
    return PydanticCustomError("space", detail)


def parse_space(value: dict, validate_one: Any = None, *, integer: bool = False) -> SearchSpace:
    """Parse a search-space dict; ``validate_one`` checks each candidate value.

    ``validate_one`` is the field's own validator (its type and constraints), so both ends of a
    range and every choice must be values the field accepts.
    """
    if not looks_like_space(value):
        raise space_syntax_error(value)
    flag = value.get("integer", integer)
    if not isinstance(flag, bool):
        raise PydanticCustomError("space", f"integer must be true or false, got {flag!r}")
    integer = flag
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
            options = [_check_one(validate_one, "choice", o) for o in options]
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
        if not _is_number(bound):
            raise _not_a_number(f"range {key}", bound)
    if validate_one is not None:
        low = _check_one(validate_one, "range low", low)
        high = _check_one(validate_one, "range high", high)
    if not low < high:
        raise PydanticCustomError(
            "space",
            "range low must be below high, got low={low}, high={high}",
            {"low": low, "high": high},
        )
    log = value.get("log", False)
    if not isinstance(log, bool):
        raise PydanticCustomError("space", f"log must be true or false, got {log!r}")
    if log and low <= 0:
        raise PydanticCustomError("space", "a log range needs low > 0, got low={low}", {"low": low})
    step = value.get("step")
    if step is not None and (not _is_number(step) or step <= 0):
        raise PydanticCustomError("space", f"step must be a positive number, got {step!r}")
    if integer and step is not None and not float(step).is_integer():
        raise PydanticCustomError(
            "space", f"an integer range needs a whole-number step, got {step!r}"
        )
    if log and step is not None:
        raise PydanticCustomError("space", "a range cannot have both log and step", {})
    return Range(low=low, high=high, log=log, step=step, integer=integer)


def _check_one(validate_one: Any, what: str, candidate: Any) -> Any:
    """The field's validator on one candidate; its error says which end or choice failed."""
    try:
        return validate_one(candidate)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        if any(e["type"] == "literal_error" for e in errors):
            raise  # reported as "expected one of ..., did you mean ..." for the value itself
        message = errors[0]["msg"] if errors else str(exc)
        message = message.replace("Input should be ", "must be ", 1)
        raise PydanticCustomError("space", f"{what} {candidate!r}: {message}") from None


def _describe_type(item: Any) -> str:
    if item is int:
        return "an integer"
    if item is float:
        return "a number"
    if get_origin(item) is Literal:
        return "one of " + ", ".join(str(a) for a in get_args(item))
    return "a plain value"


def _make_validator(integer: bool, expected: str = "a plain value"):
    def _validate(value: Any, handler: Any) -> Any:
        if isinstance(value, SearchSpace):
            return value
        if looks_like_space(value):
            return parse_space(value, handler, integer=integer)
        if isinstance(value, (dict, list)):
            raise space_syntax_error(value, expected)
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
            WrapValidator(_make_validator(integer, _describe_type(item))),
            WrapSerializer(_serialize),
        ]


Tunable = _TunableFactory()


def resolve_nested_spaces(value: Any, path: tuple[Any, ...] = ()) -> Any:
    """Parse search-space dicts anywhere inside a free-form dict (e.g. ``model.params``).

    A dict meant as a space but misspelt (``{min: 1, max: 2}``, ``{choices: [...]}``) is an
    error naming the space syntax. Errors carry the key path below the field in ``ctx["path"]``
    (type ``space_at``) so the one-line message names ``model.params.width``, not
    ``model.params``.
    """
    if isinstance(value, SearchSpace):
        return value
    if path and attempts_space(value):
        try:
            return parse_space(value)
        except PydanticCustomError as exc:
            raise PydanticCustomError(
                "space_at", "{message}", {"path": list(path), "message": exc.message()}
            ) from None
    if isinstance(value, dict):
        return {k: resolve_nested_spaces(v, (*path, k)) for k, v in value.items()}
    return value
