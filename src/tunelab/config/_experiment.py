"""The whole experiment config, loading it from YAML or a dict, and one-line errors."""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any, get_args

import yaml
from pydantic import BaseModel, Field, ValidationError

from ..errors import ConfigError
from ._base import Section
from ._compress import CompressConfig, DeployConfig
from ._data import DataConfig
from ._diagnose import DiagnoseConfig
from ._model import ModelConfig
from ._space import SearchSpace
from ._train import TrainConfig
from ._tune import TuneConfig


class ExperimentConfig(Section):
    """One experiment: every section has defaults, so ``{}`` is a valid config."""

    name: str = Field("experiment", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    seed: int = 0
    run_root: str = "runs"
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    diagnose: DiagnoseConfig = Field(default_factory=DiagnoseConfig)
    tune: TuneConfig = Field(default_factory=TuneConfig)
    compress: CompressConfig = Field(default_factory=CompressConfig)
    deploy: DeployConfig = Field(default_factory=DeployConfig)

    @property
    def run_dir(self) -> Path:
        return Path(self.run_root) / self.name

    def to_dict(self) -> dict[str, Any]:
        """The resolved config as plain YAML-able data."""
        return self.model_dump(mode="json")

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def search_spaces(self) -> dict[str, SearchSpace]:
        """Every tuned field by dotted path (``train.lr``, ``model.params.width``)."""
        found: dict[str, SearchSpace] = {}
        _collect_spaces(self, "", found)
        return found

    def has_search_space(self) -> bool:
        return bool(self.search_spaces())

    def with_values(self, values: dict[str, Any]) -> ExperimentConfig:
        """A copy with dotted paths set to plain values (a trial's resolved config)."""
        data = self.model_dump(mode="python")
        for path, value in values.items():
            _set_path(data, path, value)
        return parse_config(data)


def _collect_spaces(node: Any, prefix: str, found: dict[str, SearchSpace]) -> None:
    if isinstance(node, SearchSpace):
        found[prefix] = node
    elif isinstance(node, BaseModel):
        for name in type(node).model_fields:
            _collect_spaces(getattr(node, name), f"{prefix}.{name}" if prefix else name, found)
    elif isinstance(node, dict):
        for key, value in node.items():
            _collect_spaces(value, f"{prefix}.{key}" if prefix else str(key), found)


def _set_path(data: dict[str, Any], path: str, value: Any) -> None:
    parts = path.split(".")
    node = data
    for part in parts[:-1]:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[parts[-1]] = value


def parse_config(data: dict[str, Any] | None) -> ExperimentConfig:
    """Validate a dict into an :class:`ExperimentConfig`; raise a one-line :class:`ConfigError`."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"config error: the config must be a mapping of sections, got {type(data).__name__}"
        )
    try:
        return ExperimentConfig.model_validate(data)
    except ValidationError as exc:
        raise _one_line(exc, data) from None


def load_config(path: str | Path) -> ExperimentConfig:
    """Read a YAML experiment file; every failure is one :class:`ConfigError` line."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config error: no such file {str(path)!r}")
    text = path.read_text(encoding="utf-8")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"config error: {where}: YAML syntax error: {problem}") from None
    return parse_config(data)


# ---- one-line error messages ---------------------------------------------------------------


def _dotted(loc: tuple[Any, ...]) -> str:
    parts = [str(p) if str(p).isprintable() and str(p).strip() == str(p) else repr(p) for p in loc]
    return ".".join(parts) or "<root>"


def _value_at(data: Any, loc: tuple[Any, ...]) -> Any:
    node = data
    for part in loc:
        if (isinstance(node, dict) and part in node) or (
            isinstance(node, list) and isinstance(part, int) and part < len(node)
        ):
            node = node[part]
        else:
            return None
    return node


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The section class that owns the last key of ``loc`` (for listing allowed keys)."""
    model: Any = ExperimentConfig
    for part in loc:
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return None
        field = model.model_fields.get(str(part))
        if field is None:
            return None
        model = _section_type(field.annotation)
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _section_type(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _section_type(arg)
        if found is not None:
            return found
    return None


def _suggest(bad: Any, options: list[str]) -> str:
    close = difflib.get_close_matches(str(bad), options, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _one_line(exc: ValidationError, data: dict[str, Any]) -> ConfigError:
    error = _describe(exc, data)
    # A key or value with a newline in it must not break the one-line promise.
    return ConfigError(" ".join(str(error).split("\n")), field=error.field)


def _describe(exc: ValidationError, data: dict[str, Any]) -> ConfigError:
    errors = exc.errors(include_url=False)
    # Prefer the error the user can act on: unknown keys first, then the first in document order.
    error = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    loc = tuple(p for p in error["loc"] if not _is_internal_loc(p))
    field = _dotted(loc)
    kind = error["type"]
    bad = error.get("input")
    if kind == "extra_forbidden":
        parent = _model_at(loc[:-1])
        allowed = list(parent.model_fields) if parent else []
        key = str(loc[-1])
        hint = _suggest(key, allowed)
        return ConfigError(
            f"config error: {field} — unknown key; allowed keys here: {', '.join(allowed)}{hint}",
            field=field,
        )
    if kind == "missing":
        return ConfigError(f"config error: {field} — required field is missing", field=field)
    if kind == "literal_error":
        options = re.findall(r"'([^']*)'", error["ctx"]["expected"])
        if not options:
            options = [s.strip() for s in re.split(r",| or ", error["ctx"]["expected"]) if s]
        return ConfigError(
            f"config error: {field} = {bad!r} — expected one of {', '.join(options)}"
            f"{_suggest(bad, options)}",
            field=field,
        )
    message = error["msg"]
    message = re.sub(r"^(Value error|Assertion failed), ", "", message)
    named = re.match(r"unknown \w+ '([^']*)'; expected one of (.*)$", message)
    if named:
        message += _suggest(named.group(1), named.group(2).split(", "))
    shown = bad if bad is not None else _value_at(data, loc)
    if isinstance(shown, dict) and kind not in ("space",):
        return ConfigError(f"config error: {field} — {message}", field=field)
    return ConfigError(f"config error: {field} = {shown!r} — {message}", field=field)


def _is_internal_loc(part: Any) -> bool:
    """Pydantic adds union/type tags to locations (``function-wrap[...]``, ``int``)."""
    text = str(part)
    return (
        "[" in text
        or text in {"int", "float", "str", "bool", "list", "dict"}
        or (text.startswith("literal"))
    )
