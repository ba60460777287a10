"""``BackboneFinetuning``: transfer learning's freeze-then-unfreeze, as a callback.

As Lightning's ``BackboneFinetuning``: a model built with ``model.freeze_backbone`` trains its
head alone, and after ``model.unfreeze_after`` epochs the backbone joins in (at ``lr *
backbone_lr_mult``; its parameters are already in the optimiser, so nothing is rebuilt). The
Trainer adds this callback itself when the model carries transfer settings
(:func:`tunelab.models.transfer_settings`); the schedule is the model's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import ConfigError
from ..models import apply_unfreeze_schedule
from ._callbacks import Callback

if TYPE_CHECKING:
    from ._trainer import Trainer


class BackboneFinetuning(Callback):
    """Unfreeze the backbone at the start of epoch ``unfreeze_after + 1``.

    It runs on every rank of a distributed fit (unlike user callbacks) since every replica
    must change together; unfreezing mid-run under DDP is refused, as DDP fixes the set of
    parameters with gradients when it wraps the model.
    """

    def on_epoch_start(self, trainer: Trainer, epoch: int) -> None:
        if apply_unfreeze_schedule(trainer.model, epochs_done=epoch - 1) and trainer.world_size > 1:
            raise ConfigError(
                "config error: model.unfreeze_after — unfreezing during a distributed run is "
                "not supported; train with --nproc 1 or without unfreeze_after",
                field="model.unfreeze_after",
            )
