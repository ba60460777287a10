"""The training doctor: finds what is wrong with a training run and prescribes the fix.

Works in any hand-written PyTorch loop and inside tunelab's Trainer (``DoctorCallback``):

>>> from tunelab.diagnose import Doctor, Finding
>>> import numpy as np
>>> X = np.random.default_rng(0).normal(size=(200, 3)); y = (X[:, 0] > 0).astype(int)
>>> [f.kind for f in Doctor.check_data(X[:150], y[:150], X[150:], y[150:])]
[]
"""

from ._baseline import Baseline, quick_baseline
from ._data_checks import DataCheck, check_data, data_check_names, register_data_check
from ._detector import Detector, detector_names, register_detector
from ._doctor import Doctor
from ._finding import KINDS, SEVERITIES, DiagnosisReport, Finding
from ._record import TrainingRecord
from ._remedies import Remedy, RemedyContext, register_remedy, remedy_names

# The Trainer callback pulls in the train stage (and its sklearn metrics); load it on first use
# so that the Doctor in a plain loop imports light.
_LAZY = {"DoctorCallback", "doctor_callbacks"}


def __getattr__(name: str):
    if name in _LAZY:
        from . import _callback

        return getattr(_callback, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "KINDS",
    "SEVERITIES",
    "Baseline",
    "DataCheck",
    "Detector",
    "DiagnosisReport",
    "Doctor",
    "DoctorCallback",
    "Finding",
    "Remedy",
    "RemedyContext",
    "TrainingRecord",
    "check_data",
    "data_check_names",
    "detector_names",
    "doctor_callbacks",
    "quick_baseline",
    "register_data_check",
    "register_detector",
    "register_remedy",
    "remedy_names",
]
