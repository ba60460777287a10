"""Transfer learning: start from a saved model, replace its head, freeze and thaw the backbone.

The split between backbone and head is by name: the module's ``head`` attribute is the head,
every other parameter is backbone. ``build_from_config`` attaches a :class:`TransferSettings`
to the model it returns, which the trainer reads to build parameter groups (the backbone may get
``backbone_lr_mult * lr``) and to unfreeze the backbone after ``unfreeze_after`` epochs.

Frozen parameters stay in the optimiser (with ``requires_grad=False`` they get no gradient, and
PyTorch optimisers skip parameters without one), so unfreezing needs no new optimiser.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from ..errors import ConfigError, FatalError
from ._base import HeadedModel
from ._init import init_weights
from ._io import load_weights, read_metadata, unwrap_model
from ._registry import builder_parameters
from ._spec import ModelSpec

_SETTINGS_ATTR = "tunelab_transfer"


@dataclass
class TransferSettings:
    """How the trainer should treat a model built for transfer learning."""

    checkpoint: str | None = None
    freeze_backbone: bool = False
    unfreeze_after: int | None = None
    backbone_lr_mult: float = 1.0
    head_replaced: bool = False


def transfer_settings(model: nn.Module) -> TransferSettings | None:
    """The settings :func:`build_from_config` attached to ``model``, or None."""
    return getattr(unwrap_model(model), _SETTINGS_ATTR, None)


def head_module(model: nn.Module) -> nn.Module:
    """The model's ``head`` (its final layer); a one-line error if it has none."""
    head = getattr(unwrap_model(model), "head", None)
    if not isinstance(head, nn.Module):
        raise FatalError(
            f"{type(unwrap_model(model)).__name__} has no `head` attribute; transfer learning "
            "needs the final layer named `head` (every built-in builder does this)"
        )
    return head


def head_parameters(model: nn.Module) -> list[nn.Parameter]:
    """Parameters of ``model.head``."""
    return list(head_module(model).parameters())


def backbone_parameters(model: nn.Module) -> list[nn.Parameter]:
    """Every parameter that is not in ``model.head``."""
    head_ids = {id(p) for p in head_parameters(model)}
    return [p for p in unwrap_model(model).parameters() if id(p) not in head_ids]


_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def _frozen_norm_hook(module: nn.Module, args: Any) -> None:
    # A frozen BatchNorm keeps its pretrained statistics: while its affine parameters are
    # frozen it normalises with the running stats (eval behaviour) even when the model is in
    # train mode, so a few tiny fine-tuning batches cannot overwrite them. After unfreeze()
    # it follows model.train()/eval() again.
    if module.weight is not None and not module.weight.requires_grad and module.training:
        module.training = False


def freeze_backbone(model: nn.Module) -> nn.Module:
    """Stop gradients to everything but the head and keep BatchNorm statistics; returns ``model``.

    Frozen BatchNorm layers normalise with their pretrained running statistics (and do not
    update them) until :func:`unfreeze`.
    """
    for param in backbone_parameters(model):
        param.requires_grad_(False)
    head_ids = {id(m) for m in head_module(model).modules()}
    for module in unwrap_model(model).modules():
        if (
            isinstance(module, _NORMS)
            and module.affine
            and id(module) not in head_ids
            and not getattr(module, "_tunelab_frozen_hook", False)
        ):
            module.register_forward_pre_hook(_frozen_norm_hook)
            module._tunelab_frozen_hook = True
    return model


def unfreeze(model: nn.Module) -> nn.Module:
    """Let every parameter train again; returns ``model``."""
    for param in unwrap_model(model).parameters():
        param.requires_grad_(True)
    return model


def is_frozen(model: nn.Module) -> bool:
    """True if any backbone parameter is frozen."""
    return any(not p.requires_grad for p in backbone_parameters(model))


def apply_unfreeze_schedule(model: nn.Module, epochs_done: int) -> bool:
    """Unfreeze once ``epochs_done >= unfreeze_after``; True if this call unfroze it.

    The trainer calls this at the start of every epoch with the number of finished epochs.
    """
    settings = transfer_settings(model)
    if settings is None or settings.unfreeze_after is None:
        return False
    if epochs_done >= settings.unfreeze_after and is_frozen(model):
        unfreeze(model)
        return True
    return False


def param_groups(
    model: nn.Module, lr: float, backbone_lr_mult: float | None = None
) -> list[dict[str, Any]]:
    """Optimiser parameter groups: the head at ``lr``, the backbone at ``lr * mult``.

    ``backbone_lr_mult`` defaults to the model's :class:`TransferSettings` (1.0 without any).
    A model without a ``head`` gets one group. Frozen parameters are included so that
    :func:`unfreeze` works without rebuilding the optimiser.

    Example:
        >>> import torch
        >>> from tunelab.models import build_model, param_groups
        >>> net = build_model("mlp", {"width": 8}, input_shape=(4,), output_size=2)
        >>> groups = param_groups(net, 0.1, backbone_lr_mult=0.1)
        >>> [(g["name"], round(g["lr"], 3)) for g in groups]
        [('backbone', 0.01), ('head', 0.1)]
        >>> opt = torch.optim.SGD(groups, lr=0.1)
    """
    if backbone_lr_mult is None:
        settings = transfer_settings(model)
        backbone_lr_mult = settings.backbone_lr_mult if settings else 1.0
    plain = unwrap_model(model)
    if not isinstance(getattr(plain, "head", None), nn.Module):
        return [{"params": list(plain.parameters()), "lr": lr, "name": "all"}]
    groups = [
        {"params": backbone_parameters(plain), "lr": lr * backbone_lr_mult, "name": "backbone"},
        {"params": head_parameters(plain), "lr": lr, "name": "head"},
    ]
    return [g for g in groups if g["params"]]


def replace_head(model: nn.Module, output_size: int, *, init: str = "default") -> nn.Module:
    """Swap ``model.head`` (an ``nn.Linear``, or a Sequential ending in one) for a new one."""
    plain = unwrap_model(model)
    head = head_module(plain)
    if isinstance(head, nn.Linear):
        new: nn.Module = nn.Linear(head.in_features, output_size, bias=head.bias is not None)
        new.to(head.weight.device)
        plain.head = new
    elif isinstance(head, nn.Sequential) and isinstance(head[-1], nn.Linear):
        last = head[-1]
        layer = nn.Linear(last.in_features, output_size, bias=last.bias is not None)
        head[-1] = layer.to(last.weight.device)
        new = layer
    else:
        raise FatalError(
            f"cannot replace head of type {type(head).__name__}: expected nn.Linear or an "
            "nn.Sequential ending in one"
        )
    init_weights(new, init)
    return model


def _checkpoint_error(path: Any, message: str) -> ConfigError:
    return ConfigError(
        f"config error: model.checkpoint = {str(path)!r} — {message}", field="model.checkpoint"
    )


def build_from_checkpoint(
    checkpoint: str | Path,
    bundle: Any,
    *,
    init: str = "default",
    freeze: bool = False,
    unfreeze_after: int | None = None,
    backbone_lr_mult: float = 1.0,
) -> tuple[nn.Module, ModelSpec]:
    """The saved architecture with its weights, a new head if the target differs, frozen if asked.

    The head is replaced when the output size, the task or the class names differ from the
    saved model's (digits 0-4 -> digits 5-9 keeps 5 outputs but needs a new head).
    """
    try:
        meta = read_metadata(checkpoint)
    except FatalError as exc:
        raise _checkpoint_error(checkpoint, str(exc)) from None
    saved = ModelSpec.from_dict(meta)
    input_shape = tuple(int(d) for d in bundle.input_shape)
    if input_shape != saved.input_shape:
        raise _checkpoint_error(
            checkpoint,
            f"was trained on inputs of shape {saved.input_shape}, this data has {input_shape}",
        )
    model = saved.build()
    folder = Path(checkpoint)
    folder = folder.parent if folder.is_file() else folder
    load_weights(model, folder / str(meta.get("weights") or "model.safetensors"))
    output_size = int(bundle.output_size)
    classes = [str(c) for c in getattr(bundle, "classes", [])]
    new_target = (
        output_size != saved.output_size or bundle.task != saved.task or classes != saved.classes
    )
    if new_target:
        replace_head(model, output_size, init=init)
    if freeze:
        freeze_backbone(model)
    # A regression head predicts standardised targets of *this* data (a new head, or the same
    # target measured on new rows); an unchanged classifier keeps what it had (nothing).
    target_scale = target_scale_of(bundle)
    if target_scale is not None and isinstance(model, HeadedModel):
        model.set_output_scale(*target_scale)
    elif isinstance(model, HeadedModel) and model.output_scale is not None:
        model.register_buffer("output_offset", None)  # a regressor turned classifier
        model.register_buffer("output_scale", None)
        target_scale = None
    spec = ModelSpec(
        saved.builder,
        dict(saved.params),
        input_shape=input_shape,
        output_size=output_size,
        init=saved.init,
        task=bundle.task,
        classes=classes,
        pretrained_from=str(checkpoint),
        target_scale=target_scale,
    )
    settings = TransferSettings(
        checkpoint=str(checkpoint),
        freeze_backbone=freeze,
        unfreeze_after=unfreeze_after,
        backbone_lr_mult=backbone_lr_mult,
        head_replaced=new_target,
    )
    setattr(model, _SETTINGS_ATTR, settings)
    return model, spec


def target_scale_of(bundle: Any) -> list[list[float]] | None:
    """``[means, stds]`` of a regression bundle's training targets per output (None for
    classification); a constant target keeps scale 1."""
    if getattr(bundle, "task", "classification") != "regression" or len(bundle.y_train) == 0:
        return None
    y = torch.as_tensor(bundle.y_train, dtype=torch.float64).reshape(len(bundle.y_train), -1)
    std = y.std(dim=0, unbiased=False)
    std = torch.where(std > 0, std, torch.ones_like(std))
    return [y.mean(dim=0).tolist(), std.tolist()]


def build_from_config(
    model_cfg: Any, bundle: Any, *, seed: int | None = None
) -> tuple[nn.Module, ModelSpec]:
    """Build the model a ``ModelConfig`` describes for ``bundle``'s shapes.

    With ``checkpoint`` set, the saved architecture and weights are used (``builder`` and
    ``params`` come from the checkpoint; params given in the config must match it).

    The initial weights are drawn from ``seed``; without one, from the seed the bundle was
    prepared with (``bundle.provenance.seed``), so the same config and seed give the same model
    in every process (torch seeds each process at random). A bundle made from arrays without
    provenance, and no ``seed``, draws from torch's global generator. Either way the global
    generator is left as it was.

    Example:
        >>> from tunelab.config import ModelConfig
        >>> from tunelab.data import DataBundle
        >>> from tunelab.models import build_from_config
        >>> import numpy as np
        >>> X, y = np.zeros((6, 4), "float32"), np.array([0, 1, 2, 0, 1, 2])
        >>> bundle = DataBundle.from_arrays(X, y, X, y)
        >>> model, spec = build_from_config(ModelConfig(builder="mlp", params={"width": 8}), bundle)
        >>> spec.output_size, model.head.out_features
        (3, 3)
    """
    if seed is None:
        provenance = getattr(bundle, "provenance", None)
        seed = getattr(provenance, "seed", None)
    if seed is None:
        return _build_from_config(model_cfg, bundle)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        return _build_from_config(model_cfg, bundle)


def _build_from_config(model_cfg: Any, bundle: Any) -> tuple[nn.Module, ModelSpec]:
    params = dict(model_cfg.params or {})
    if model_cfg.checkpoint:
        model, spec = build_from_checkpoint(
            model_cfg.checkpoint,
            bundle,
            init=model_cfg.init,
            freeze=model_cfg.freeze_backbone,
            unfreeze_after=model_cfg.unfreeze_after,
            backbone_lr_mult=model_cfg.backbone_lr_mult,
        )
        effective = {**builder_parameters(spec.builder), **spec.params}
        clash = {k: v for k, v in params.items() if k not in effective or effective[k] != v}
        if clash:
            key = next(iter(clash))
            raise ConfigError(
                f"config error: model.params.{key} = {clash[key]!r} — the architecture comes from "
                f"model.checkpoint ({spec.builder} with {spec.params}); remove model.params or "
                "match it",
                field=f"model.params.{key}",
            )
        return model, spec
    spec = ModelSpec(
        model_cfg.builder,
        params,
        input_shape=tuple(bundle.input_shape),
        output_size=int(bundle.output_size),
        init=model_cfg.init,
        task=bundle.task,
        classes=[str(c) for c in getattr(bundle, "classes", [])],
        target_scale=target_scale_of(bundle),
    )
    model = spec.build()
    if not isinstance(model, HeadedModel):  # a custom module has no output scaling to apply
        spec.target_scale = None
    if model_cfg.freeze_backbone:
        freeze_backbone(model)
    settings = TransferSettings(
        freeze_backbone=model_cfg.freeze_backbone,
        unfreeze_after=model_cfg.unfreeze_after,
        backbone_lr_mult=model_cfg.backbone_lr_mult,
    )
    setattr(model, _SETTINGS_ATTR, settings)
    return model, spec
