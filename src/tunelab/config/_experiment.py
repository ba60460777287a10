"""The whole experiment config, loading it from YAML or a dict, and one-line errors."""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path
from typing import Any, get_args

import yaml
from pydantic import BaseModel, Field, PrivateAttr, ValidationError, model_validator

from ..errors import ConfigError
from ._base import Section
from ._compress import CompressConfig, DeployConfig
from ._data import DataConfig
from ._diagnose import DiagnoseConfig
from ._model import ModelConfig
from ._space import SearchSpace
from ._train import TrainConfig
from ._tune import TuneConfig
from ._yaml import DuplicateKeyError, dump_yaml, load_yaml


class ExperimentConfig(Section):
    """One experiment: every section has defaults, so ``{}`` is a valid config."""

    name: str = Field("experiment", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    seed: int = Field(0, ge=0, le=2**32 - 1)
    run_root: str = "runs"
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    diagnose: DiagnoseConfig = Field(default_factory=DiagnoseConfig)
    tune: TuneConfig = Field(default_factory=TuneConfig)
    compress: CompressConfig = Field(default_factory=CompressConfig)
    deploy: DeployConfig = Field(default_factory=DeployConfig)
    # Where load_config read this config, and the folders a relative data.path was sought in.
    _config_file: Path | None = PrivateAttr(None)
    _data_path_bases: list[Path] = PrivateAttr(default_factory=list)
    _data_path_written: str | None = PrivateAttr(None)

    @model_validator(mode="after")
    def _tune_metric_follows_train_monitor(self) -> ExperimentConfig:
        """``tune.metric`` left unset optimises what training monitors (``train.monitor``)."""
        if "metric" not in self.tune.model_fields_set and self.tune.metric != self.train.monitor:
            tune = self.tune.model_copy(update={"metric": self.train.monitor})
            tune.__pydantic_fields_set__.discard("metric")
            object.__setattr__(self, "tune", tune)
        return self

    def __eq__(self, other: object) -> bool:
        # Where a config was read from is not part of it: compare the fields only.
        if not isinstance(other, BaseModel):
            return NotImplemented
        return type(self) is type(other) and self.__dict__ == other.__dict__

    __hash__ = None  # type: ignore[assignment]  (mutable, as pydantic's own models)

    @property
    def config_file(self) -> Path | None:
        """The YAML file this config was loaded from (``None`` for a dict)."""
        return self._config_file

    @property
    def run_dir(self) -> Path:
        return Path(self.run_root) / self.name

    def to_dict(self) -> dict[str, Any]:
        """The resolved config as plain YAML-able data."""
        return self.model_dump(mode="json")

    def to_yaml(self) -> str:
        """The resolved config as YAML that :func:`load_config` reads back unchanged."""
        return dump_yaml(self.to_dict())

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
    data = _plain(data)
    try:
        return ExperimentConfig.model_validate(data)
    except ValidationError as exc:
        raise _one_line(exc, data) from None


def _plain(value: Any) -> Any:
    """NumPy scalars (``np.int64(4)`` from a Python grid) as the Python numbers they are, and
    tuples as lists.

    Types are strict, but an integer is an integer whatever library made it; a NumPy boolean
    stays a boolean (and is refused where a number belongs, as ``True`` is).
    """
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):  # a tuple from Python is a list in YAML
        return [_plain(v) for v in value]
    if type(value).__module__ == "numpy" and getattr(value, "shape", None) == ():
        return value.item()  # a NumPy scalar (or 0-d array)
    return value


def load_config(path: str | Path) -> ExperimentConfig:
    """Read a YAML experiment file; every failure is one :class:`ConfigError` line.

    The file must be UTF-8 and hold at least one setting; a key written twice is an error. A
    relative ``data.path`` is resolved against the config file's folder; when nothing is there
    but the path exists from the current directory, that one is used (:func:`resolve_data_path`).
    """
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"config error: {str(path)!r} is a directory, not a config file")
    if not path.is_file():
        raise ConfigError(f"config error: no such file {str(path)!r}")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"config error: cannot read {str(path)!r}: {exc.strerror or exc}"
        ) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"config error: {path}:{line}: the file is not UTF-8 text (byte "
            f"0x{raw[exc.start]:02x} at offset {exc.start}); save it as UTF-8"
        ) from None
    try:
        data = load_yaml(text)
    except DuplicateKeyError as exc:
        raise ConfigError(
            f"config error: {path}:{exc.second_line}: key {str(exc.key)!r} appears twice in "
            f"one mapping (lines {exc.first_line} and {exc.second_line}); keep one",
            field=str(exc.key),
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"config error: {where}: YAML syntax error: {problem}") from None
    if data is None:
        raise ConfigError(
            f"config error: config file {str(path)!r} is empty; write at least one setting "
            "(e.g. name: my-experiment), or {} for all defaults"
        )
    bases: list[Path] = []
    written = None
    if isinstance(data, dict):
        data, bases, written = _resolve_paths(data, path)
    cfg = parse_config(data)
    cfg._config_file = path
    cfg._data_path_bases = bases
    cfg._data_path_written = written
    return cfg


def resolve_data_path(written: str, config_file: Path) -> tuple[str, list[Path]]:
    """Where a ``data.path`` written in ``config_file`` points, and the folders it was sought in.

    Absolute paths (and ``~``) are taken as they are. A relative path is resolved against the
    config file's folder, as users expect; if nothing is there but the path exists from the
    current directory (how tunelab read it before), the current directory wins. When it exists
    in neither, the config-relative path is returned, so the error names that folder.
    """
    given = Path(written).expanduser()
    if given.is_absolute():
        return str(given), []
    here = Path(os.path.abspath(config_file)).parent
    cwd = Path.cwd()
    beside = here / given
    if beside.exists() or not given.exists():
        bases = [here] if here == cwd else [here, cwd]
        return str(beside), bases
    return str(Path(os.path.abspath(given))), [here, cwd]


def _resolve_paths(
    data: dict[str, Any], config_file: Path
) -> tuple[dict[str, Any], list[Path], str | None]:
    section = data.get("data")
    if not isinstance(section, dict) or not isinstance(section.get("path"), str):
        return data, [], None
    written = section["path"]
    if not written.strip():
        return data, [], None
    resolved, bases = resolve_data_path(written, config_file)
    return {**data, "data": {**section, "path": resolved}}, bases, written


def check_data_path(cfg: ExperimentConfig) -> None:
    """Raise a one-line :class:`ConfigError` when ``data.path`` names nothing on disk."""
    if cfg.data.source in ("sklearn", "synthetic") or not cfg.data.path:
        return
    if Path(cfg.data.path).exists():
        return
    bases = getattr(cfg, "_data_path_bases", None) or []
    shown = cfg.data.path
    if bases:
        shown = getattr(cfg, "_data_path_written", None) or shown
        if len(bases) == 1:
            where = f"; looked in {bases[0]} (the config file's folder and the current directory)"
        else:
            where = (
                f"; looked in {bases[0]} (the config file's folder) and {bases[1]} "
                "(the current directory)"
            )
    elif not Path(cfg.data.path).is_absolute():
        where = f"; looked in {Path.cwd()} (the current directory)"
    else:
        where = ""
    raise ConfigError(
        f"config error: data.path = {shown!r} — no such file or directory{where}",
        field="data.path",
    )


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
    kind = error["type"]
    bad = error.get("input")
    if kind == "space_at":  # an error below a free-form dict (model.params.<name>)
        loc = (*loc, *error["ctx"]["path"])
        bad = _value_at(data, loc)
        kind = "space"
        error = {**error, "msg": error["ctx"]["message"]}
    field = _dotted(loc)
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
    message = _TYPE_MESSAGES[kind](bad) if kind in _TYPE_MESSAGES else error["msg"]
    message = re.sub(r"^(Value error|Assertion failed), ", "", message)
    message = re.sub(r"^Input should be ", "must be ", message)
    named = re.match(r"unknown \w+ '([^']*)'; expected one of (.*)$", message)
    if named:
        message += _suggest(named.group(1), named.group(2).split(", "))
    shown = bad if bad is not None else _value_at(data, loc)
    if isinstance(shown, dict) and kind not in ("space",):
        return ConfigError(f"config error: {field} — {message}", field=field)
    return ConfigError(f"config error: {field} = {shown!r} — {message}", field=field)


def _got(value: Any, number: bool = True) -> str:
    """``, got ...`` for a value of the wrong type, with a hint where one helps."""
    if isinstance(value, bool):
        return f", got the boolean {str(value).lower()}"
    if isinstance(value, str):
        hint = ""
        if number:
            try:
                float(value)
                hint = " (write it without quotes)"
            except ValueError:
                pass
        return f", got the string {value!r}{hint}"
    if value is None:
        return ", got null"
    if isinstance(value, (int, float)):
        return f", got {value!r}"
    return f", got a {type(value).__name__} {value!r}"


_TYPE_MESSAGES: dict[str, Any] = {
    "int_type": lambda v: "expected an integer" + _got(v),
    "int_parsing": lambda v: "expected an integer" + _got(v),
    "int_from_float": lambda v: f"expected an integer, got {v!r} (it has a fractional part)",
    "float_type": lambda v: "expected a number" + _got(v),
    "float_parsing": lambda v: "expected a number" + _got(v),
    "finite_number": lambda v: f"expected a finite number, got {v!r}",
    "bool_type": lambda v: "expected true or false" + _got(v, number=False),
    "bool_parsing": lambda v: "expected true or false" + _got(v, number=False),
    "string_type": lambda v: (
        "expected a string"
        + (
            f", got {type(v).__name__} {v!r} (quote it to mean text)"
            if not isinstance(v, str)
            else ""
        )
    ),
    "list_type": lambda v: "expected a list" + _got(v, number=False),
    "tuple_type": lambda v: "expected a list" + _got(v, number=False),
    "dict_type": lambda v: "expected a dictionary (key: value)" + _got(v, number=False),
}


def _is_internal_loc(part: Any) -> bool:
    """Pydantic adds union/type tags to locations (``function-wrap[...]``, ``int``)."""
    text = str(part)
    return (
        "[" in text
        or text in {"int", "float", "str", "bool", "list", "dict"}
        or (text.startswith("literal"))
    )
