"""Optuna samplers by name, and the rule behind ``sampler: auto``.

We only choose and configure Optuna's samplers; none is reimplemented. ``auto`` (the default)
picks from the space and the budget:

1. several objectives: ``nsga2`` when the budget is at least 100 trials (enough generations for
   a genetic search), otherwise multivariate ``tpe`` (MOTPE learns from few trials);
2. every tuned field finite (choices, stepped ranges) and the whole grid fits in the trial
   budget: ``grid`` -- every combination once, no repeats, nothing left to chance;
3. no pruning, every field numeric and at most 100 trials: ``gp`` (Gaussian-process Bayesian
   optimisation is the most sample-efficient there, but learns only from finished trials, so it
   is not chosen when a pruner stops trials early);
4. otherwise multivariate ``tpe`` -- it learns from pruned trials too and handles choices.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import optuna

from ..config import Choice, ConfigError, SearchSpace
from ._space import grid_size, grid_values

SAMPLER_NAMES = ("auto", "grid", "random", "tpe", "gp", "cmaes", "qmc", "nsga2")


@dataclass(frozen=True)
class SamplerChoice:
    """The sampler a study runs with, its name, and why ``auto`` chose it."""

    name: str
    sampler: optuna.samplers.BaseSampler
    why: str


def resolve_sampler_name(
    name: str,
    spaces: Mapping[str, SearchSpace],
    *,
    n_objectives: int,
    trials: int,
    pruner: str,
) -> tuple[str, str]:
    """``(concrete sampler name, reason)``; ``auto`` follows the rule in this module's doc."""
    if name not in SAMPLER_NAMES:
        raise ConfigError(
            f"config error: tune.sampler = {name!r} — expected one of {', '.join(SAMPLER_NAMES)}"
        )
    if name != "auto":
        return name, "chosen in the config"
    if n_objectives > 1:
        if trials >= 100:
            return "nsga2", f"auto: {n_objectives} objectives and a budget of {trials} trials"
        return "tpe", f"auto: {n_objectives} objectives, budget below 100 trials"
    size = grid_size(spaces)
    if size is not None and 0 < size <= trials and spaces:
        return "grid", f"auto: finite space of {size} combinations fits the {trials}-trial budget"
    numeric = all(not isinstance(s, Choice) for s in spaces.values())
    if pruner == "none" and numeric and spaces and trials <= 100:
        return "gp", f"auto: numeric space, no pruning, budget of {trials} trials"
    return "tpe", "auto: " + (
        "space has choices" if not numeric else "pruning on" if pruner != "none" else "large budget"
    )


def default_startup_trials(
    trials: int, spaces: Mapping[str, SearchSpace] | None = None, *, per_choice: int = 2
) -> int:
    """Random trials before a model-based sampler takes over.

    A fifth of the trial budget, 3 to 10; for a space with choices, raised (within that fifth)
    to ``per_choice`` trials for each value of the field with the most choices. Why: TPE models
    a choice from the trials that had it; with ten random trials a five-way choice is seen
    about twice per value, and under successive halving (``per_choice`` 4: one trial in ``r``
    clears the first rung) a value whose two trials were pruned early looks bad to the model
    and is rarely tried again. ``bench/default_search.py`` showed it:
    multivariate TPE spent most of a study on one optimiser, one depth or one batch size.
    """
    base = min(10, max(3, trials // 5))
    most = max((len(s.choice) for s in (spaces or {}).values() if isinstance(s, Choice)), default=0)
    return max(base, min(trials // 5, per_choice * most))


def make_sampler(
    name: str,
    spaces: Mapping[str, SearchSpace],
    *,
    n_objectives: int = 1,
    trials: int = 20,
    pruner: str = "none",
    seed: int | None = 0,
    startup_trials: int | None = None,
) -> SamplerChoice:
    """Build the Optuna sampler called ``name`` for this space and budget.

    Args:
        name: one of ``SAMPLER_NAMES``.
        spaces: the tuned fields (dotted path -> space); grid search needs them all finite.
        n_objectives: objectives of the study (``nsga2``/``tpe``/``gp``/``random``/``qmc``
            handle several; ``cmaes`` only one).
        trials: the trial budget (scales the random start-up phase).
        pruner: the pruner name (``auto`` avoids ``gp`` when trials are pruned).
        seed: sampler seed; parallel workers pass different seeds except for ``grid``.
        startup_trials: random trials before the model kicks in; default from the budget and
            the space (:func:`default_startup_trials`, ``per_choice`` 4 under
            ``asha``/``hyperband``, 2 otherwise; config studies pass theirs).
    """
    concrete, why = resolve_sampler_name(
        name, spaces, n_objectives=n_objectives, trials=trials, pruner=pruner
    )
    if startup_trials is None:
        halving = pruner in ("asha", "hyperband")
        startup = default_startup_trials(trials, spaces, per_choice=4 if halving else 2)
    else:
        startup = startup_trials
    if concrete == "cmaes" and n_objectives > 1:
        raise ConfigError("config error: tune.sampler = 'cmaes' — it optimises one objective")
    samplers = optuna.samplers
    if concrete == "grid":
        sampler: optuna.samplers.BaseSampler = samplers.GridSampler(grid_values(spaces), seed=seed)
    elif concrete == "random":
        sampler = samplers.RandomSampler(seed=seed)
    elif concrete == "tpe":
        sampler = samplers.TPESampler(
            seed=seed, multivariate=True, n_startup_trials=startup, constant_liar=True
        )
    elif concrete == "gp":
        sampler = samplers.GPSampler(seed=seed, n_startup_trials=startup)
    elif concrete == "cmaes":
        sampler = samplers.CmaEsSampler(
            seed=seed, n_startup_trials=startup, warn_independent_sampling=False
        )
    elif concrete == "qmc":
        with warnings.catch_warnings():  # "experimental" since Optuna 3.0
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            sampler = samplers.QMCSampler(qmc_type="sobol", scramble=True, seed=seed)
    else:
        # Optuna's default population of 50 would leave a small budget in generation zero.
        population = max(4, min(50, trials // 4))
        sampler = samplers.NSGAIISampler(seed=seed, population_size=population)
    return SamplerChoice(concrete, sampler, why)
