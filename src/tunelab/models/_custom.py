"""``custom``: any ``nn.Module`` from your own code, named by ``package.module:function``.

The factory receives the remaining params as keywords, plus ``input_shape`` and ``output_size``
if its signature accepts them. To use transfer learning, name the final layer ``head``.

Loading a saved ``custom`` model imports and calls the factory named in ``model.json``, so load
such directories only from sources you trust; standard-library callables are refused outright.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from collections.abc import Callable
from typing import Any

import torch.nn as nn

from ..errors import ConfigError
from ._registry import param_error, register_builder


def resolve_factory(path: str) -> Callable[..., Any]:
    """Import ``package.module:function`` (or ``package.module:Class``) and return it."""
    module_name, sep, attr = path.partition(":")
    if not sep or not module_name or not attr:
        raise param_error("factory", path, "expected 'package.module:function'")
    root = module_name.split(".")[0]
    if root in sys.stdlib_module_names or root == "builtins":
        raise param_error("factory", path, "must be your own code, not the standard library")
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise param_error("factory", path, f"cannot import {module_name!r}: {exc}") from None
    for part in attr.split("."):
        if not hasattr(target, part):
            raise param_error("factory", path, f"module {module_name!r} has no {attr!r}")
        target = getattr(target, part)
    if not callable(target):
        raise param_error("factory", path, "is not callable")
    return target


@register_builder("custom")
def custom(
    *, input_shape: tuple[int, ...], output_size: int, factory: str, **kwargs: Any
) -> nn.Module:
    """Call ``factory(**kwargs)`` and return the module it builds.

    Args:
        factory: ``"package.module:function"`` returning an ``nn.Module``.
        **kwargs: passed to the factory; checked against its signature.
    """
    fn = resolve_factory(factory)
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        signature = None
    call = dict(kwargs)
    if signature is not None:
        params = signature.parameters
        open_kwargs = any(p.kind is p.VAR_KEYWORD for p in params.values())
        for name, value in (("input_shape", input_shape), ("output_size", output_size)):
            if name in params or open_kwargs:
                call[name] = value
        try:
            signature.bind(**call)
        except TypeError as exc:
            accepted = [n for n in params if n not in ("input_shape", "output_size")]
            bad = next((k for k in kwargs if k not in params), None)
            if bad is not None and not open_kwargs:
                raise ConfigError(
                    f"config error: model.params.{bad} — unknown parameter for factory "
                    f"{factory!r}; accepted parameters: factory, {', '.join(accepted)}",
                    field=f"model.params.{bad}",
                ) from None
            message = f"cannot be called with {kwargs}: {exc}"
            raise param_error("factory", factory, message) from None
    model = fn(**call)
    if not isinstance(model, nn.Module):
        raise param_error("factory", factory, f"returned {type(model).__name__}, not nn.Module")
    return model
