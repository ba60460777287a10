"""The tune stage: hyperparameter search on Optuna, with pruning, CV, workers and resume.

``run_study(config)`` tunes an experiment config (every ``{choice: ...}``/``{low, high}`` field
is a parameter; each trial trains through :mod:`tunelab.train` in ``trials/<number>/``);
``tune_objective(objective)`` runs the same engine over any ``objective(trial)``.

>>> from tunelab.tune import tune_objective
>>> result = tune_objective(lambda trial, p: p["x"] ** 2,
...                         space={"x": {"choice": [-1, 0, 2]}}, sampler="grid", trials=10)
>>> result.best_params, result.count("complete")
({'x': 0}, 3)

Importing the package is cheap: each name loads its module (and torch, Optuna, scikit-learn)
on first use, so ``tunelab tune`` can start its helper processes before paying for them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._budget import Budget
    from ._callbacks import PruningCallback
    from ._config_study import resolve_config, run_study
    from ._engine import build_study, tune_objective
    from ._executor import LocalExecutor, TrialExecutor
    from ._objective import TrainingObjective, default_direction, study_objectives
    from ._options import StudyOptions
    from ._pruners import PRUNER_NAMES, make_pruner
    from ._result import StudyResult, TrialSummary, param_importances
    from ._samplers import SAMPLER_NAMES, SamplerChoice, make_sampler, resolve_sampler_name
    from ._space import grid_values, suggest, to_distributions
    from ._storage import open_storage, reclaim_orphans, storage_url

_EXPORTS = {
    "Budget": "._budget",
    "LocalExecutor": "._executor",
    "StudyOptions": "._options",
    "TrialExecutor": "._executor",
    "build_study": "._engine",
    "PRUNER_NAMES": "._pruners",
    "PruningCallback": "._callbacks",
    "SAMPLER_NAMES": "._samplers",
    "SamplerChoice": "._samplers",
    "StudyResult": "._result",
    "TrainingObjective": "._objective",
    "TrialSummary": "._result",
    "default_direction": "._objective",
    "grid_values": "._space",
    "make_pruner": "._pruners",
    "make_sampler": "._samplers",
    "open_storage": "._storage",
    "param_importances": "._result",
    "reclaim_orphans": "._storage",
    "resolve_config": "._config_study",
    "resolve_sampler_name": "._samplers",
    "run_study": "._config_study",
    "storage_url": "._storage",
    "study_objectives": "._objective",
    "suggest": "._space",
    "to_distributions": "._space",
    "tune_objective": "._engine",
}


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


__all__ = [
    "PRUNER_NAMES",
    "SAMPLER_NAMES",
    "Budget",
    "LocalExecutor",
    "PruningCallback",
    "SamplerChoice",
    "StudyOptions",
    "StudyResult",
    "TrainingObjective",
    "TrialExecutor",
    "TrialSummary",
    "build_study",
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
