"""Plotly figures for the report.

The search plots are Optuna's own (``optuna.visualization``), so they look the way an Optuna
user expects; only what Optuna does not draw (learning curves, confusion matrix, gradient norms,
class balance, the compression trade-off) is drawn here. Every function returns a
``plotly.graph_objects.Figure`` or raises ``ValueError`` saying why it cannot be drawn.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

HEIGHT = 420
_LAYOUT = {"template": "plotly_white", "height": HEIGHT, "margin": {"l": 60, "r": 30, "t": 50}}


def _styled(fig: go.Figure, title: str) -> go.Figure:
    fig.update_layout(**_LAYOUT, title={"text": title, "x": 0.01})
    return fig


# ---- search (Optuna) -----------------------------------------------------------------------


def _target(study: Any, names: list[str]) -> tuple[Callable[[Any], float] | None, str]:
    """Optuna's plots need an explicit target for multi-objective studies: the first one."""
    if len(study.directions) == 1:
        return None, names[0]
    return (lambda t: t.values[0]), names[0]


def _complete(study: Any) -> list[Any]:
    import optuna

    return study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))


def optimization_history(study: Any, names: list[str]) -> go.Figure:
    from optuna.visualization import plot_optimization_history

    if not _complete(study):
        raise ValueError("no trial has completed yet")
    target, name = _target(study, names)
    return _styled(
        plot_optimization_history(study, target=target, target_name=name),
        f"Optimisation history ({name})",
    )


def parallel_coordinates(study: Any, names: list[str]) -> go.Figure:
    from optuna.visualization import plot_parallel_coordinate

    complete = _complete(study)
    if not complete:
        raise ValueError("no trial has completed yet")
    if not any(t.params for t in complete):
        raise ValueError("the completed trials have no parameters")
    target, name = _target(study, names)
    return _styled(
        plot_parallel_coordinate(study, target=target, target_name=name),
        f"Parallel coordinates ({name})",
    )


def param_importances(study: Any, names: list[str]) -> go.Figure:
    from optuna.visualization import plot_param_importances

    complete = _complete(study)
    if len(complete) < 2:
        raise ValueError(f"needs at least 2 completed trials, the study has {len(complete)}")
    varying = {
        name
        for name in {p for t in complete for p in t.params}
        if len({repr(t.params.get(name)) for t in complete}) > 1
    }
    if not varying:
        raise ValueError("no parameter took more than one value among the completed trials")
    target, name = _target(study, names)
    return _styled(
        plot_param_importances(study, target=target, target_name=name),
        f"Hyperparameter importances for {name} (fANOVA)",
    )


def pareto_front(study: Any, names: list[str]) -> go.Figure:
    from optuna.visualization import plot_pareto_front

    if len(study.directions) < 2:
        raise ValueError("single-objective study")
    if not _complete(study):
        raise ValueError("no trial has completed yet")
    return _styled(plot_pareto_front(study, target_names=names), "Pareto front")


def intermediate_values(study: Any, names: list[str]) -> go.Figure:
    from optuna.visualization import plot_intermediate_values

    if not any(t.intermediate_values for t in study.get_trials(deepcopy=False)):
        raise ValueError("no trial reported a per-epoch value")
    name = names[0]
    fig = plot_intermediate_values(study)
    fig.update_xaxes(title_text="epoch")
    fig.update_yaxes(title_text=name)
    return _styled(fig, "Per-epoch value of every trial (pruned trials stop early)")


def timeline(study: Any) -> go.Figure:
    from optuna.visualization import plot_timeline

    if not study.get_trials(deepcopy=False):
        raise ValueError("the study has no trials")
    return _styled(plot_timeline(study), "Trial timeline (workers run trials side by side)")


# ---- best model ----------------------------------------------------------------------------


def _series(rows: Sequence[dict[str, Any]], key: str) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for i, row in enumerate(rows):
        value = row.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            xs.append(float(row.get("epoch", i + 1)))
            ys.append(float(value) if math.isfinite(value) else math.nan)
    return xs, ys


def metric_keys(rows: Sequence[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """(loss keys, quality-metric keys) present in ``metrics.jsonl`` rows, in a stable order."""
    keys: list[str] = []
    for row in rows:
        keys.extend(
            k
            for k, v in row.items()
            if k not in keys and isinstance(v, (int, float)) and not isinstance(v, bool)
        )
    losses = [k for k in keys if k.endswith("loss")]
    skip = {"epoch", "lr", "epoch_time_s", "step", "global_step", "time", "wall_time_s"}
    quality = [
        k
        for k in keys
        if k not in skip
        and not k.endswith("loss")
        and "/" not in k
        and (k.startswith(("train_", "val_")))
    ]
    return losses, quality


def learning_curves(rows: Sequence[dict[str, Any]]) -> go.Figure:
    """Loss and metrics per epoch side by side, with the learning rate when it changes."""
    if not rows:
        raise ValueError("metrics.jsonl has no epochs")
    losses, quality = metric_keys(rows)
    if not losses and not quality:
        raise ValueError("metrics.jsonl has no loss or metric columns")
    _, lrs = _series(rows, "lr")
    show_lr = len({round(v, 12) for v in lrs if math.isfinite(v)}) > 1
    cols = 2 + int(show_lr)
    titles = ["Loss", "Metrics"] + (["Learning rate"] if show_lr else [])
    fig = make_subplots(rows=1, cols=cols, subplot_titles=titles, horizontal_spacing=0.08)
    for key in losses:
        xs, ys = _series(rows, key)
        dash = "dot" if key.startswith("train") else "solid"
        fig.add_trace(
            go.Scatter(x=xs, y=ys, name=key, mode="lines+markers", line={"dash": dash}), 1, 1
        )
    for key in quality:
        xs, ys = _series(rows, key)
        fig.add_trace(go.Scatter(x=xs, y=ys, name=key, mode="lines+markers"), 1, 2)
    if show_lr:
        xs, ys = _series(rows, "lr")
        fig.add_trace(go.Scatter(x=xs, y=ys, name="lr", mode="lines"), 1, 3)
        fig.update_yaxes(type="log", row=1, col=3)
    fig.update_xaxes(title_text="epoch")
    if len(rows) <= 25:
        fig.update_xaxes(dtick=1)  # whole epochs, no "1.5"
    fig = _styled(fig, "Learning curves of the best model")
    fig.update_layout(margin={"t": 90})  # room for the subplot titles under the main title
    return fig


def confusion_matrix(matrix: Sequence[Sequence[float]], labels: Sequence[str]) -> go.Figure:
    """Counts as a heatmap; rows are true classes, columns predicted ones."""
    z = [[float(v) for v in row] for row in matrix]
    if not z or any(len(row) != len(z) for row in z):
        raise ValueError("the confusion matrix is not square")
    names = [str(x) for x in labels] if len(labels) == len(z) else [str(i) for i in range(len(z))]
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=names,
            y=names,
            colorscale="Blues",
            text=[[f"{int(v)}" if v == int(v) else f"{v:.2f}" for v in row] for row in z],
            texttemplate="%{text}",
            hovertemplate="true %{y}<br>predicted %{x}<br>count %{z}<extra></extra>",
        )
    )
    fig.update_xaxes(title_text="predicted", type="category")
    fig.update_yaxes(title_text="true", type="category", autorange="reversed")
    fig = _styled(fig, "Confusion matrix (test split)")
    fig.update_layout(height=max(HEIGHT, 32 * len(z) + 160))
    return fig


def grad_norms(series: dict[str, list[tuple[float, float]]], x_label: str) -> go.Figure:
    """One line per layer on a log axis: vanishing and exploding layers stand out."""
    if not series:
        raise ValueError("no per-layer gradient norms were recorded")
    fig = go.Figure()
    for layer, points in series.items():
        fig.add_trace(
            go.Scatter(
                x=[p[0] for p in points],
                y=[max(p[1], 1e-12) for p in points],
                name=layer,
                mode="lines",
            )
        )
    fig.update_yaxes(type="log", title_text="gradient L2 norm")
    fig.update_xaxes(title_text=x_label)
    return _styled(fig, "Per-layer gradient norms over training")


def round_curves(curves: dict[str, list[dict[str, Any]]], metric: str) -> go.Figure:
    """The doctor's repair rounds side by side: validation metric and train loss per epoch."""
    if not curves:
        raise ValueError("no round has a metrics.jsonl")
    fig = make_subplots(rows=1, cols=2, subplot_titles=[metric, "train_loss"])
    for i, (name, rows) in enumerate(curves.items()):
        color = _PALETTE[i % len(_PALETTE)]
        for col, key in ((1, metric), (2, "train_loss")):
            xs, ys = _series(rows, key)
            fig.add_trace(
                go.Scatter(
                    x=xs,
                    y=ys,
                    name=name,
                    mode="lines+markers",
                    line={"color": color},
                    legendgroup=name,
                    showlegend=col == 1,
                ),
                1,
                col,
            )
    fig.update_xaxes(title_text="epoch", dtick=1)
    fig = _styled(fig, "Before and after --fix: each repair round's training")
    fig.update_layout(margin={"t": 90})
    return fig


def _axis_label(key: str) -> str:
    labels = {
        "b64_p50_ms": "latency p50 at batch 64 (ms)",
        "b1_p50_ms": "latency p50 at batch 1 (ms)",
    }
    return labels.get(key, key)


_PALETTE = ("#d62728", "#ff7f0e", "#2ca02c", "#1f77b4", "#9467bd", "#8c564b")


# ---- data and compression -------------------------------------------------------------------


def class_balance(counts: dict[str, dict[str, float]]) -> go.Figure:
    """Grouped bars: class counts per split."""
    if not counts:
        raise ValueError("no class counts in the data profile")
    fig = go.Figure()
    for split, per_class in counts.items():
        fig.add_trace(
            go.Bar(x=[str(c) for c in per_class], y=list(per_class.values()), name=str(split))
        )
    fig.update_layout(barmode="group")
    fig.update_xaxes(title_text="class", type="category")
    fig.update_yaxes(title_text="rows")
    return _styled(fig, "Class balance per split")


def compression_tradeoff(
    rows: Sequence[dict[str, Any]], name_key: str, x_key: str, y_key: str, size_key: str | None
) -> go.Figure:
    """Each variant as a point: latency (x) against the task metric (y), marker by size."""
    points = [
        r
        for r in rows
        if isinstance(r.get(x_key), (int, float)) and isinstance(r.get(y_key), (int, float))
    ]
    if not points:
        raise ValueError(f"no variant has both {x_key} and {y_key}")
    sizes = [float(r.get(size_key) or 0) for r in points] if size_key else []
    biggest = max(sizes) if sizes and max(sizes) > 0 else 1.0
    marker = {"size": [14 + 26 * s / biggest for s in sizes]} if sizes else {"size": 16}
    fig = go.Figure(
        go.Scatter(
            x=[r[x_key] for r in points],
            y=[r[y_key] for r in points],
            text=[str(r.get(name_key, "")) for r in points],
            mode="markers+text",
            textposition="top center",
            marker=marker,
            hovertemplate="%{text}<br>" + x_key + " %{x}<br>" + y_key + " %{y}<extra></extra>",
        )
    )
    xs = [float(r[x_key]) for r in points]
    # Latencies of torch and ONNX Runtime variants differ by orders of magnitude.
    log_x = min(xs) > 0 and max(xs) / min(xs) > 20
    fig.update_xaxes(title_text=_axis_label(x_key), type="log" if log_x else "linear")
    metric = points[0].get("metric") if y_key == "test_metric" else None
    fig.update_yaxes(title_text=f"test {metric}" if metric else y_key)
    subtitle = f" (marker area ~ {size_key})" if size_key else ""
    return _styled(fig, f"Compression trade-off{subtitle}")
