"""Live progress of a study: a rich table on a terminal, one plain line per trial otherwise.

The rich table is redrawn from the storage once a second, so it shows the trials of every
worker process, running ones included (number, params, epochs so far, value, state). Plain
lines come from an Optuna callback in the process that ran the trial, so they work the same in
a log file, under CI and from worker processes.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import Any, TextIO

import optuna
from optuna.trial import FrozenTrial

from ._result import TrialSummary


def _fmt_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _short(name: str) -> str:
    """``model.params.width`` -> ``width``: the table is narrow; the full name is in the YAML."""
    return name.rsplit(".", 1)[-1]


def format_params(params: dict[str, Any]) -> str:
    return " ".join(f"{_short(k)}={_fmt_value(v)}" for k, v in params.items())


def describe(trial: TrialSummary) -> str:
    """One plain line about a finished trial."""
    parts = [f"trial {trial.number:>3} {trial.state:<8}"]
    if trial.values:
        parts.append("value=" + ",".join(f"{v:.5g}" for v in trial.values))
    parts.append(f"epochs={trial.epochs}")
    if trial.duration_s is not None:
        parts.append(f"{trial.duration_s:.1f}s")
    if trial.params:
        parts.append(format_params(trial.params))
    if trial.reason and trial.state == "pruned":
        parts.append(f"({trial.reason})")
    if trial.error:
        parts.append(f"error: {trial.error}")
    return "  ".join(parts)


class PlainProgress:
    """An Optuna callback printing one line per finished trial."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        stream = self.stream or sys.stdout
        print(describe(TrialSummary.from_frozen(trial)), file=stream, flush=True)


class LiveTable:
    """A rich live table of the study's trials, polled from the storage once a second.

    Use as a context manager around the trial loop (or around waiting for worker processes).
    """

    def __init__(self, study: optuna.Study, *, title: str, rows: int = 15) -> None:
        self.study = study
        self.title = title
        self.rows = rows
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._live: Any = None

    def render(self) -> Any:
        from rich.table import Table

        trials = [TrialSummary.from_frozen(t) for t in self.study.get_trials(deepcopy=False)]
        active = [t for t in trials if t.state in ("running", "waiting")]
        finished = [t for t in trials if t.state not in ("running", "waiting")]
        shown = (finished[-(self.rows - len(active)) :] if len(active) < self.rows else []) + active
        counts = {s: sum(t.state == s for t in trials) for s in ("complete", "pruned", "failed")}
        caption = ", ".join(f"{n} {s}" for s, n in counts.items())
        table = Table(title=self.title, caption=caption, expand=False)
        for column in ("#", "state", "epochs", "value", "params", "note"):
            table.add_column(column, overflow="fold")
        styles = {"complete": "green", "pruned": "yellow", "failed": "red", "running": "cyan"}
        for t in shown:
            value = ",".join(f"{v:.4g}" for v in t.values) if t.values else ""
            note = t.error or (t.reason if t.state == "pruned" else "") or ""
            table.add_row(
                str(t.number),
                f"[{styles.get(t.state, '')}]{t.state}[/]",
                str(t.epochs),
                value,
                format_params(t.params),
                note[:60],
            )
        return table

    def _poll(self) -> None:
        while not self._stop.wait(1.0):
            try:
                self._live.update(self.render())
            except Exception:  # a busy database must not kill the display; retry next second
                continue

    def __enter__(self) -> LiveTable:
        from rich.live import Live

        self._live = Live(self.render(), refresh_per_second=2, transient=False)
        self._live.__enter__()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        try:
            self._live.update(self.render())
        finally:
            self._live.__exit__(*exc)


def progress_mode(mode: str, stream: TextIO | None = None) -> str:
    """``auto`` is ``rich`` on a terminal and ``plain`` otherwise."""
    if mode != "auto":
        return mode
    stream = stream or sys.stdout
    return "rich" if hasattr(stream, "isatty") and stream.isatty() else "plain"


def trial_callbacks(mode: str) -> list[Callable[[optuna.Study, FrozenTrial], None]]:
    """The per-trial callbacks of a progress mode (plain lines only; rich polls instead)."""
    return [PlainProgress()] if mode == "plain" else []
