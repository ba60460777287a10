"""What every built-in model shares: a backbone that computes features, then a ``head``.

Transfer learning, discriminative learning rates and distillation all need to tell "the last
layer" from "the rest"; the convention is simply an attribute named ``head``. Custom factories
that want transfer learning follow it too (see ``docs/models.md``).
"""

from __future__ import annotations

from abc import ABCMeta, abstractmethod
from typing import Annotated, Literal

import torch
import torch.nn as nn
from pydantic import Field

from ..errors import ConfigError

Activation = Literal["relu", "leaky_relu", "gelu", "tanh", "sigmoid"]
PositiveInt = Annotated[int, Field(ge=1)]
NonNegativeInt = Annotated[int, Field(ge=0)]
DropoutRate = Annotated[float, Field(ge=0.0, lt=1.0)]

_ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
}


def make_activation(name: str) -> nn.Module:
    """A fresh activation module by name (one of :data:`Activation`)."""
    return _ACTIVATIONS[name]()


class HeadedModel(nn.Module, metaclass=ABCMeta):
    """Base of the built-in models: ``forward(x) = head(features(x))``.

    Subclasses build their layers in ``__init__``, implement :meth:`features` and assign the
    final ``nn.Linear`` to ``self.head``; everything that is not ``head`` is the backbone.
    """

    head: nn.Linear

    def __init__(self) -> None:
        super().__init__()
        # No output scaling until set_output_scale (a None buffer is not in the state dict).
        self.register_buffer("output_offset", None)
        self.register_buffer("output_scale", None)

    @abstractmethod
    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The representation the head reads, shape ``(batch, head.in_features)``."""

    def set_output_scale(self, offset: list[float], scale: list[float]) -> None:
        """Make the head predict standardised targets: ``forward`` returns
        ``head(...) * scale + offset``, in the targets' own units.

        A regression net whose head starts near zero must otherwise learn the targets' mean and
        spread through its weights (diabetes: mean 152, std 77), which Adam does at about ``lr``
        per step. Offset and scale are buffers, so they are saved with the weights and exported.
        """
        self.register_buffer("output_offset", torch.tensor(offset, dtype=torch.float32))
        self.register_buffer("output_scale", torch.tensor(scale, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.head(self.features(x))
        if self.output_scale is not None:
            out = out * self.output_scale + self.output_offset
        return out


def image_shape(builder: str, input_shape: tuple[int, ...]) -> tuple[int, int, int]:
    """``(C, H, W)`` of an image input; ``(H, W)`` is read as one channel."""
    if len(input_shape) == 3:
        return input_shape[0], input_shape[1], input_shape[2]
    if len(input_shape) == 2:
        return 1, input_shape[0], input_shape[1]
    raise ConfigError(
        f"config error: model.builder = {builder!r} — needs image input (C, H, W) or (H, W), "
        f"got input shape {tuple(input_shape)}; use mlp or transformer for tabular data",
        field="model.builder",
    )


def sequence_shape(builder: str, input_shape: tuple[int, ...]) -> tuple[int, int]:
    """``(seq_len, features)`` of a sequence input.

    ``(seq_len, features)`` is used as is; a 1-D input ``(n,)`` is a sequence of ``n`` scalar
    steps; an image ``(C, H, W)`` is read row by row: ``H`` steps of ``C * W`` features.
    """
    if len(input_shape) == 1:
        return input_shape[0], 1
    if len(input_shape) == 2:
        return input_shape[0], input_shape[1]
    if len(input_shape) == 3:
        return input_shape[1], input_shape[0] * input_shape[2]
    raise ConfigError(
        f"config error: model.builder = {builder!r} — needs sequence input (seq_len, features), "
        f"got input shape {tuple(input_shape)}",
        field="model.builder",
    )


def as_sequence(x: torch.Tensor, steps: int, features: int) -> torch.Tensor:
    """Reshape a batch to ``(batch, steps, features)`` following :func:`sequence_shape`."""
    if x.ndim == 4:  # (B, C, H, W) -> rows as steps
        x = x.permute(0, 2, 1, 3)
    return x.reshape(x.shape[0], steps, features)
