"""Optuna pruners by name, sized to the number of epochs a trial can run.

A trial reports its monitored validation metric once per epoch (step = epoch, counted across
folds under cross-validation), so a pruner's resource is an epoch:

- ``none``: no pruning (``NopPruner``);
- ``median``: stop a trial whose best value so far is worse than the median of earlier trials at
  the same epoch (``MedianPruner``);
- ``percentile``: the same against the ``tune.percentile``-th percentile (``PercentilePruner``);
- ``asha``: asynchronous successive halving (``SuccessiveHalvingPruner``): at epochs
  ``warmup * r**k`` only the best ``1/r`` of trials go on, ``r = tune.reduction_factor``
  (default 3; with the first rung at a tenth of the trial, ``bench/default_search.py`` was
  ahead of its peers at more development seeds with 3 than with 4 -- BENCHMARKS.md, "the
  default search at every seed");
  Under ``asha`` a trial behind the rung's cut-off by less than the metric's noise
  (``tune.prune_tolerance`` standard deviations of one look, estimated from the study's own
  finished trials, see :class:`NoiseTolerantHalvingPruner`) goes on: early ranks that differ
  by less than the epoch-to-epoch jitter of the metric are a draw, not evidence;
- ``hyperband``: several successive-halving brackets with different minimum budgets
  (``HyperbandPruner``), for when it is unclear how early the metric becomes informative.
"""

from __future__ import annotations

import itertools
import statistics

import optuna
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from ..config import ConfigError

PRUNER_NAMES = ("none", "median", "percentile", "asha", "hyperband")


def make_pruner(
    name: str,
    *,
    max_epochs: int,
    warmup_epochs: int = 1,
    percentile: float = 25.0,
    reduction_factor: int = 3,
    startup_trials: int = 5,
    prune_tolerance: float = 0.0,
) -> optuna.pruners.BasePruner:
    """Build the Optuna pruner called ``name``.

    Args:
        name: one of ``PRUNER_NAMES``.
        max_epochs: the most epochs (steps) a trial reports; the top rung of ``hyperband``.
        warmup_epochs: epochs every trial runs before it can be pruned (the smallest rung).
        percentile: the cut-off of ``percentile``.
        reduction_factor: ``r`` of ``asha``/``hyperband``.
        startup_trials: trials that finish before ``median``/``percentile`` start pruning.
        prune_tolerance: ``asha`` keeps a trial within this many noise standard deviations
            of the rung's cut-off (0: plain successive halving).
    """
    pruners = optuna.pruners
    min_resource = max(1, warmup_epochs)
    if name == "none":
        return pruners.NopPruner()
    if name == "median":
        return pruners.MedianPruner(n_startup_trials=startup_trials, n_warmup_steps=warmup_epochs)
    if name == "percentile":
        return pruners.PercentilePruner(
            percentile, n_startup_trials=startup_trials, n_warmup_steps=warmup_epochs
        )
    if name == "asha":
        if prune_tolerance > 0:
            return NoiseTolerantHalvingPruner(
                prune_tolerance, min_resource=min_resource, reduction_factor=reduction_factor
            )
        return pruners.SuccessiveHalvingPruner(
            min_resource=min_resource, reduction_factor=reduction_factor
        )
    if name == "hyperband":
        return pruners.HyperbandPruner(
            min_resource=min_resource,
            max_resource=max(max_epochs, min_resource + 1),
            reduction_factor=reduction_factor,
        )
    raise ConfigError(
        f"config error: tune.pruner = {name!r} — expected one of {', '.join(PRUNER_NAMES)}"
    )


def look_noise(trials: list[FrozenTrial]) -> float | None:
    """The standard deviation of one look at the metric, from finished trials' late epochs.

    In the second half of a finished trial the metric moves little from learning, so the
    differences of successive looks are mostly noise: two looks' worth of it. A robust scale
    (the median absolute difference, x 1.4826 for a normal's standard deviation, / sqrt 2 for
    one look) keeps a late jump from one good epoch from inflating it. ``None`` before any
    trial has finished with four or more looks.
    """
    diffs = []
    for t in trials:
        if t.state != TrialState.COMPLETE or len(t.intermediate_values) < 4:
            continue
        values = [t.intermediate_values[k] for k in sorted(t.intermediate_values)]
        late = values[len(values) // 2 :]
        diffs += [abs(b - a) for a, b in itertools.pairwise(late)]
    if not diffs:
        return None
    return 1.4826 * statistics.median(diffs) / 2**0.5


class NoiseTolerantHalvingPruner(optuna.pruners.SuccessiveHalvingPruner):
    """Successive halving that keeps a trial behind the cut-off by less than the metric's noise.

    Optuna's pruner cuts every trial outside the best ``1/r`` at a rung, however close. When
    a metric peaks late and one look's noise is as large as the spread between trials at the
    first rung, that prunes good configurations on a draw. This pruner asks the plain rule
    first; a trial it would cut survives when its value is within ``tolerance`` x
    :func:`look_noise` of the value it had to reach. The survivor's rung is recorded as
    completed, so it competes at the next rung as usual. Before any trial has finished the
    noise is unknown and the rule is plain successive halving.
    """

    def __init__(self, tolerance: float, *, min_resource: int, reduction_factor: int) -> None:
        super().__init__(min_resource=min_resource, reduction_factor=reduction_factor)
        self._tolerance = tolerance

    def prune(self, study: optuna.study.Study, trial: FrozenTrial) -> bool:
        if not super().prune(study, trial):
            return False
        step = trial.last_step
        value = trial.intermediate_values[step]
        trials = study.get_trials(deepcopy=False)
        noise = look_noise(trials)
        if noise is None or value != value:  # NaN: a broken trial is cut
            return True
        # The rung the plain rule just cut at is the last one it recorded for this trial.
        attrs = study._storage.get_trial_system_attrs(trial._trial_id)
        rung_key = max(
            (k for k in attrs if k.startswith("completed_rung_")),
            key=lambda k: int(k.rsplit("_", 1)[1]),
            default=None,
        )
        if rung_key is None:
            return True
        others = [
            t.system_attrs[rung_key]
            for t in trials
            if rung_key in t.system_attrs and t.number != trial.number
        ]
        competing = sorted([*others, value])
        # The value a trial must reach to go on, as ``_is_trial_promotable_to_next_rung``.
        idx = max(0, len(competing) // self._reduction_factor - 1)
        maximize = study.direction == StudyDirection.MAXIMIZE
        cutoff = competing[-(idx + 1)] if maximize else competing[idx]
        margin = self._tolerance * noise
        return value < cutoff - margin if maximize else value > cutoff + margin
