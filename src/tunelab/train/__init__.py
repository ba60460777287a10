"""The train stage: a fast, plain training loop with callbacks, metrics and checkpoints.

``Trainer.fit`` trains any ``nn.Module`` on a :class:`~tunelab.data.DataBundle`;
``run_training`` does what ``tunelab train`` does (data, model, fit, test, training directory).
See ``docs/train.md``.

>>> from tunelab.train import Callback, FitResult, Trainer
"""

from ._backbone import BackboneFinetuning
from ._callbacks import Callback
from ._distributed import run_distributed
from ._early_stopping import EarlyStopping, infer_mode
from ._health import Sickness, SickTrialPolicy
from ._loggers import EventFile
from ._lr_finder import LRFinderResult, find_lr, write_lr
from ._metrics import Evaluation, class_probabilities, metric_names, predicted_classes
from ._result import STATUSES, FitResult
from ._run import TrainingRun, run_training
from ._schedules import LRSchedule
from ._state import FitState
from ._trainer import Trainer

__all__ = [
    "STATUSES",
    "BackboneFinetuning",
    "Callback",
    "EarlyStopping",
    "Evaluation",
    "EventFile",
    "FitResult",
    "FitState",
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
