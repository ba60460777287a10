"""The train stage: a fast, plain training loop with callbacks, metrics and checkpoints.

``Trainer.fit`` trains any ``nn.Module`` on a :class:`~tunelab.data.DataBundle`;
``run_training`` does what ``tunelab train`` does (data, model, fit, test, training directory).
See ``docs/train.md``.

The light pieces (``Callback``, ``FitResult``, ``SickTrialPolicy``, ``GradientNormSampler``)
load with the package; the rest (the Trainer; the vectorised ``Population`` engine with
``MemberSettings``, ``group_key``, ``supports``, ``population_from_trials``) on first use, so
the doctor in a plain loop, which asks the sick-trial policy and the sampler, does not pull in
the Trainer and its sklearn metrics.

>>> from tunelab.train import Callback, FitResult, Trainer
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._callbacks import Callback
from ._grad_norms import GradientNormSampler
from ._health import Sickness, SickTrialPolicy
from ._result import STATUSES, FitResult

if TYPE_CHECKING:
    from ._backbone import BackboneFinetuning
    from ._distributed import run_distributed
    from ._early_stopping import EarlyStopping, infer_mode
    from ._loggers import EventFile
    from ._lr_finder import LRFinderResult, LRSweep, find_lr, suggest_lr, write_lr
    from ._metrics import Evaluation, class_probabilities, metric_names, predicted_classes
    from ._population import (
        MemberSettings,
        Population,
        group_key,
        population_from_trials,
        supports,
    )
    from ._run import TrainingRun, run_training
    from ._schedules import LRSchedule
    from ._state import FitState
    from ._trainer import Trainer

_LAZY = {
    "BackboneFinetuning": "._backbone",
    "EarlyStopping": "._early_stopping",
    "Evaluation": "._metrics",
    "EventFile": "._loggers",
    "FitState": "._state",
    "LRFinderResult": "._lr_finder",
    "LRSweep": "._lr_finder",
    "LRSchedule": "._schedules",
    "MemberSettings": "._population",
    "Population": "._population",
    "Trainer": "._trainer",
    "TrainingRun": "._run",
    "class_probabilities": "._metrics",
    "find_lr": "._lr_finder",
    "group_key": "._population",
    "infer_mode": "._early_stopping",
    "metric_names": "._metrics",
    "population_from_trials": "._population",
    "predicted_classes": "._metrics",
    "run_distributed": "._distributed",
    "run_training": "._run",
    "suggest_lr": "._lr_finder",
    "supports": "._population",
    "write_lr": "._lr_finder",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "STATUSES",
    "BackboneFinetuning",
    "Callback",
    "EarlyStopping",
    "Evaluation",
    "EventFile",
    "FitResult",
    "FitState",
    "GradientNormSampler",
    "LRFinderResult",
    "LRSchedule",
    "LRSweep",
    "MemberSettings",
    "Population",
    "SickTrialPolicy",
    "Sickness",
    "Trainer",
    "TrainingRun",
    "class_probabilities",
    "find_lr",
    "group_key",
    "infer_mode",
    "metric_names",
    "population_from_trials",
    "predicted_classes",
    "run_distributed",
    "run_training",
    "suggest_lr",
    "supports",
    "write_lr",
]
