"""``mlp``: a stack of fully connected layers for tabular data (any input is flattened)."""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from ._base import (
    Activation,
    DropoutRate,
    HeadedModel,
    NonNegativeInt,
    PositiveInt,
    make_activation,
)
from ._registry import param_error, register_builder


class MLP(HeadedModel):
    """``Flatten -> [Linear -> BatchNorm? -> activation -> Dropout?] * len(widths) -> head``."""

    def __init__(
        self,
        in_features: int,
        output_size: int,
        widths: list[int],
        *,
        activation: str = "relu",
        dropout: float = 0.0,
        batch_norm: bool = False,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        previous = in_features
        for width in widths:
            # BatchNorm follows the linear layer, so the linear bias would be cancelled anyway.
            layers.append(nn.Linear(previous, width, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm1d(width))
            layers.append(make_activation(activation))
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            previous = width
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(previous, output_size)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


@register_builder("mlp")
def mlp(
    *,
    input_shape: tuple[int, ...],
    output_size: int,
    depth: NonNegativeInt = 2,
    width: PositiveInt = 64,
    widths: list[PositiveInt] | None = None,
    activation: Activation = "relu",
    dropout: DropoutRate = 0.0,
    batch_norm: bool = False,
) -> MLP:
    """A multilayer perceptron.

    Args:
        depth: number of hidden layers (0 gives a linear model).
        width: units of every hidden layer.
        widths: units per hidden layer, e.g. ``[256, 128]``; overrides ``depth`` and ``width``.
        activation: relu, leaky_relu, gelu, tanh or sigmoid.
        dropout: dropout rate after each hidden activation.
        batch_norm: BatchNorm1d after each hidden linear layer.
    """
    if widths is not None and not widths:
        raise param_error("widths", widths, "must list at least one width (or use depth: 0)")
    sizes = list(widths) if widths is not None else [width] * depth
    return MLP(
        math.prod(input_shape),
        output_size,
        sizes,
        activation=activation,
        dropout=dropout,
        batch_norm=batch_norm,
    )
