"""``ImagePreprocessing``: pixel scale and per-channel normalisation fitted on training images.

uint8 images are first divided by 255; then each channel is standardised (mean/std) or min-max
scaled with statistics measured on the training split only. Raw input may be arrays in NCHW or
NHWC layout, PIL images, file paths or encoded bytes; files go through the same decoder (and the
same resize) the image-folder source used.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ._images import decode_image, images_to_nchw
from ._preprocessing import InputField, Preprocessing
from ._raw import data_error

CHUNK = 2048  # images per step: bounds the float64 working memory on large sets


class ImagePreprocessing(Preprocessing):
    """Raw images -> float32 ``(n, C, H, W)`` normalised per channel.

    >>> import numpy as np
    >>> pre = ImagePreprocessing(shape=[1, 2, 2], pixel_scale=1 / 255).fit(
    ...     np.array([[[[0, 255], [0, 255]]]], dtype=np.uint8))
    >>> pre.offset_, pre.scale_
    ([0.5], [0.5])
    """

    kind = "image"
    _params = ("shape", "pixel_scale", "scale", "mode", "resize_to", "label", "task", "classes")
    _fitted = ("offset_", "scale_")

    def __init__(
        self,
        *,
        shape: list[int],
        pixel_scale: float = 1.0,
        scale: str = "standard",
        mode: str | None = None,
        resize_to: list[int] | None = None,
        label: str | None = None,
        task: str = "classification",
        classes: list[str] | None = None,
    ) -> None:
        self.shape = shape
        self.pixel_scale = pixel_scale
        self.scale = scale
        self.mode = mode
        self.resize_to = resize_to
        self.label = label
        self.task = task
        self.classes = classes or []

    def fit(self, images: np.ndarray) -> ImagePreprocessing:
        """Per-channel statistics of ``images`` ``(n, C, H, W)`` after the pixel scale."""
        channels = int(self.shape[0])
        if len(images) == 0:
            raise data_error("train", "no training images to fit the normalisation on")
        total = np.zeros(channels)
        squares = np.zeros(channels)
        low = np.full(channels, np.inf)
        high = np.full(channels, -np.inf)
        count = 0
        for start in range(0, len(images), CHUNK):
            chunk = images[start : start + CHUNK].astype(np.float64) * self.pixel_scale
            total += chunk.sum(axis=(0, 2, 3))
            squares += (chunk * chunk).sum(axis=(0, 2, 3))
            low = np.minimum(low, chunk.min(axis=(0, 2, 3)))
            high = np.maximum(high, chunk.max(axis=(0, 2, 3)))
            count += chunk.shape[0] * chunk.shape[2] * chunk.shape[3]
        mean = total / count
        if self.scale == "standard":
            offset, spread = mean, np.sqrt(np.maximum(squares / count - mean * mean, 0.0))
        elif self.scale == "minmax":
            offset, spread = low, high - low
        else:
            offset, spread = np.zeros(channels), np.ones(channels)
        spread = np.where(spread > 1e-12, spread, 1.0)
        self.offset_ = offset.tolist()
        self.scale_ = spread.tolist()
        self.channel_min_ = low.tolist()
        self.channel_mean_ = mean.tolist()
        self.channel_max_ = high.tolist()
        self._restore()
        return self

    def _restore(self) -> None:
        self._offset = np.asarray(self.offset_, dtype=np.float64)[:, None, None]
        self._scale = np.asarray(self.scale_, dtype=np.float64)[:, None, None]

    def transform(self, raw: Any) -> np.ndarray:
        if not self.is_fitted:
            raise ValueError("ImagePreprocessing is not fitted; call fit() first")
        return self.normalise(self._as_images(raw))

    def normalise(self, images: np.ndarray) -> np.ndarray:
        """Images already in ``(n, C, H, W)`` at the fitted size -> float32 model input."""
        out = np.empty(images.shape, dtype=np.float32)
        for start in range(0, len(images), CHUNK):
            chunk = images[start : start + CHUNK].astype(np.float64) * self.pixel_scale
            out[start : start + CHUNK] = (chunk - self._offset) / self._scale
        return out

    def _as_images(self, raw: Any) -> np.ndarray:
        channels, height, width = (int(v) for v in self.shape)
        if _is_file_like(raw) or (isinstance(raw, (list, tuple)) and raw and _is_file_like(raw[0])):
            items = list(raw) if isinstance(raw, (list, tuple)) else [raw]
            mode = self.mode or ("L" if channels == 1 else "RGB")
            size = tuple(self.resize_to) if self.resize_to else None
            decoded = [
                decode_image(item, mode=mode, size=size, name=f"input image {i + 1}")
                for i, item in enumerate(items)
            ]
            images = np.stack(decoded)
        else:
            array = np.asarray(raw)
            if array.ndim == 2 and channels == 1:
                array = array[None, None]
            elif array.ndim == 3:
                # One image (C, H, W) or (H, W, C) — or, for one-channel models, (n, H, W).
                if channels == 1:
                    array = array[:, None] if array.shape[0] != 1 else array[None]
                elif array.shape[0] == channels and array.shape[-1] != channels:
                    array = array[None]
                elif array.shape[-1] == channels:
                    array = array.transpose(2, 0, 1)[None]
            elif array.ndim == 4 and array.shape[1] != channels and array.shape[-1] == channels:
                array = array.transpose(0, 3, 1, 2)  # NHWC; the known channel count decides
            images = images_to_nchw(array, "input")
            if self.resize_to and images.shape[2:] != (height, width):
                if images.dtype != np.uint8:
                    raise data_error(
                        "input", f"only uint8 images can be resized; send them at {height}x{width}"
                    )
                images = np.stack([self._resize(im) for im in images])
        if images.shape[1:] != (channels, height, width):
            raise data_error(
                "input",
                f"expected images of shape {channels}x{height}x{width}, got "
                f"{'x'.join(map(str, images.shape[1:]))}",
            )
        return images

    def _resize(self, image: np.ndarray) -> np.ndarray:
        from PIL import Image

        hwc = image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0)
        mode = self.mode or ("L" if image.shape[0] == 1 else "RGB")
        return decode_image(Image.fromarray(hwc), mode=mode, size=tuple(self.resize_to))

    def input_schema(self) -> list[InputField]:
        return [InputField(name="image", dtype="image", shape=[int(v) for v in self.shape])]

    @property
    def feature_names(self) -> list[str]:
        return []


def _is_file_like(value: Any) -> bool:
    if isinstance(value, (str, Path, bytes, bytearray)):
        return True
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - Pillow is a dependency
        return False
    return isinstance(value, Image.Image)
