"""``cnn``: plain convolution blocks then a small fully connected head, for any image size."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn as nn

from ._base import (
    Activation,
    DropoutRate,
    HeadedModel,
    NonNegativeInt,
    PositiveInt,
    image_shape,
    make_activation,
)
from ._registry import param_error, register_builder

# Feature maps are average-pooled to at most this many cells per side before flattening, so the
# head stays small on large images while small inputs (8x8 digits) keep their spatial layout.
_MAX_CELLS = 4


class CNN(HeadedModel):
    """``[Conv -> BatchNorm? -> activation -> Pool]`` per channel entry, flatten, hidden, head."""

    def __init__(
        self,
        in_shape: tuple[int, int, int],
        output_size: int,
        channels: list[int],
        *,
        kernel_size: int = 3,
        pooling: str = "max",
        batch_norm: bool = True,
        activation: str = "relu",
        dropout: float = 0.0,
        hidden: int = 128,
    ) -> None:
        super().__init__()
        self.in_shape = in_shape
        c, h, w = in_shape
        blocks: list[nn.Module] = []
        for out in channels:
            blocks.append(
                nn.Conv2d(c, out, kernel_size, padding=kernel_size // 2, bias=not batch_norm)
            )
            if batch_norm:
                blocks.append(nn.BatchNorm2d(out))
            blocks.append(make_activation(activation))
            # Halve each side that can still be halved; a side of 1 stays 1 (tiny images).
            window = (2 if h >= 2 else 1, 2 if w >= 2 else 1)
            if pooling != "none" and window != (1, 1):
                pool = nn.MaxPool2d(window) if pooling == "max" else nn.AvgPool2d(window)
                blocks.append(pool)
                h, w = h // window[0], w // window[1]
            c = out
        cells = (min(h, _MAX_CELLS), min(w, _MAX_CELLS))
        blocks.append(nn.AdaptiveAvgPool2d(cells))
        blocks.append(nn.Flatten())
        flat = c * cells[0] * cells[1]
        if dropout > 0:
            blocks.append(nn.Dropout(dropout))
        if hidden > 0:
            blocks += [nn.Linear(flat, hidden), make_activation(activation)]
            if dropout > 0:
                blocks.append(nn.Dropout(dropout))
            flat = hidden
        self.body = nn.Sequential(*blocks)
        self.head = nn.Linear(flat, output_size)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 3:  # (B, H, W) images without a channel axis
            x = x.unsqueeze(1)
        return self.body(x)


@register_builder("cnn")
def cnn(
    *,
    input_shape: tuple[int, ...],
    output_size: int,
    channels: list[PositiveInt] | None = None,
    kernel_size: PositiveInt = 3,
    pooling: Literal["max", "avg", "none"] = "max",
    batch_norm: bool = True,
    activation: Activation = "relu",
    dropout: DropoutRate = 0.0,
    hidden: NonNegativeInt = 128,
) -> CNN:
    """A convolutional classifier/regressor for ``(C, H, W)`` images of any size.

    Args:
        channels: output channels of each conv block (default ``[32, 64]``).
        kernel_size: odd square kernel; padding keeps the size before pooling.
        pooling: ``max`` or ``avg`` 2x2 pooling after every block, or ``none``.
        batch_norm: BatchNorm2d after each convolution.
        activation: relu, leaky_relu, gelu, tanh or sigmoid.
        dropout: dropout before and after the hidden fully connected layer.
        hidden: width of the fully connected layer before the head (0: none).
    """
    if channels is not None and not channels:
        raise param_error("channels", channels, "must list at least one conv block")
    if kernel_size % 2 == 0:
        raise param_error("kernel_size", kernel_size, "must be odd so padding keeps the size")
    return CNN(
        image_shape("cnn", input_shape),
        output_size,
        list(channels) if channels is not None else [32, 64],
        kernel_size=kernel_size,
        pooling=pooling,
        batch_norm=batch_norm,
        activation=activation,
        dropout=dropout,
        hidden=hidden,
    )
