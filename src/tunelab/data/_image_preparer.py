"""``ImagePreparer``: images from a folder, arrays or a bundled set, to normalised tensors.

Stateless cleaning is ``tidy_images`` (subsample, labels, duplicates); the fitted step is
:class:`ImagePreprocessing` (pixel scale, per-channel normalisation from the training images),
which emits one ``scale`` cleaning action. Images are the one kind ``data.augment`` applies to.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._augment import ImageAugmenter
from ._image_pre import ImagePreprocessing
from ._preparer import Preparer, register_preparer
from ._profile import CleaningAction, ColumnProfile, finite
from ._raw import RawImages
from ._split import SplitPositions
from ._tidy import TidyImages, tidy_images


@register_preparer("image")
class ImagePreparer(Preparer[RawImages, TidyImages]):
    """Prepares :class:`RawImages`; see :class:`Preparer` for the learned attributes."""

    kind = "image"
    augments = True

    def tidy(self, raw: RawImages, *, seed: int) -> TidyImages:
        return tidy_images(raw, self.cfg, seed=seed)

    def fit(self, tidied: TidyImages, parts: SplitPositions) -> ImagePreparer:
        cfg = self.cfg
        pre = ImagePreprocessing(
            shape=list(tidied.images.shape[1:]),
            pixel_scale=1 / 255 if tidied.images.dtype == np.uint8 else 1.0,
            scale=cfg.scale,
            mode=tidied.mode,
            resize_to=list(tidied.resize_to) if tidied.resize_to else None,
            label=tidied.label_name,
            task=tidied.task,
            classes=list(tidied.classes),
        )
        pre.fit(tidied.rows(parts.train))
        X = {
            split: pre.normalise(tidied.rows(getattr(parts, split)))
            for split in ("train", "val", "test")
        }
        actions = []
        if cfg.scale != "none":
            actions.append(
                CleaningAction(
                    "scale",
                    f"per-channel {cfg.scale} normalisation fitted on the "
                    f"{len(parts.train)} training images",
                )
            )
        self._fitted(pre, X, parts, actions)
        return self

    def profile_fields(self, tidied: TidyImages) -> dict[str, Any]:
        pre: ImagePreprocessing = self.preprocessing_
        channels = zip(pre.channel_min_, pre.channel_mean_, pre.channel_max_, strict=True)
        return {
            "input_shape": list(pre.shape),
            "features": int(np.prod(pre.shape)),
            "columns": [
                ColumnProfile(
                    name=f"channel {i}",
                    kind="pixel",
                    min=finite(lo),
                    mean=finite(mu),
                    max=finite(hi),
                )
                for i, (lo, mu, hi) in enumerate(channels)
            ],
        }

    def augmenter(self) -> ImageAugmenter | None:
        a = self.cfg.augment
        if not a.enabled:
            return None
        return ImageAugmenter(
            crop_padding=a.crop_padding, flip=a.flip, rotate_degrees=a.rotate_degrees
        )
