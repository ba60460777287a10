"""The models stage: builders by name, weight init, save/load, transfer learning.

>>> from tunelab.models import build_model, count_parameters
>>> net = build_model("cnn", {"channels": [8, 16]}, input_shape=(1, 8, 8), output_size=10)
>>> net.head.out_features
10
"""

from . import _cnn, _custom, _mlp, _recurrent, _resnet, _transformer  # noqa: F401  (register)
from ._base import HeadedModel
from ._cnn import CNN
from ._custom import resolve_factory
from ._init import INIT_SCHEMES, count_parameters, init_weights
from ._io import LoadedModel, load_model, load_weights, read_metadata, save_model, unwrap_model
from ._mlp import MLP
from ._recurrent import RecurrentNet
from ._registry import (
    build_model,
    builder_names,
    builder_parameters,
    check_params,
    get_builder,
    register_builder,
)
from ._resnet import BasicBlock, ResNet
from ._spec import ModelSpec
from ._transfer import (
    TransferSettings,
    apply_unfreeze_schedule,
    backbone_parameters,
    build_from_checkpoint,
    build_from_config,
    freeze_backbone,
    head_module,
    head_parameters,
    is_frozen,
    param_groups,
    replace_head,
    transfer_settings,
    unfreeze,
)
from ._transformer import FeatureTokenizer, TransformerNet

__all__ = [
    "CNN",
    "INIT_SCHEMES",
    "MLP",
    "BasicBlock",
    "FeatureTokenizer",
    "HeadedModel",
    "LoadedModel",
    "ModelSpec",
    "RecurrentNet",
    "ResNet",
    "TransferSettings",
    "TransformerNet",
    "apply_unfreeze_schedule",
    "backbone_parameters",
    "build_from_checkpoint",
    "build_from_config",
    "build_model",
    "builder_names",
    "builder_parameters",
    "check_params",
    "count_parameters",
    "freeze_backbone",
    "get_builder",
    "head_module",
    "head_parameters",
    "init_weights",
    "is_frozen",
    "load_model",
    "load_weights",
    "param_groups",
    "read_metadata",
    "register_builder",
    "replace_head",
    "resolve_factory",
    "save_model",
    "transfer_settings",
    "unfreeze",
    "unwrap_model",
]
