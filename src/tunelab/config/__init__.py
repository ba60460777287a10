"""The typed experiment config: one YAML document, validated at the door.

>>> from tunelab.config import parse_config
>>> cfg = parse_config({"train": {"lr": {"low": 1e-4, "high": 1e-1, "log": True}}})
>>> sorted(cfg.search_spaces())
['train.lr']
"""

from ..errors import ConfigError
from ._compress import CompressConfig, DeployConfig
from ._data import AugmentConfig, CleanConfig, DataConfig, SplitConfig, SyntheticConfig
from ._diagnose import DiagnoseConfig
from ._duration import parse_duration
from ._experiment import (
    ExperimentConfig,
    check_data_path,
    load_config,
    parse_config,
    resolve_data_path,
)
from ._model import ModelConfig
from ._registry import allowed_names, register_name
from ._space import Choice, Range, SearchSpace, Tunable, is_space
from ._train import EarlyStoppingConfig, ScheduleConfig, TrainConfig
from ._tune import CVConfig, ObjectiveConfig, TuneConfig
from ._yaml import dump_yaml, load_yaml

__all__ = [
    "AugmentConfig",
    "CVConfig",
    "Choice",
    "CleanConfig",
    "CompressConfig",
    "ConfigError",
    "DataConfig",
    "DeployConfig",
    "DiagnoseConfig",
    "EarlyStoppingConfig",
    "ExperimentConfig",
    "ModelConfig",
    "ObjectiveConfig",
    "Range",
    "ScheduleConfig",
    "SearchSpace",
    "SplitConfig",
    "SyntheticConfig",
    "TrainConfig",
    "Tunable",
    "TuneConfig",
    "allowed_names",
    "check_data_path",
    "dump_yaml",
    "is_space",
    "load_config",
    "load_yaml",
    "parse_config",
    "parse_duration",
    "register_name",
    "resolve_data_path",
]
