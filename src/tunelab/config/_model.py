"""The ``model`` section: which builder, its parameters, init and transfer learning."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from ._base import Section
from ._registry import allowed_names
from ._space import resolve_nested_spaces


class ModelConfig(Section):
    """A model builder by registry name with its parameters (any of which may be tuned).

    ``checkpoint`` names a directory written by ``tunelab.models.save_model`` (a training run's
    ``best/``); the architecture and weights come from it and the head is replaced when the
    classes differ. ``freeze_backbone`` trains only the head, ``unfreeze_after`` thaws the rest
    after that many epochs, and ``backbone_lr_mult`` scales the backbone's learning rate.
    """

    builder: str = "mlp"
    params: dict[str, Any] = Field(default_factory=dict)
    init: Literal["default", "kaiming", "xavier", "orthogonal"] = "default"
    checkpoint: str | None = None
    freeze_backbone: bool = False
    unfreeze_after: int | None = Field(None, ge=0)
    backbone_lr_mult: float = Field(1.0, gt=0)

    @field_validator("builder")
    @classmethod
    def _known_builder(cls, value: str) -> str:
        names = allowed_names("model.builder")
        if value not in names:
            raise ValueError(f"unknown builder {value!r}; expected one of {', '.join(names)}")
        return value

    @field_validator("params", mode="before")
    @classmethod
    def _parse_spaces(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        return resolve_nested_spaces(value)

    @model_validator(mode="after")
    def _unfreeze_needs_freeze(self) -> ModelConfig:
        if self.unfreeze_after is not None and not self.freeze_backbone:
            raise ValueError(
                "model.unfreeze_after needs model.freeze_backbone: true (nothing is frozen)"
            )
        return self
