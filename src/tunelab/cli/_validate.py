"""``tunelab validate CONFIG``: every check that needs no training, then the resolved config.

Checked here, beyond the config's own validation (types, ranges, search spaces): the model
builder's params (every choice and both ends of every range too), the monitored metrics exist
for the task, the data path exists, and the label and feature columns are in the file (only its
header is read). Any failure is one line on stderr and exit code 2; success prints the resolved
config (only the sections that apply, unless ``--all``) and ends with one ``OK`` line.
"""

from __future__ import annotations

import csv
import difflib
from pathlib import Path
from typing import Any

import typer

from ..config import (
    ConfigError,
    ExperimentConfig,
    Range,
    check_data_path,
    dump_yaml,
    is_space,
    load_config,
)
from ._app import app

_IMAGE_SOURCES = ("image_folder", "cifar")
_TABLE_FILES = ("csv", "parquet")


@app.command()
def validate(
    config: Path = typer.Argument(..., help="Experiment YAML file."),
    show_all: bool = typer.Option(
        False, "--all", help="Show every field, also those that do not apply to this config."
    ),
) -> None:
    """Check an experiment config without training and print it with every default filled in."""
    cfg = load_config(config)
    if not cfg.model.checkpoint:  # a checkpoint brings its own builder and params
        check_model_params(cfg)
    task = config_task(cfg)
    check_metrics(cfg, task)
    check_data_path(cfg)
    check_columns(cfg)

    shown, hidden = applicable(cfg, show_all=show_all)
    typer.echo(dump_yaml(shown), nl=False)
    if hidden:
        typer.echo(
            f"# not shown, they do not apply here: {', '.join(hidden)} "
            "(tunelab validate --all shows every field)"
        )
    spaces = cfg.search_spaces()
    tuned = f"{len(spaces)} tuned field(s): {', '.join(spaces)}" if spaces else "no tuned fields"
    typer.echo(f"# {tuned}")
    typer.echo(f"OK: {config} is valid ({task or 'task from the data'}; {tuned})")


# ---- model params ----------------------------------------------------------------------------


def _candidates(space: Any) -> list[Any]:
    """The values of a space to check: every choice, or both ends of a range."""
    if isinstance(space, Range):
        return [int(space.low), int(space.high)] if space.integer else [space.low, space.high]
    return space.values()


def check_model_params(cfg: ExperimentConfig) -> None:
    """The builder's own check, on plain params and on every candidate of every search space."""
    from ..models import check_params

    params = dict(cfg.model.params or {})
    builder = cfg.model.builder
    check_params(builder, params, allow_spaces=True)  # names first: "did you mean ..."
    spaces = {k: v for k, v in params.items() if is_space(v)}
    if not spaces:
        return
    base = {k: (_candidates(v)[0] if is_space(v) else v) for k, v in params.items()}
    for key, space in spaces.items():
        which = "range low" if isinstance(space, Range) else "choice"
        for i, value in enumerate(_candidates(space)):
            if isinstance(space, Range) and i == 1:
                which = "range high"
            try:
                check_params(builder, {**base, key: value})
            except ConfigError as exc:
                field = exc.field or f"model.params.{key}"
                message = str(exc)
                if field == f"model.params.{key}":
                    message = message.replace(
                        f"{field} = {value!r} —",
                        f"{field} = {_space_text(space)} — {which} {value!r}",
                        1,
                    )
                raise ConfigError(message, field=field) from None


def _space_text(space: Any) -> str:
    return str(space.model_dump(exclude_defaults=True, exclude={"integer"}))


# ---- metrics ---------------------------------------------------------------------------------


def config_task(cfg: ExperimentConfig) -> str | None:
    """The task this config's data has, when the config alone says (else ``None``)."""
    data = cfg.data
    if data.task != "auto":
        return data.task
    if data.source == "sklearn":
        return "regression" if data.dataset == "diabetes" else "classification"
    if data.source == "synthetic":
        return data.synthetic.task
    if data.source in _IMAGE_SOURCES or data.as_images:
        return "classification"
    return None


def _metric_error(field: str, metric: str, names: list[str], task: str | None) -> ConfigError:
    close = difflib.get_close_matches(metric, names, n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    what = f"a {task} task" if task else "either task"
    return ConfigError(
        f"config error: {field} = {metric!r} — not a metric of {what}; expected one of "
        f"{', '.join(names)}{hint}",
        field=field,
    )


def check_metrics(cfg: ExperimentConfig, task: str | None) -> None:
    """``train.monitor``, the early-stopping monitor and the tune objectives are real metrics."""
    from ..train import metric_names
    from ..tune._measure import COST_METRICS

    tasks = [task] if task else ["classification", "regression"]
    names: list[str] = []
    for t in tasks:
        names += [n for n in metric_names(t, has_val=True) if n not in names]
    epoch_metrics = [n for n in names if n != "epoch"]
    monitors = [("train.monitor", cfg.train.monitor)]
    if cfg.train.early_stopping.enabled:
        monitors.append(("train.early_stopping.monitor", cfg.train.early_stopping.monitor))
    for field, metric in monitors:
        if metric not in names:
            raise _metric_error(field, metric, epoch_metrics, task)
    objectives = (
        [(f"tune.objectives.{i}.metric", o.metric) for i, o in enumerate(cfg.tune.objectives)]
        if cfg.tune.objectives
        else [("tune.metric", cfg.tune.metric)]
    )
    allowed = [*epoch_metrics, *COST_METRICS]
    for field, metric in objectives:
        if metric not in allowed:
            raise _metric_error(field, metric, allowed, task)


# ---- data columns ----------------------------------------------------------------------------


def _header(path: Path, source: str) -> list[str] | None:
    """The column names of a CSV (its first line) or a Parquet file (its schema), else None."""
    try:
        if source == "csv":
            with path.open("rb") as handle:
                first = handle.readline(1_000_000)
            try:
                line = first.decode("utf-8-sig")
            except UnicodeDecodeError:
                line = first.decode("latin-1")
            row = next(csv.reader([line.rstrip("\r\n")]), [])
            return [c.strip() for c in row] or None
        import pyarrow.parquet as pq

        return list(pq.read_schema(path).names)
    except Exception:  # unreadable here: the data stage reports it with its own message
        return None


def _listing(columns: list[str], limit: int = 20) -> str:
    shown = ", ".join(columns[:limit])
    return shown + (f", ... ({len(columns)} columns)" if len(columns) > limit else "")


def check_columns(cfg: ExperimentConfig) -> None:
    """``data.label`` and ``data.features`` name columns of the file (only its header is read)."""
    from ..data._sources import LABEL_GUESSES

    data = cfg.data
    if data.source not in _TABLE_FILES or not data.path:
        return
    if Path(data.path).is_dir():
        raise ConfigError(
            f"config error: data.path = {data.path!r} — is a directory; data.source "
            f"{data.source!r} needs a file",
            field="data.path",
        )
    if not Path(data.path).is_file():
        return
    columns = _header(Path(data.path), data.source)
    if not columns:
        return
    if data.label is None:
        if not any(c in columns for c in LABEL_GUESSES):
            raise ConfigError(
                f"config error: data.label — not set, and {data.path} has no column named "
                f"{', '.join(LABEL_GUESSES)}; set data.label to one of: {_listing(columns)}",
                field="data.label",
            )
    elif data.label not in columns:
        raise _column_error("data.label", data.label, columns, data.path)
    for i, feature in enumerate(data.features or []):
        if feature not in columns:
            raise _column_error(f"data.features.{i}", feature, columns, data.path)


def _column_error(field: str, name: str, columns: list[str], path: str) -> ConfigError:
    close = difflib.get_close_matches(name, columns, n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return ConfigError(
        f"config error: {field} = {name!r} — no such column in {path}{hint}; "
        f"columns: {_listing(columns)}",
        field=field,
    )


# ---- what to show ----------------------------------------------------------------------------


def applicable(cfg: ExperimentConfig, *, show_all: bool) -> tuple[dict[str, Any], list[str]]:
    """The resolved config without the blocks that do not apply, and the dotted names left out.

    A block the user wrote is always shown.
    """
    shown = cfg.to_dict()
    if show_all:
        return shown, []
    data = cfg.data
    is_image = data.source in _IMAGE_SOURCES or data.as_images
    rules: list[tuple[str, bool, Any]] = [
        ("data.synthetic", data.source != "synthetic", data),
        ("data.dataset", data.source != "sklearn", data),
        ("data.augment", not is_image, data),
        ("data.image_size", not is_image, data),
        ("data.grayscale", data.source not in _IMAGE_SOURCES, data),
        ("tune", not cfg.has_search_space(), cfg),
        ("model.freeze_backbone", not cfg.model.checkpoint, cfg.model),
        ("model.unfreeze_after", not cfg.model.checkpoint, cfg.model),
        ("model.backbone_lr_mult", not cfg.model.checkpoint, cfg.model),
    ]
    hidden: list[str] = []
    for dotted, not_applicable, owner in rules:
        name = dotted.rsplit(".", 1)[-1]
        if not_applicable and name not in owner.model_fields_set:
            node = shown
            *parents, last = dotted.split(".")
            for part in parents:
                node = node[part]
            node.pop(last, None)
            hidden.append(dotted)
    return shown, hidden
