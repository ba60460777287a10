"""The tune stage: hyperparameter search on Optuna, with pruning, CV, workers and resume.

``run_study(config)`` tunes an experiment config (every ``{choice: ...}``/``{low, high}`` field
is a parameter; each trial trains through :mod:`tunelab.train` in ``trials/<number>/``);
``tune_objective(objective)`` runs the same engine over any ``objective(trial)``.

>>> from tunelab.tune import tune_objective
>>> result = tune_objective(lambda trial, p: p["x"] ** 2,
...                         space={"x": {"choice": [-1, 0, 2]}}, sampler="grid", trials=10)
>>> result.best_params, result.count("complete")
({'x': 0}, 3)
"""

from ._budget import Budget
from ._callbacks import PruningCallback, SickTrialCallback
from ._config_study import resolve_config, run_study
from ._engine import tune_objective
from ._objective import TrainingObjective, default_direction, study_objectives
from ._pruners import PRUNER_NAMES, make_pruner
from ._result import StudyResult, TrialSummary, param_importances
from ._samplers import SAMPLER_NAMES, SamplerChoice, make_sampler, resolve_sampler_name
from ._space import grid_values, suggest, to_distributions
from ._storage import open_storage, reclaim_orphans, storage_url

__all__ = [
    "PRUNER_NAMES",
    "SAMPLER_NAMES",
    "Budget",
    "PruningCallback",
    "SamplerChoice",
    "SickTrialCallback",
    "StudyResult",
    "TrainingObjective",
    "TrialSummary",
    "default_direction",
    "grid_values",
    "make_pruner",
    "make_sampler",
    "open_storage",
    "param_importances",
    "reclaim_orphans",
    "resolve_config",
    "resolve_sampler_name",
    "run_study",
    "storage_url",
    "study_objectives",
    "suggest",
    "to_distributions",
    "tune_objective",
]
