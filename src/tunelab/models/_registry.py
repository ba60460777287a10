"""The builder registry: model families by name, and ``build_model`` that checks their params.

A builder is a plain function with keyword parameters plus ``input_shape`` and ``output_size``
(which come from the data, never from the config). Its signature *is* its schema: unknown names
and values of the wrong type are rejected here, with the accepted parameters listed, before the
builder runs. Builders name their last layer ``head`` so transfer learning can replace it.
"""

from __future__ import annotations

import difflib
import functools
import inspect
import typing
from collections.abc import Callable
from typing import Any

import torch.nn as nn
from pydantic import TypeAdapter, ValidationError

from ..config import is_space, register_name
from ..errors import ConfigError
from ._init import INIT_SCHEMES, init_weights

Builder = Callable[..., nn.Module]

_BUILDERS: dict[str, Builder] = {}
_DATA_ARGS = ("input_shape", "output_size")


def register_builder(name: str) -> Callable[[Builder], Builder]:
    """Register ``fn`` as the model family ``name`` (usable as ``model.builder: name``).

    Example:
        >>> import torch.nn as nn
        >>> from tunelab.models import register_builder, build_model
        >>> @register_builder("linear_probe")
        ... def linear_probe(*, input_shape, output_size, bias: bool = True):
        ...     net = nn.Sequential(nn.Flatten())
        ...     net.add_module("head", nn.Linear(int(input_shape[0]), output_size, bias=bias))
        ...     return net
        >>> build_model("linear_probe", {}, input_shape=(4,), output_size=3).head.out_features
        3
    """

    def decorate(fn: Builder) -> Builder:
        params = inspect.signature(fn).parameters
        missing = [a for a in _DATA_ARGS if a not in params]
        if missing and not any(p.kind is p.VAR_KEYWORD for p in params.values()):
            raise TypeError(f"builder {name!r} must accept {', '.join(missing)} as keywords")
        _BUILDERS[name] = fn
        register_name("model.builder", name)
        return fn

    return decorate


def builder_names() -> list[str]:
    """Every registered builder name."""
    return sorted(_BUILDERS)


def get_builder(name: str) -> Builder:
    """The builder function registered as ``name``; a one-line error lists the known ones."""
    try:
        return _BUILDERS[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(_BUILDERS), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(
            f"config error: model.builder = {name!r} — unknown builder; expected one of "
            f"{', '.join(builder_names())}{hint}",
            field="model.builder",
        ) from None


def builder_parameters(name: str) -> dict[str, Any]:
    """``{parameter: default}`` a builder accepts (``inspect.Parameter.empty`` if required)."""
    return dict(_schema(get_builder(name)).accepted)


class _Schema(typing.NamedTuple):
    accepted: dict[str, Any]
    takes_any: bool
    hints: dict[str, Any]


# Keyed by the function, not the name: registering a new builder under an old name reads the
# new one's signature. A builder's signature and type hints do not change after definition,
# and reading them (with pydantic's validator for each hint, below) was more than half of a
# small MLP's build time (~0.25 of 0.45 ms), paid by every trial of a study.
@functools.lru_cache(maxsize=256)
def _schema(fn: Builder) -> _Schema:
    params = inspect.signature(fn).parameters
    accepted = {
        p.name: p.default
        for p in params.values()
        if p.name not in _DATA_ARGS and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
    }
    takes_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
    try:
        hints = typing.get_type_hints(fn, include_extras=True)
    except Exception:  # user builders may annotate with names we cannot resolve; skip types
        hints = {}
    return _Schema(accepted, takes_any, hints)


@functools.lru_cache(maxsize=512)
def _adapter(hint: Any) -> TypeAdapter:
    return TypeAdapter(hint)


def param_error(name: str, value: Any, message: str) -> ConfigError:
    """The one-line error for a bad ``model.params.<name>``; builders raise it for bad values."""
    field = f"model.params.{name}"
    return ConfigError(f"config error: {field} = {value!r} — {message}", field=field)


def check_params(
    builder: str, params: dict[str, Any], *, allow_spaces: bool = False
) -> dict[str, Any]:
    """Validate ``params`` against the builder's signature; returns the coerced values.

    With ``allow_spaces`` (``tunelab validate`` on a config to tune) a search-space value is
    checked by name only and returned as it is.
    """
    accepted, takes_any, hints = _schema(get_builder(builder))
    checked: dict[str, Any] = {}
    for key, value in params.items():
        known = key in accepted or takes_any
        if is_space(value) and known and allow_spaces:
            checked[key] = value
            continue
        if is_space(value) and known:
            raise param_error(
                key,
                value,
                "is a search space; run `tunelab tune` or resolve it with cfg.with_values(...)",
            )
        if key in _DATA_ARGS:
            raise param_error(key, value, "comes from the data and cannot be set in params")
        if key not in accepted and not takes_any:
            close = difflib.get_close_matches(key, list(accepted), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(
                f"config error: model.params.{key} — unknown parameter for builder "
                f"{builder!r}; accepted parameters: {', '.join(accepted) or '(none)'}{hint}",
                field=f"model.params.{key}",
            )
        checked[key] = _coerce(key, value, hints.get(key))
    required = [k for k, d in accepted.items() if d is inspect.Parameter.empty]
    for key in required:
        if key not in checked:
            raise ConfigError(
                f"config error: model.params.{key} — required by builder {builder!r}",
                field=f"model.params.{key}",
            )
    return checked


def _coerce(key: str, value: Any, hint: Any) -> Any:
    if hint is None or hint is Any:
        return value
    # Lax mode reads YAML-ish values ("16" -> 16) but would also take True as 1; refuse that.
    if isinstance(value, bool) and "bool" not in str(hint):
        raise param_error(key, value, "expected a number, got a boolean")
    try:
        try:
            adapter = _adapter(hint)
        except TypeError:  # an unhashable annotation (Annotated metadata): no cache
            adapter = TypeAdapter(hint)
        return adapter.validate_python(value, strict=False)
    except ValidationError as exc:
        # In a union (``int | list[int]``) the branch that got furthest into a list explains best.
        errors = exc.errors(include_url=False)
        error = max(errors, key=lambda e: sum(isinstance(p, int) for p in e["loc"]))
        if error["type"] == "literal_error":
            message = f"expected one of {error['ctx']['expected']}"
        else:
            where = "".join(f"[{p}]" for p in error["loc"] if isinstance(p, int))
            message = error["msg"].replace("Input should", "should", 1)
            message = f"item {key}{where} {message}" if where else message
        raise param_error(key, value, message) from None
    except Exception:  # a type pydantic cannot check (a user class): trust the builder
        return value


def build_model(
    builder: str,
    params: dict[str, Any] | None = None,
    *,
    input_shape: tuple[int, ...] | list[int],
    output_size: int,
    init: str = "default",
) -> nn.Module:
    """Build the model family ``builder`` for data of ``input_shape`` and ``output_size`` units.

    Args:
        builder: a registered name (``mlp``, ``cnn``, ``resnet``, ``lstm``, ``gru``,
            ``transformer``, ``custom`` or your own).
        params: the builder's keyword parameters (``model.params`` in a config).
        input_shape: one sample's shape, without the batch dimension.
        output_size: classes for classification, targets for regression.
        init: weight initialisation: ``default``, ``kaiming``, ``xavier`` or ``orthogonal``.

    Example:
        >>> from tunelab.models import build_model, count_parameters
        >>> net = build_model("mlp", {"depth": 1, "width": 8}, input_shape=(4,), output_size=3)
        >>> count_parameters(net)
        67
    """
    if init not in INIT_SCHEMES:
        raise ConfigError(
            f"config error: model.init = {init!r} — expected one of {', '.join(INIT_SCHEMES)}",
            field="model.init",
        )
    if isinstance(output_size, bool) or int(output_size) < 1:
        raise ConfigError(f"output_size must be a positive integer, got {output_size!r}")
    shape = tuple(int(d) for d in input_shape)
    if not shape or any(d < 1 for d in shape):
        raise ConfigError(f"input_shape must be non-empty positive sizes, got {input_shape!r}")
    kwargs = check_params(builder, dict(params or {}))
    model = get_builder(builder)(input_shape=shape, output_size=int(output_size), **kwargs)
    if not isinstance(model, nn.Module):
        raise ConfigError(
            f"config error: model.builder = {builder!r} — returned {type(model).__name__}, "
            "not a torch.nn.Module"
        )
    init_weights(model, init)
    return model
