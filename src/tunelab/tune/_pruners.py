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
- ``hyperband``: several successive-halving brackets with different minimum budgets
  (``HyperbandPruner``), for when it is unclear how early the metric becomes informative.
"""

from __future__ import annotations

import optuna

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
) -> optuna.pruners.BasePruner:
    """Build the Optuna pruner called ``name``.

    Args:
        name: one of ``PRUNER_NAMES``.
        max_epochs: the most epochs (steps) a trial reports; the top rung of ``hyperband``.
        warmup_epochs: epochs every trial runs before it can be pruned (the smallest rung).
        percentile: the cut-off of ``percentile``.
        reduction_factor: ``r`` of ``asha``/``hyperband``.
        startup_trials: trials that finish before ``median``/``percentile`` start pruning.
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
