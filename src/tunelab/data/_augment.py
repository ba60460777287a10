"""Image augmentation on tensors, one whole batch at a time, in plain torch (no torchvision).

The trainer calls ``augmenter(xb, generator)`` on training batches only; evaluation never sees
it. Every random number comes from ``generator``, so a seeded generator replays the same
augmented batches. Augmentation runs on the already-normalised tensors: the zero padding of a
crop or a rotation's corners is therefore the training mean colour, not black.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any

import torch
import torch.nn.functional as F


class Augmenter(ABC):
    """Base of batch augmenters: ``__call__(xb, generator) -> xb`` of the same shape."""

    @abstractmethod
    def __call__(self, xb: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """The augmented batch, same shape and device as ``xb``."""

    def to_dict(self) -> dict[str, Any]:
        return {}


class ImageAugmenter(Augmenter):
    """Random crop with zero padding, horizontal flip and small rotation, per sample.

    Args:
        crop_padding: pixels of padding on each side before cropping back to the input size
            (a random shift of up to this many pixels); 0 turns cropping off.
        flip: flip each image left-right with probability 0.5.
        rotate_degrees: rotate each image by an angle drawn uniformly from
            ``[-rotate_degrees, rotate_degrees]`` (bilinear, via ``affine_grid``/``grid_sample``).

    >>> import torch
    >>> aug = ImageAugmenter(crop_padding=2, flip=True, rotate_degrees=10)
    >>> xb = torch.randn(4, 3, 8, 8)
    >>> a = aug(xb, torch.Generator().manual_seed(0))
    >>> b = aug(xb, torch.Generator().manual_seed(0))
    >>> a.shape == xb.shape and torch.equal(a, b)
    True
    """

    def __init__(
        self, *, crop_padding: int = 0, flip: bool = False, rotate_degrees: float = 0.0
    ) -> None:
        self.crop_padding = crop_padding
        self.flip = flip
        self.rotate_degrees = rotate_degrees

    def __call__(self, xb: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if xb.ndim != 4:
            raise ValueError(
                f"ImageAugmenter needs (N, C, H, W) batches, got shape {tuple(xb.shape)}"
            )
        if len(xb) == 0:
            return xb
        out = xb
        if self.crop_padding > 0:
            out = self._crop(out, generator)
        if self.flip:
            out = self._flip(out, generator)
        if self.rotate_degrees > 0:
            out = self._rotate(out, generator)
        return out

    def _crop(self, xb: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        n, c, h, w = xb.shape
        p = self.crop_padding
        padded = F.pad(xb, (p, p, p, p))
        top = _randint(2 * p + 1, n, generator).to(xb.device)
        left = _randint(2 * p + 1, n, generator).to(xb.device)
        rows = top[:, None] + torch.arange(h, device=xb.device)
        cols = left[:, None] + torch.arange(w, device=xb.device)
        batch = torch.arange(n, device=xb.device)[:, None, None, None]
        channel = torch.arange(c, device=xb.device)[None, :, None, None]
        return padded[batch, channel, rows[:, None, :, None], cols[:, None, None, :]]

    def _flip(self, xb: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        flip = (_rand(len(xb), generator) < 0.5).to(xb.device)
        return torch.where(flip[:, None, None, None], xb.flip(-1), xb)

    def _rotate(self, xb: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        n, _, h, w = xb.shape
        limit = math.radians(self.rotate_degrees)
        angle = ((_rand(n, generator) * 2 - 1) * limit).to(device=xb.device, dtype=xb.dtype)
        cos, sin = torch.cos(angle), torch.sin(angle)
        zero = torch.zeros_like(angle)
        # affine_grid works in [-1, 1] coordinates; the h/w factors keep a non-square image's
        # rotation a rotation in pixel space instead of a shear.
        theta = torch.stack(
            [
                torch.stack([cos, -sin * h / w, zero], dim=1),
                torch.stack([sin * w / h, cos, zero], dim=1),
            ],
            dim=1,
        )
        grid = F.affine_grid(theta, list(xb.shape), align_corners=False)
        return F.grid_sample(xb, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "crop_padding": self.crop_padding,
            "flip": self.flip,
            "rotate_degrees": self.rotate_degrees,
        }

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.to_dict().items())
        return f"ImageAugmenter({args})"


def _device(generator: torch.Generator | None) -> torch.device:
    return generator.device if generator is not None else torch.device("cpu")


def _randint(high: int, n: int, generator: torch.Generator | None) -> torch.Tensor:
    return torch.randint(0, high, (n,), generator=generator, device=_device(generator))


def _rand(n: int, generator: torch.Generator | None) -> torch.Tensor:
    return torch.rand(n, generator=generator, device=_device(generator))
