"""Report sections about the run as a whole: summary, data profile, hyperparameter search."""

from __future__ import annotations

import json
import os
import platform
from datetime import datetime
from typing import Any

from . import _figures as figs
from ._artifacts import RunArtifacts, trial_reason
from ._page import FigureRegistry, ReportSection, cards, esc, fmt, table


def _try_plot(
    section: ReportSection, reg: FigureRegistry, name: str, label: str, build: Any, *args: Any
) -> None:
    """Add a figure, or record in the section why it could not be drawn."""
    try:
        fig = build(*args)
    except Exception as exc:
        section.gap(label, str(exc) or type(exc).__name__)
        return
    section.add(reg.embed(fig, name))
    section.plots.append(name)


def _get(data: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


# ---- run summary ---------------------------------------------------------------------------


def dataset_name(art: RunArtifacts) -> str | None:
    info = art.run_info or {}
    if info.get("dataset"):
        return str(info["dataset"])
    data = _get(art.config, "data") or _get(art.best.config if art.best else None, "data")
    if isinstance(data, dict):
        source = data.get("source")
        if source == "sklearn":
            return f"{data.get('dataset')} (sklearn bundled)"
        if source == "synthetic":
            return "synthetic (make_classification / make_regression)"
        if source:
            return f"{source}: {data.get('path')}"
    return _get(art.data_profile, "name") or _get(art.data_profile, "dataset")


def task_name(art: RunArtifacts) -> str | None:
    best = art.best
    for candidate in (
        _get(best.result if best else None, "task"),
        _get(best.model_json if best else None, "task"),
        _get(art.export_model_json, "task"),
        _get(art.data_profile, "task"),
        _get(art.config, "data", "task"),
    ):
        if candidate and candidate != "auto":
            return str(candidate)
    return None


def _wall_time(art: RunArtifacts) -> tuple[float | None, str]:
    info = art.run_info or {}
    if isinstance(info.get("wall_time_s"), (int, float)):
        return float(info["wall_time_s"]), "whole run"
    if art.study is not None:
        trials = art.study.get_trials(deepcopy=False)
        starts = [t.datetime_start for t in trials if t.datetime_start]
        ends = [t.datetime_complete for t in trials if t.datetime_complete]
        if starts and ends:
            return (max(ends) - min(starts)).total_seconds(), "search"
    result = art.best.result if art.best else None
    if isinstance(_get(result, "wall_time_s"), (int, float)):
        return float(result["wall_time_s"]), "training"
    return None, ""


def _hardware(art: RunArtifacts) -> tuple[str, bool]:
    """(description, recorded by the run?) — falls back to the machine rendering the report."""
    for source in (art.run_info, art.best.result if art.best else None):
        hw = _get(source, "hardware")
        if isinstance(hw, dict):
            return fmt(hw), True
        if hw:
            return str(hw), True
    cpu = platform.processor() or platform.machine()
    return f"{os.cpu_count()} CPU cores, {cpu}, {platform.system()} (report machine)", False


def best_metric(art: RunArtifacts) -> tuple[str | None, Any]:
    study = art.study
    if study is not None and art.best_trial_number is not None:
        trial = study.trials[art.best_trial_number]
        names = figs.objective_names(study, _tune_metric(art))
        shown = ", ".join(f"{n} {fmt(v)}" for n, v in zip(names, trial.values, strict=False))
        return f"best trial #{trial.number}", shown
    result = art.best.result if art.best else None
    best = _get(result, "best_metrics")
    if isinstance(best, dict):
        monitor = _get(art.config, "train", "monitor") or "val_loss"
        if monitor in best:
            return f"best {monitor}", best[monitor]
        key = next(iter(best), None)
        return (f"best {key}", best[key]) if key else (None, None)
    return None, None


def _tune_metric(art: RunArtifacts) -> str:
    return str(_get(art.config, "tune", "metric") or "objective")


def test_metrics(result: dict[str, Any] | None) -> dict[str, Any]:
    """Metrics measured on the test split, wherever the result file keeps them."""
    if not isinstance(result, dict):
        return {}
    found: dict[str, Any] = {}
    for key in ("test_metrics", "test"):
        if isinstance(result.get(key), dict):
            found.update(
                {k if k.startswith("test_") else f"test_{k}": v for k, v in result[key].items()}
            )
    found.update(
        {k: v for k, v in result.items() if k.startswith("test_") and not isinstance(v, dict)}
    )
    return {
        k: v for k, v in found.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
    }


def summary_section(art: RunArtifacts, reg: FigureRegistry) -> ReportSection:
    sec = ReportSection("summary", "Run summary")
    label, value = best_metric(art)
    elapsed, what = _wall_time(art)
    hardware, recorded = _hardware(art)
    tests = test_metrics(art.best.result if art.best else None)
    headline = next(
        (k for k in ("test_accuracy", "test_r2", "test_f1_macro", "test_mse") if k in tests), None
    )
    items: list[tuple[str, Any]] = [
        ("Data set", dataset_name(art)),
        ("Task", task_name(art)),
        (label or "Best metric", value),
        (headline or "Test metric", tests.get(headline) if headline else None),
        (f"Time ({what})" if what else "Time", f"{elapsed:.1f} s" if elapsed is not None else None),
        ("Hardware", hardware),
    ]
    if art.study is not None:
        items.append(("Trials", len(art.study.get_trials(deepcopy=False))))
    model = art.best.model_json if art.best else None
    if isinstance(model, dict):
        spec = model.get("spec", model)
        items.append(("Model", spec.get("builder")))
        if model.get("parameters") or model.get("n_params"):
            items.append(("Parameters", model.get("parameters") or model.get("n_params")))
    status = _get(art.best.result if art.best else None, "status")
    if status:
        items.append(("Training status", status))
    sec.add(cards(items))
    sec.add(f'<p class="note">Run directory: <code>{esc(art.path.resolve())}</code></p>')
    if not recorded:
        sec.gap("hardware", "not recorded by the run; shown is the machine that made this report")
    if tests:
        sec.add("<h3>Test-split metrics of the best model</h3>")
        sec.add(table(["metric", "value"], [[k, v] for k, v in tests.items()]))
    steps = _get(art.run_info, "steps")
    if isinstance(steps, list) and steps:
        sec.add("<h3>Steps</h3>")
        rows = [
            [s.get("name", ""), s.get("seconds"), s.get("summary", "")]
            for s in steps
            if isinstance(s, dict)
        ]
        sec.add(table(["step", "seconds", "outcome"], rows))
    if value is None and not tests and art.best is None and art.study is None:
        sec.gap("results", "no training or tuning results in this directory yet")
    return sec


# ---- data profile --------------------------------------------------------------------------

_SPLIT_KEYS = ("splits", "rows", "rows_per_split", "split_sizes")
_BALANCE_KEYS = ("class_balance", "class_counts", "classes_per_split")
_CLEAN_KEYS = ("cleaning", "cleaning_actions", "actions", "clean")


def _first(profile: dict[str, Any], keys: tuple[str, ...]) -> tuple[str | None, Any]:
    for key in keys:
        if key in profile and profile[key] not in (None, {}, []):
            return key, profile[key]
    return None, None


def _balance_counts(balance: Any) -> dict[str, dict[str, float]]:
    """``{split: {class: count}}`` from the shapes a profile may use."""
    if isinstance(balance, dict) and balance and all(isinstance(v, dict) for v in balance.values()):
        return {
            str(k): {str(c): float(n) for c, n in v.items() if isinstance(n, (int, float))}
            for k, v in balance.items()
        }
    if isinstance(balance, dict):
        return {
            "all": {str(c): float(n) for c, n in balance.items() if isinstance(n, (int, float))}
        }
    return {}


def data_section(art: RunArtifacts, reg: FigureRegistry) -> ReportSection:
    sec = ReportSection("data", "Data profile")
    profile = art.data_profile
    if not isinstance(profile, dict):
        sec.missing = art.notes.get("data") or (
            "no data_profile.json in the run directory (it is written when a study or the demo "
            "prepares the data; `tunelab data profile CONFIG` prints one)"
        )
        return sec
    used: set[str] = set()
    scalars = [
        (k, v)
        for k, v in profile.items()
        if isinstance(v, (str, int, float, bool)) and v is not None
    ]
    sec.add(cards([(k.replace("_", " "), v) for k, v in scalars[:12]]))
    used.update(k for k, _ in scalars[:12])

    key, splits = _first(profile, _SPLIT_KEYS)
    if key:
        used.add(key)
        sec.add("<h3>Splits</h3>")
        if isinstance(splits, dict):
            rows = [[k, v if not isinstance(v, dict) else fmt(v)] for k, v in splits.items()]
            sec.add(table(["split", "rows"], rows))
        else:
            sec.add(_generic(splits))
    else:
        sec.gap("splits", "the profile does not list rows per split")

    key, cleaning = _first(profile, _CLEAN_KEYS)
    sec.add("<h3>Cleaning actions</h3>")
    if key:
        used.add(key)
        sec.add(_generic(cleaning))
    else:
        sec.add('<p class="note">No cleaning action was recorded (nothing needed cleaning).</p>')

    key, balance = _first(profile, _BALANCE_KEYS)
    if key:
        used.add(key)
        sec.add("<h3>Class balance</h3>")
        _try_plot(
            sec,
            reg,
            "class_balance",
            "class balance plot",
            figs.class_balance,
            _balance_counts(balance),
        )
    elif task_name(art) != "regression":
        sec.gap("class balance", "the profile has no class counts")

    rest = {k: v for k, v in profile.items() if k not in used}
    if rest:
        sec.add("<h3>Other checks</h3>")
        sec.add(_generic(rest))
    return sec


def _generic(value: Any, depth: int = 0) -> str:
    """Any JSON value as readable HTML: dicts as key/value tables, lists of dicts as tables."""
    if isinstance(value, dict):
        if not value:
            return '<p class="note">none</p>'
        rows = [
            [k, _generic(v, depth + 1) if isinstance(v, (dict, list)) else esc(fmt(v))]
            for k, v in value.items()
        ]
        return table(["item", "value"], rows, raw_columns=frozenset({1}))
    if isinstance(value, list):
        if not value:
            return '<p class="note">none</p>'
        if all(isinstance(v, dict) for v in value):
            headers = list(dict.fromkeys(k for v in value for k in v))
            rows = [[_cell(v.get(h)) for h in headers] for v in value]
            return table(headers, rows, raw_columns=frozenset(range(len(headers))))
        if depth > 0:
            return esc(fmt(value))
        return "<ul>" + "".join(f"<li>{esc(fmt(v))}</li>" for v in value) + "</ul>"
    return esc(fmt(value))


def _cell(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return esc(json.dumps(value, default=str)[:300])
    return esc(fmt(value))


# ---- hyperparameter search -----------------------------------------------------------------


def search_section(art: RunArtifacts, reg: FigureRegistry) -> ReportSection:
    import optuna

    sec = ReportSection("search", "Hyperparameter search")
    study = art.study
    if study is None:
        sec.missing = art.notes.get("search") or (
            "no study.db in the run directory: this run was trained once (`tunelab train`), "
            "or tuning has not started"
        )
        return sec
    trials = study.get_trials(deepcopy=False)
    states: dict[str, int] = {}
    for t in trials:
        states[t.state.name] = states.get(t.state.name, 0) + 1
    names = figs.objective_names(study, _tune_metric(art))
    directions = [d.name.lower() for d in study.directions]
    sec.add(
        cards(
            [("Study", study.study_name), ("Trials", len(trials))]
            + [(state.lower(), n) for state, n in sorted(states.items())]
            + [
                (
                    "Objective",
                    ", ".join(f"{n} ({d})" for n, d in zip(names, directions, strict=False)),
                )
            ]
        )
    )
    running = states.get("RUNNING", 0)
    if running:
        sec.add(
            f'<div class="missing-box">The study is still running: {running} trial(s) in '
            "progress. Re-run <code>tunelab report</code> when it ends for the final figures.</div>"
        )
    sec.add(
        f'<p class="note">Storage: <code>sqlite:///{esc(art.study_path)}</code> — open it with '
        f"<code>optuna-dashboard {esc(art.study_path)}</code>.</p>"
    )
    _try_plot(
        sec, reg, "optimization_history", "optimisation history", figs.optimization_history, study
    )
    _try_plot(sec, reg, "intermediate_values", "per-epoch values", figs.intermediate_values, study)
    _try_plot(
        sec, reg, "parallel_coordinates", "parallel coordinates", figs.parallel_coordinates, study
    )
    _try_plot(sec, reg, "param_importances", "parameter importances", figs.param_importances, study)
    if len(study.directions) > 1:
        _try_plot(sec, reg, "pareto_front", "Pareto front", figs.pareto_front, study)
    _try_plot(sec, reg, "timeline", "timeline", figs.timeline, study)

    sec.add("<h3>Trials</h3>")
    params = list(dict.fromkeys(p for t in trials for p in t.params))
    headers = ["#", "state", *names, *params, "epochs", "duration s", "why it ended"]
    rows, classes = [], []
    for t in trials:
        values = list(t.values) if t.values else [None] * len(names)
        duration = t.duration.total_seconds() if t.duration else None
        reason = trial_reason(t, art.trial_dirs.get(t.number))
        if not reason:
            reason = {
                optuna.trial.TrialState.COMPLETE: "completed",
                optuna.trial.TrialState.RUNNING: "running",
                optuna.trial.TrialState.WAITING: "waiting",
            }.get(t.state, "")
        if t.number == art.best_trial_number:
            reason = f"best trial; {reason}"
        state = f'<span class="state-{t.state.name}">{t.state.name.lower()}</span>'
        rows.append(
            [
                t.number,
                state,
                *values,
                *[t.params.get(p) for p in params],
                len(t.intermediate_values),
                duration,
                reason,
            ]
        )
        classes.append("best" if t.number == art.best_trial_number else "")
    sec.add(
        table(
            headers, rows, raw_columns=frozenset({1}), row_classes=classes, table_id="trials-table"
        )
    )
    return sec


def started_at(art: RunArtifacts) -> str:
    info = art.run_info or {}
    if info.get("started"):
        return str(info["started"])
    if art.study is not None:
        starts = [
            t.datetime_start for t in art.study.get_trials(deepcopy=False) if t.datetime_start
        ]
        if starts:
            return min(starts).strftime("%Y-%m-%d %H:%M")
    return datetime.now().strftime("%Y-%m-%d %H:%M")
