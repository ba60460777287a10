"""Re-runs of the best configurations with new initial weights, late in a study's budget.

Late in a study a model-based sampler mostly proposes near copies of the best configurations,
while the best configurations themselves were each trained from one initialisation: their
values carry the luck of that draw, on a small validation set as much as the differences
between them. Once ``1 - rerun_fraction`` of the budget is spent (:meth:`Budget.used_fraction`),
:class:`RerunBest` queues, after each trial, the best finished configuration not re-run yet,
with a new seed (SMAC's intensification, simplified): the study's best then rests on a second
look at its top configurations and not only on new ones (docs/tune.md, "Re-runs of the best
configurations").

A queued re-run is an ordinary trial: the sampler's values are fixed to the original's, its
user attributes say ``rerun_of`` (the original trial's number) and ``seed`` (what the
objective trains it with), and the pruner judges it like any other trial.
"""

from __future__ import annotations

import math

import optuna
from optuna.trial import FrozenTrial, TrialState

from ._budget import Budget
from ._options import StudyOptions

RERUN_OF_ATTR = "rerun_of"
SEED_ATTR = "seed"


class RerunBest:
    """Study callback: in the last ``fraction`` of the budget, queue the best config's re-run.

    Args:
        budget: the study's budget (what "late" is measured against).
        fraction: the share of the budget at the end that goes to re-runs (0: none).
        direction: ``maximize`` or ``minimize`` (the study's single objective).
        seed: the study's seed; a re-run queued as trial ``n`` trains with ``seed + n``.
    """

    def __init__(self, budget: Budget, fraction: float, direction: str, seed: int) -> None:
        self.budget = budget
        self.fraction = fraction
        self.sign = -1.0 if direction == "maximize" else 1.0
        self.seed = seed

    def __call__(self, study: optuna.Study, _trial: FrozenTrial) -> None:
        if self.fraction <= 0 or self.budget.used_fraction(study) < 1 - self.fraction:
            return
        if self.budget.exhausted(study) is not None:
            return  # no trial will start: a queued one would be left waiting in the storage
        trials = study.get_trials(deepcopy=False)
        if any(t.state == TrialState.WAITING for t in trials):
            return  # a re-run (or a retry) is queued already: one at a time
        original = next_to_rerun(trials, self.sign)
        if original is None:
            return
        study.enqueue_trial(
            original.params,
            user_attrs={RERUN_OF_ATTR: original.number, SEED_ATTR: self.seed + len(trials)},
        )


def next_to_rerun(trials: list[FrozenTrial], sign: float) -> FrozenTrial | None:
    """The best complete trial (``sign`` -1 maximises) that is not a re-run and has none yet."""
    done = {t.user_attrs.get(RERUN_OF_ATTR) for t in trials}
    candidates = [
        t
        for t in trials
        if t.state == TrialState.COMPLETE
        and RERUN_OF_ATTR not in t.user_attrs
        and t.number not in done
        and t.value is not None
        and math.isfinite(t.value)
    ]
    return min(candidates, key=lambda t: sign * t.value, default=None)


def rerun_callbacks(study: optuna.Study, budget: Budget, options: StudyOptions) -> list[RerunBest]:
    """``[RerunBest]`` when ``options`` ask for re-runs, else ``[]`` (grid search: none; every
    grid point runs once and the budget counts them)."""
    if options.rerun_fraction <= 0 or budget.grid_size is not None or len(study.directions) > 1:
        return []
    direction = "maximize" if study.direction == optuna.study.StudyDirection.MAXIMIZE else "min"
    return [RerunBest(budget, options.rerun_fraction, direction, options.seed or 0)]
