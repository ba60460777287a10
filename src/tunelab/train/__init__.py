"""The train stage: a fast, plain training loop with callbacks, metrics and checkpoints.

>>> from tunelab.train import Callback, Trainer, FitResult
"""

from ._callbacks import Callback
from ._early_stopping import EarlyStopping, infer_mode
from ._metrics import Evaluation, class_probabilities, predicted_classes
from ._result import STATUSES, FitResult
from ._run import TrainingRun, run_training
from ._schedules import LRSchedule
from ._trainer import Trainer

__all__ = [
    "STATUSES",
    "Callback",
    "EarlyStopping",
    "Evaluation",
    "FitResult",
    "LRSchedule",
    "Trainer",
    "TrainingRun",
    "class_probabilities",
    "infer_mode",
    "predicted_classes",
    "run_training",
]
