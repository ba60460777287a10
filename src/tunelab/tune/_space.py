"""Search spaces from the config as Optuna distributions, and back to plain values.

The config writes a tuned field in place (``{choice: [...]}`` or ``{low, high, log, step}``);
``cfg.search_spaces()`` lists them by dotted path. Optuna names each parameter by that same
dotted path (``train.lr``, ``model.params.width``), so the dashboard, importances and the
best-params table read like the YAML.

Optuna stores categorical choices only as ``None``/bool/int/float/str; a choice that is a list
or a mapping (``hidden: {choice: [[64, 64], [128]]}``) is stored as its JSON text and decoded
after sampling.
"""

from __future__ import annotations

import json
import math
import typing
from collections.abc import Mapping
from typing import Any

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from ..config import Choice, ConfigError, ExperimentConfig, Range, SearchSpace
from ..config._space import looks_like_space, parse_space

_PLAIN = (type(None), bool, int, float, str)
_JSON_PREFIX = "json:"


def as_spaces(space: Mapping[str, Any]) -> dict[str, SearchSpace]:
    """Accept ``SearchSpace`` objects or their dict form (``{"choice": [...]}``) by name."""
    out: dict[str, SearchSpace] = {}
    for name, value in space.items():
        if isinstance(value, SearchSpace):
            out[name] = value
        elif looks_like_space(value):
            try:
                out[name] = parse_space(dict(value))
            except Exception as exc:  # pydantic's custom error carries a readable message
                raise ConfigError(f"config error: search space {name!r} — {exc}") from None
        else:
            raise ConfigError(
                f"config error: search space {name!r} = {value!r} — expected "
                "{choice: [...]} or {low, high, log, step}"
            )
    return out


def config_spaces(cfg: ExperimentConfig) -> dict[str, SearchSpace]:
    """``cfg.search_spaces()`` with integer ranges of ``model.params`` recognised.

    ``model.params`` is free-form, so the config cannot know that ``depth: {low: 1, high: 4}``
    is an integer; the model builder's signature says so (``depth: int``), and a range over an
    int-typed parameter is sampled as integers.
    """
    spaces = cfg.search_spaces()
    hints = _builder_hints(cfg.model.builder)
    prefix = "model.params."
    for name, space in spaces.items():
        if not (isinstance(space, Range) and name.startswith(prefix) and not space.integer):
            continue
        param = name[len(prefix) :]
        if _is_int_type(hints.get(param)) and float(space.low).is_integer():
            spaces[name] = space.model_copy(update={"integer": True})
    return spaces


def config_data(cfg: ExperimentConfig) -> dict[str, Any]:
    """The config as plain data that parses back to the same config, search spaces included.

    ``cfg.to_dict()`` writes a range inside the free-form ``model.params`` with its internal
    ``integer`` flag, which the parser then no longer reads as a search space; this writes every
    space in its YAML form (``{low, high, log, step}`` / ``{choice}``).
    """
    return _space_dicts(cfg.model_dump(mode="python"), cfg)


def _space_dicts(node: Any, cfg: ExperimentConfig) -> Any:
    if isinstance(node, dict):
        if set(node) == {"low", "high", "log", "step", "integer"}:
            return {k: v for k, v in node.items() if k != "integer" and (k in ("low", "high") or v)}
        return {k: _space_dicts(v, cfg) for k, v in node.items()}
    if isinstance(node, (list, tuple)):
        return [_space_dicts(v, cfg) for v in node]
    return node


def _builder_hints(builder: str) -> dict[str, Any]:
    try:
        from ..models import get_builder

        return typing.get_type_hints(get_builder(builder), include_extras=True)
    except Exception:  # an unknown or oddly annotated builder: no hints, ranges stay floats
        return {}


def _is_int_type(hint: Any) -> bool:
    if hint is None:
        return False
    if typing.get_origin(hint) is typing.Annotated:
        hint = typing.get_args(hint)[0]
    return hint is int


def _encode_choice(value: Any) -> Any:
    if isinstance(value, _PLAIN):
        return value
    return _JSON_PREFIX + json.dumps(value, sort_keys=True)


def decode_value(value: Any) -> Any:
    """A sampled value as the config expects it (JSON-encoded choices decoded)."""
    if isinstance(value, str) and value.startswith(_JSON_PREFIX):
        return json.loads(value[len(_JSON_PREFIX) :])
    return value


def to_distribution(space: SearchSpace) -> BaseDistribution:
    """The Optuna distribution of one search space."""
    if isinstance(space, Choice):
        return CategoricalDistribution([_encode_choice(v) for v in space.choice])
    assert isinstance(space, Range)
    if space.integer:
        step = 1 if space.step is None else max(1, round(space.step))
        return IntDistribution(int(space.low), int(space.high), log=space.log, step=step)
    return FloatDistribution(space.low, space.high, log=space.log, step=space.step)


def to_distributions(spaces: Mapping[str, SearchSpace]) -> dict[str, BaseDistribution]:
    return {name: to_distribution(space) for name, space in spaces.items()}


def suggest(trial: optuna.Trial, spaces: Mapping[str, SearchSpace]) -> dict[str, Any]:
    """Sample every space through ``trial`` (so the sampler decides) and decode the values."""
    values: dict[str, Any] = {}
    for name, space in spaces.items():
        dist = to_distribution(space)
        if isinstance(dist, CategoricalDistribution):
            raw = trial.suggest_categorical(name, dist.choices)
        elif isinstance(dist, IntDistribution):
            raw = trial.suggest_int(name, dist.low, dist.high, step=dist.step, log=dist.log)
        else:
            assert isinstance(dist, FloatDistribution)
            raw = trial.suggest_float(name, dist.low, dist.high, step=dist.step, log=dist.log)
        values[name] = decode_value(raw)
    return values


def grid_values(spaces: Mapping[str, SearchSpace]) -> dict[str, list[Any]]:
    """The finite set of values of every space, for exhaustive grid search.

    Raises :class:`ConfigError` naming the first continuous range, since a grid over it would
    be infinite.
    """
    grid: dict[str, list[Any]] = {}
    for name, space in spaces.items():
        if isinstance(space, Choice):
            grid[name] = [_encode_choice(v) for v in space.choice]
        elif isinstance(space, Range) and space.integer and space.step is None:
            grid[name] = list(range(int(space.low), int(space.high) + 1))
        elif isinstance(space, Range) and space.step is not None:
            grid[name] = _stepped(space)
        else:
            raise ConfigError(
                f"config error: tune.sampler = 'grid' needs a finite set of values, but {name} "
                f"is a continuous range [{space.low:g}, {space.high:g}]; give it a step or "
                "write it as {choice: [...]}"
            )
    return grid


def _stepped(space: Range) -> list[Any]:
    values = space.values()
    if space.integer:
        return [int(v) for v in values]
    # Round away float noise (0.1 + 2 * 0.1 = 0.30000000000000004) so the grid reads cleanly
    # and matches the values Optuna's FloatDistribution(step=...) accepts.
    digits = max(0, -math.floor(math.log10(space.step))) + 6 if space.step else 12
    return [round(v, digits) for v in values]


def grid_size(spaces: Mapping[str, SearchSpace]) -> int | None:
    """Number of points of the full grid, or ``None`` when a range is continuous."""
    try:
        grid = grid_values(spaces)
    except ConfigError:
        return None
    return math.prod(len(v) for v in grid.values()) if grid else 1


def max_value(value: Any) -> Any:
    """The largest value a field may take: itself, or the top of its space (e.g. epochs)."""
    if isinstance(value, Choice):
        return max(value.choice)
    if isinstance(value, Range):
        return int(value.high) if value.integer else value.high
    return value
