"""What a finished study hands back: every trial, the best one(s), importances, the top-k.

The storage is the source of truth; a :class:`StudyResult` is a snapshot read from it, written
next to the study as ``tune.json`` so the report stage needs neither Optuna nor the database.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from ._budget import ERROR_ATTR, trial_epochs
from ._space import decode_value

_STATES = {
    TrialState.COMPLETE: "complete",
    TrialState.PRUNED: "pruned",
    TrialState.FAIL: "failed",
    TrialState.RUNNING: "running",
    TrialState.WAITING: "waiting",
}


@dataclass
class TrialSummary:
    """One trial as the table and the report show it."""

    number: int
    state: str
    values: list[float] | None
    params: dict[str, Any]
    epochs: int
    duration_s: float | None
    reason: str | None = None
    error: str | None = None
    retry_of: int | None = None
    user_attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def value(self) -> float | None:
        """The (first) objective value, ``None`` when the trial has none."""
        return self.values[0] if self.values else None

    @classmethod
    def from_frozen(cls, trial: FrozenTrial) -> TrialSummary:
        duration = trial.duration.total_seconds() if trial.duration is not None else None
        values = list(trial.values) if trial.values is not None else None
        if values is None and trial.state == TrialState.PRUNED and trial.intermediate_values:
            values = [trial.intermediate_values[max(trial.intermediate_values)]]
        return cls(
            number=trial.number,
            state=_STATES.get(trial.state, trial.state.name.lower()),
            values=values,
            params={k: decode_value(v) for k, v in trial.params.items()},
            epochs=trial_epochs(trial),
            duration_s=duration,
            reason=trial.user_attrs.get("reason"),
            error=trial.user_attrs.get(ERROR_ATTR),
            retry_of=trial.system_attrs.get("failed_trial"),
            user_attrs=dict(trial.user_attrs),
        )


# Parameter importances (fANOVA over the complete trials) from fewer trials than this are noise:
# the summary withholds them and says how many trials there are (docs/tune.md).
MIN_IMPORTANCE_TRIALS = 10


@dataclass
class StudyResult:
    """The outcome of a study.

    ``best`` is the best complete trial (single objective) or the Pareto-front trial best on the
    first objective (several objectives); ``pareto`` holds the whole front.
    """

    study_name: str
    storage: str
    directions: list[str]
    metrics: list[str]
    sampler: str
    pruner: str
    trials: list[TrialSummary]
    best: TrialSummary | None
    pareto: list[TrialSummary]
    importances: dict[str, float]
    stop_reason: str = ""
    run_dir: Path | None = None
    best_dir: Path | None = None
    ran: int | None = None  # trials this command ran (None: unknown); ``trials`` holds all
    previous: Path | None = None  # where a run this study replaced was kept (versions/<N>)

    @property
    def complete_trials(self) -> int:
        """Complete trials of the whole study: what the parameter importances rest on."""
        return self.count("complete")

    @property
    def importances_shown(self) -> bool:
        """Importances are shown only from :data:`MIN_IMPORTANCE_TRIALS` complete trials on."""
        return bool(self.importances) and self.complete_trials >= MIN_IMPORTANCE_TRIALS

    @property
    def best_params(self) -> dict[str, Any]:
        return dict(self.best.params) if self.best else {}

    @property
    def best_value(self) -> float | None:
        return self.best.value if self.best else None

    def count(self, state: str) -> int:
        return sum(1 for t in self.trials if t.state == state)

    def top(self, k: int = 5) -> list[TrialSummary]:
        """The ``k`` best complete trials on the first objective, best first."""
        done = [t for t in self.trials if t.state == "complete" and t.values]
        sign = -1.0 if self.directions[0] == "maximize" else 1.0
        return sorted(done, key=lambda t: sign * t.values[0])[:k]

    def load_study(self) -> optuna.Study:
        """The Optuna study itself, loaded from its storage (not for ``memory`` studies)."""
        return optuna.load_study(study_name=self.study_name, storage=self.storage)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["run_dir"] = str(self.run_dir) if self.run_dir else None
        data["best_dir"] = str(self.best_dir) if self.best_dir else None
        data["previous"] = str(self.previous) if self.previous else None
        return _json_safe(data)

    def save(self, path: Path | str) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        return path


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def summarize(
    study: optuna.Study,
    *,
    metrics: list[str],
    sampler: str,
    pruner: str,
    stop_reason: str = "",
    run_dir: Path | None = None,
    storage: str = "memory",
) -> StudyResult:
    """Read the study back from its storage into a :class:`StudyResult`."""
    frozen = study.get_trials(deepcopy=False)
    trials = [TrialSummary.from_frozen(t) for t in frozen]
    by_number = {t.number: t for t in trials}
    directions = [d.name.lower() for d in study.directions]
    complete = [t for t in frozen if t.state == TrialState.COMPLETE]
    pareto: list[TrialSummary] = []
    best: TrialSummary | None = None
    if complete:
        front = study.best_trials
        pareto = [by_number[t.number] for t in front]
        sign = -1.0 if directions[0] == "maximize" else 1.0
        best = min(pareto, key=lambda t: sign * t.values[0]) if pareto else None
    return StudyResult(
        study_name=study.study_name,
        storage=storage,
        directions=directions,
        metrics=metrics,
        sampler=sampler,
        pruner=pruner,
        trials=trials,
        best=best,
        pareto=pareto if len(directions) > 1 else ([best] if best else []),
        importances=param_importances(study),
        stop_reason=stop_reason,
        run_dir=run_dir,
    )


def param_importances(study: optuna.Study) -> dict[str, float]:
    """Optuna's parameter importances for the first objective; empty when not computable.

    Needs at least two complete trials whose parameters vary.
    """
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if len(complete) < 2 or not any(t.params for t in complete):
        return {}
    target = (lambda t: t.values[0]) if len(study.directions) > 1 else None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            found = optuna.importance.get_param_importances(study, target=target)
    except (RuntimeError, ValueError, ZeroDivisionError):
        return {}
    return {name: float(v) for name, v in found.items() if math.isfinite(v)}
