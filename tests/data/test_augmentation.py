"""Batch image augmentation: shapes, seeded determinism, and what each transform does."""

from __future__ import annotations

import pytest
import torch

from tunelab.data import ImageAugmenter, prepare_data
from tunelab.errors import ConfigError

from .data_helpers import config


def _batch(n: int = 16, c: int = 3, h: int = 8, w: int = 12) -> torch.Tensor:
    return torch.randn(n, c, h, w, generator=torch.Generator().manual_seed(0))


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize(
    "params",
    [
        {"crop_padding": 2},
        {"flip": True},
        {"rotate_degrees": 15},
        {"crop_padding": 3, "flip": True, "rotate_degrees": 10},
    ],
)
def test_augmentation_keeps_shape_and_dtype_and_is_deterministic_under_a_seed(params):
    aug = ImageAugmenter(**params)
    xb = _batch()
    a, b, c = aug(xb, _gen(7)), aug(xb, _gen(7)), aug(xb, _gen(8))
    assert a.shape == xb.shape and a.dtype == xb.dtype
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert not torch.equal(a, xb)


def test_augmentation_does_not_modify_its_input():
    xb = _batch()
    before = xb.clone()
    ImageAugmenter(crop_padding=2, flip=True, rotate_degrees=20)(xb, _gen(0))
    assert torch.equal(xb, before)


def test_flip_mirrors_some_images_and_leaves_the_others():
    xb = _batch(n=64)
    out = ImageAugmenter(flip=True)(xb, _gen(1))
    flipped = [torch.equal(o, x.flip(-1)) for o, x in zip(out, xb, strict=True)]
    kept = [torch.equal(o, x) for o, x in zip(out, xb, strict=True)]
    assert all(f or k for f, k in zip(flipped, kept, strict=True))
    assert 10 < sum(flipped) < 54


def test_crop_with_padding_shifts_content_within_the_padding():
    xb = _batch(n=32)
    p = 2
    out = ImageAugmenter(crop_padding=p)(xb, _gen(3))
    padded = torch.nn.functional.pad(xb, (p, p, p, p))
    h, w = xb.shape[2:]
    for o, src in zip(out, padded, strict=True):
        windows = [
            torch.equal(o, src[:, dy : dy + h, dx : dx + w])
            for dy in range(2 * p + 1)
            for dx in range(2 * p + 1)
        ]
        assert any(windows)


def test_rotation_by_a_tiny_angle_barely_changes_the_image():
    xb = torch.ones(4, 1, 16, 16)
    out = ImageAugmenter(rotate_degrees=1e-4)(xb, _gen(0))
    assert torch.allclose(out[:, :, 2:-2, 2:-2], xb[:, :, 2:-2, 2:-2], atol=1e-3)


def test_rotation_moves_mass_towards_the_corners_only_by_a_little():
    xb = torch.zeros(8, 1, 21, 21)
    xb[:, :, 10, :] = 1.0  # a horizontal bar
    out = ImageAugmenter(rotate_degrees=30)(xb, _gen(2))
    assert not torch.allclose(out, xb)
    # the centre pixel stays on the bar whatever the angle
    assert torch.allclose(out[:, :, 10, 10], torch.ones(8), atol=1e-5)


def test_augmenter_rejects_non_image_batches():
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        ImageAugmenter(flip=True)(torch.zeros(4, 10))


def test_prepare_data_sets_the_augmenter_only_when_enabled():
    on = prepare_data(
        config(
            dataset="digits",
            as_images=True,
            augment={"enabled": True, "crop_padding": 1, "flip": True},
        ),
        seed=0,
    )
    assert isinstance(on.augmenter, ImageAugmenter) and on.augmenter.crop_padding == 1
    out = on.augmenter(on.X_train[:32], _gen(0))
    assert out.shape == (32, 1, 8, 8)
    off = prepare_data(config(dataset="digits", as_images=True), seed=0)
    assert off.augmenter is None


def test_augmentation_on_tabular_data_is_a_config_error():
    with pytest.raises(ConfigError, match="augment"):
        prepare_data(config(dataset="iris", augment={"enabled": True, "flip": True}), seed=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_augmentation_runs_on_cuda_with_a_cpu_generator():
    xb = _batch().cuda()
    out = ImageAugmenter(crop_padding=2, flip=True, rotate_degrees=10)(xb, _gen(0))
    assert out.device == xb.device
    cpu = ImageAugmenter(crop_padding=2, flip=True, rotate_degrees=10)(xb.cpu(), _gen(0))
    assert torch.allclose(out.cpu(), cpu, atol=1e-5)
