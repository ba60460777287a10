"""Per-layer gradient norms for the report, read from a training's TensorBoard event files.

tunelab's trainer writes them only there (``train/_loggers.py``: a histogram of sampled norms per
layer per epoch, tagged ``grad_norm/<layer>``); ``metrics.jsonl`` holds no gradient norms.
"""

from __future__ import annotations

import math
import re
from pathlib import Path


def grad_norms_from_tensorboard(logdir: Path) -> tuple[dict[str, list[tuple[float, float]]], str]:
    """Per-layer gradient norms per epoch (or step) from TensorBoard event files.

    Three shapes are understood, best first: histograms *of norms* tagged ``grad_norm/<layer>``
    (what tunelab's trainer writes: a few sampled norms per epoch; their mean is taken), scalars
    tagged ``.../grad_norm/<layer>``, and histograms of raw gradient *values* tagged
    ``grad/<layer>`` or ``gradients/<layer>``, whose norm is ``sqrt(sum_squares)`` exactly.
    Returns the series and what their x axis is (the event step: an epoch for tunelab's trainer).
    """
    files = list(logdir.rglob("events.out.tfevents.*")) if logdir.is_dir() else []
    if not files:
        return {}, ""
    from tensorboard.backend.event_processing import event_accumulator as ea

    of_norms: dict[str, list[tuple[float, float]]] = {}
    scalars: dict[str, list[tuple[float, float]]] = {}
    of_values: dict[str, list[tuple[float, float]]] = {}
    for events_dir in sorted({p.parent for p in files}):
        acc = ea.EventAccumulator(str(events_dir), size_guidance={ea.SCALARS: 0, ea.HISTOGRAMS: 0})
        try:
            acc.Reload()
        except Exception:  # a torn event file must not sink the whole report
            continue
        tags = acc.Tags()
        for tag in tags.get("histograms", []):
            layer = _norm_layer(tag)
            if layer is not None:
                for e in acc.Histograms(tag):
                    h = e.histogram_value
                    if h.num > 0:
                        of_norms.setdefault(layer, []).append((float(e.step), h.sum / h.num))
                continue
            match = _VALUES_TAG.search(tag)
            if match:
                of_values.setdefault(match.group(1), []).extend(
                    (float(e.step), math.sqrt(max(e.histogram_value.sum_squares, 0.0)))
                    for e in acc.Histograms(tag)
                )
        for tag in tags.get("scalars", []):
            layer = _norm_layer(tag)
            if layer is not None:
                scalars.setdefault(layer, []).extend(
                    (float(e.step), float(e.value)) for e in acc.Scalars(tag)
                )
    series = of_norms or scalars or of_values
    x_label = "epoch" if series is of_norms else "step"
    return {k: sorted(v) for k, v in series.items() if v}, x_label


_NORM_TAG = re.compile(r"grad(?:ient)?[_-]?norms?/(.+)$", re.IGNORECASE)
_VALUES_TAG = re.compile(r"(?:^|/)grad(?:ient)?s?/(.+)$", re.IGNORECASE)


def _norm_layer(tag: str) -> str | None:
    match = _NORM_TAG.search(tag)
    return match.group(1) if match else None
