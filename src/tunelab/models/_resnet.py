"""``resnet``: a CIFAR-style residual network (3x3 stem, basic blocks, global average pool).

This is the family of He et al.'s CIFAR ResNets: ``stages: 3, blocks_per_stage: 3, width: 16``
is ResNet-20. The first block of every stage after the first halves the resolution (while the
image is big enough) and doubles the width; a 1x1 projection matches the shortcut.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ._base import DropoutRate, HeadedModel, PositiveInt, image_shape
from ._registry import param_error, register_builder


def _norm(channels: int, batch_norm: bool) -> nn.Module:
    return nn.BatchNorm2d(channels) if batch_norm else nn.Identity()


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual shortcut: ``relu(F(x) + shortcut(x))``."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, batch_norm: bool) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=not batch_norm)
        self.bn1 = _norm(out_ch, batch_norm)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=not batch_norm)
        self.bn2 = _norm(out_ch, batch_norm)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_ch != out_ch:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=not batch_norm),
                _norm(out_ch, batch_norm),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class ResNet(HeadedModel):
    """Stem, residual stages, global average pooling, optional dropout, ``head``."""

    def __init__(
        self,
        in_shape: tuple[int, int, int],
        output_size: int,
        widths: list[int],
        blocks_per_stage: list[int],
        *,
        batch_norm: bool = True,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        c, h, w = in_shape
        self.stem = nn.Sequential(
            nn.Conv2d(c, widths[0], 3, padding=1, bias=not batch_norm),
            _norm(widths[0], batch_norm),
            nn.ReLU(inplace=True),
        )
        stages: list[nn.Module] = []
        previous = widths[0]
        for index, (width, blocks) in enumerate(zip(widths, blocks_per_stage, strict=True)):
            # Downsample only while both sides are at least 2 (an 8x8 digit survives 3 stages).
            stride = 2 if index > 0 and min(h, w) >= 2 else 1
            h, w = (h + 1) // stride, (w + 1) // stride
            layers = [BasicBlock(previous, width, stride, batch_norm)]
            layers += [BasicBlock(width, width, 1, batch_norm) for _ in range(blocks - 1)]
            stages.append(nn.Sequential(*layers))
            previous = width
        self.stages = nn.Sequential(*stages)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.head = nn.Linear(previous, output_size)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 3:
            x = x.unsqueeze(1)
        return self.dropout(self.pool(self.stages(self.stem(x))))


@register_builder("resnet")
def resnet(
    *,
    input_shape: tuple[int, ...],
    output_size: int,
    stages: PositiveInt = 3,
    blocks_per_stage: PositiveInt | list[PositiveInt] = 2,
    width: PositiveInt = 16,
    widths: list[PositiveInt] | None = None,
    batch_norm: bool = True,
    dropout: DropoutRate = 0.0,
) -> ResNet:
    """A residual network of basic blocks for ``(C, H, W)`` images.

    Args:
        stages: number of stages; each after the first halves resolution and doubles width.
        blocks_per_stage: basic blocks in every stage, or one count per stage.
        width: channels of the first stage (the stem) — 16 as in the CIFAR ResNets.
        widths: channels per stage, e.g. ``[16, 32, 64]``; overrides ``stages`` and ``width``.
        batch_norm: BatchNorm2d after each convolution (off: plain residual network).
        dropout: dropout on the pooled features before the head.
    """
    if widths is not None and not widths:
        raise param_error("widths", widths, "must list at least one stage width")
    sizes = list(widths) if widths is not None else [width * 2**i for i in range(stages)]
    if isinstance(blocks_per_stage, list):
        if len(blocks_per_stage) != len(sizes):
            raise param_error(
                "blocks_per_stage",
                blocks_per_stage,
                f"needs one count per stage ({len(sizes)} stages)",
            )
        blocks = list(blocks_per_stage)
    else:
        blocks = [blocks_per_stage] * len(sizes)
    return ResNet(
        image_shape("resnet", input_shape),
        output_size,
        sizes,
        blocks,
        batch_norm=batch_norm,
        dropout=dropout,
    )
