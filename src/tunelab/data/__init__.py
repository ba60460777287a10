"""The data stage: load, clean, scale, split and augment; hands a :class:`DataBundle` on.

>>> from tunelab.config import DataConfig
>>> from tunelab.data import prepare_data
>>> bundle = prepare_data(DataConfig(source="sklearn", dataset="wine"), seed=0)
>>> bundle.X_train.shape[1], bundle.num_classes
(13, 3)
"""

from ._augment import Augmenter, ImageAugmenter
from ._bundle import DataBundle, Provenance
from ._image_pre import ImagePreprocessing
from ._image_preparer import ImagePreparer
from ._prepare import kfold_splits, prepare_data
from ._preparer import Preparer, register_preparer, registered_preparers
from ._preprocessing import InputField, Preprocessing
from ._profile import CleaningAction, ColumnProfile, DataProfile
from ._table_pre import TablePreprocessing
from ._table_preparer import TablePreparer

__all__ = [
    "Augmenter",
    "CleaningAction",
    "ColumnProfile",
    "DataBundle",
    "DataProfile",
    "ImageAugmenter",
    "ImagePreparer",
    "ImagePreprocessing",
    "InputField",
    "Preparer",
    "Preprocessing",
    "Provenance",
    "TablePreparer",
    "TablePreprocessing",
    "kfold_splits",
    "prepare_data",
    "register_preparer",
    "registered_preparers",
]
