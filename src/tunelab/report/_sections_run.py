"""Report sections about the run as a whole: the summary and the hyperparameter search."""

from __future__ import annotations

import os
import platform
from datetime import datetime
from typing import Any

from ..tune._result import MIN_IMPORTANCE_TRIALS
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
            return _describe_hardware(hw), True
        if hw:
            return str(hw), True
    cpu = platform.processor() or platform.machine()
    return f"{os.cpu_count()} CPU cores, {cpu}, {platform.system()} (report machine)", False


def _describe_hardware(hw: dict[str, Any]) -> str:
    """``2 CPU cores (x86_64), 23.5 GB RAM, no GPU; torch 2.13.0`` from the demo's record."""
    if "cpu_cores" not in hw:
        return fmt(hw)
    text = f"{hw['cpu_cores']} CPU cores ({hw.get('cpu', '?')})"
    if hw.get("memory_gb"):
        text += f", {hw['memory_gb']} GB RAM"
    text += f", GPU {hw['gpu']}" if hw.get("gpu") else ", no GPU"
    return text + (f"; torch {hw['torch']}" if hw.get("torch") else "")


def best_metric(art: RunArtifacts) -> tuple[str | None, Any]:
    study = art.study
    if study is not None and art.best_trial_number is not None:
        trial = study.trials[art.best_trial_number]
        names = objective_names(art)
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


# ---- hyperparameter search -----------------------------------------------------------------


def objective_names(art: RunArtifacts) -> list[str]:
    """The study's objective names: Optuna's metric names, tune.json's, or the config's."""
    study = art.study
    n = len(study.directions)
    for names in (
        getattr(study, "metric_names", None),
        _get(art.tune_summary, "metrics"),
        [o.get("metric") for o in _get(art.config, "tune", "objectives") or []],
    ):
        if isinstance(names, list) and len(names) == n and all(names):
            return [str(x) for x in names]
    return [_tune_metric(art)] if n == 1 else [f"objective {i}" for i in range(n)]


def search_section(art: RunArtifacts, reg: FigureRegistry) -> ReportSection:
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
    names = objective_names(art)
    directions = [d.name.lower() for d in study.directions]
    summary = art.tune_summary or {}
    objective = ", ".join(f"{n} ({d})" for n, d in zip(names, directions, strict=False))
    sec.add(
        cards(
            [("Study", study.study_name), ("Trials", len(trials))]
            + [(state.lower(), n) for state, n in sorted(states.items())]
            + [
                ("Objective", objective),
                ("Sampler", summary.get("sampler")),
                ("Pruner", summary.get("pruner")),
                ("Stopped because", summary.get("stop_reason")),
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
    plots = [
        ("optimization_history", "optimisation history", figs.optimization_history, names),
        ("intermediate_values", "per-epoch values", figs.intermediate_values, names),
        ("parallel_coordinates", "parallel coordinates", figs.parallel_coordinates, names),
        ("param_importances", "parameter importances", figs.param_importances, names),
        ("pareto_front", "Pareto front", figs.pareto_front, names),
        ("timeline", "timeline", figs.timeline, None),
    ]
    complete = states.get("COMPLETE", 0)
    for key, label, build, extra in plots:
        if key == "pareto_front" and len(study.directions) < 2:
            continue
        args = (study,) if extra is None else (study, extra)
        _try_plot(sec, reg, key, label, build, *args)
        if key == "param_importances" and complete < MIN_IMPORTANCE_TRIALS:
            # The CLI withholds them below this count; a report keeps the figure, with its caveat.
            sec.add(
                f'<p class="note">These importances rest on {complete} complete trial(s); '
                f"below {MIN_IMPORTANCE_TRIALS} they are a rough sketch, not a ranking "
                "(<code>tunelab tune</code> withholds them).</p>"
            )
    sec.add("<h3>Trials</h3>")
    sec.add(_trials_table(art, trials, names))
    return sec


def _param(value: Any) -> Any:
    """A sampled value as the user wrote it (tunelab stores list/dict choices as ``json:...``)."""
    if isinstance(value, str) and value.startswith("json:"):
        return value[len("json:") :]
    return value


def _trials_table(art: RunArtifacts, trials: list[Any], names: list[str]) -> str:
    import optuna

    params = list(dict.fromkeys(p for t in trials for p in t.params))
    cv = any("cv_std" in t.user_attrs for t in trials)
    short = [p.rsplit(".", 1)[-1] for p in params]
    shown = [s if short.count(s) == 1 else p for s, p in zip(short, params, strict=True)]
    headers = ["#", "state", *names, *(["CV std"] if cv else []), *shown]
    headers += ["epochs", "duration s", "why it ended"]
    default = {
        optuna.trial.TrialState.COMPLETE: "completed",
        optuna.trial.TrialState.RUNNING: "running",
        optuna.trial.TrialState.WAITING: "waiting",
    }
    rows, classes = [], []
    for t in trials:
        values = list(t.values) if t.values else [None] * len(names)
        duration = t.duration.total_seconds() if t.duration else None
        reason = trial_reason(t, art.trial_dirs.get(t.number)) or default.get(t.state, "")
        if t.number == art.best_trial_number:
            reason = f"best trial; {reason}"
        epochs = t.user_attrs.get("epochs", len(t.intermediate_values))
        state = f'<span class="state-{t.state.name}">{t.state.name.lower()}</span>'
        rows.append(
            [
                t.number,
                state,
                *values,
                *([t.user_attrs.get("cv_std")] if cv else []),
                *[_param(t.params.get(p)) for p in params],
                epochs,
                duration,
                reason,
            ]
        )
        classes.append("best" if t.number == art.best_trial_number else "")
    return table(
        headers, rows, raw_columns=frozenset({1}), row_classes=classes, table_id="trials-table"
    )


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
