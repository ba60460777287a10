"""The train stage: a fast, plain training loop with callbacks, metrics and checkpoints.

``Trainer.fit`` trains any ``nn.Module`` on a :class:`~tunelab.data.DataBundle`;
``run_training`` does what ``tunelab train`` does (data, model, fit, test, training directory).
See ``docs/train.md``.

The light pieces (``Callback``, ``FitResult``, ``SickTrialPolicy``, ``GradientNormSampler``)
load with the package; the rest on first use, so the doctor in a plain loop, which asks the
sick-trial policy and the sampler, does not pull in the Trainer and its sklearn metrics.

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
    from ._lr_finder import LRFinderResult, find_lr, write_lr
    from ._metrics import Evaluation, class_probabilities, metric_names, predicted_classes
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
    "LRSchedule": "._schedules",
    "Trainer": "._trainer",
    "TrainingRun": "._run",
    "class_probabilities": "._metrics",
    "find_lr": "._lr_finder",
    "infer_mode": "._early_stopping",
    "metric_names": "._metrics",
    "predicted_classes": "._metrics",
    "run_distributed": "._distributed",
    "run_training": "._run",
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
    "SickTrialPolicy",
    "Sickness",
    "Trainer",
    "TrainingRun",
    "class_probabilities",
    "find_lr",
    "infer_mode",
    "metric_names",
    "predicted_classes",
    "run_distributed",
    "run_training",
    "write_lr",
]
