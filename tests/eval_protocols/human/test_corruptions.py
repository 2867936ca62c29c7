"""Attention-check corruptions: visibly broken, seeded, shape-preserving, input left alone."""

from __future__ import annotations

import numpy as np
import pytest

from eval_protocols.human.corruptions import (
    add_noise,
    break_shading,
    corrupt_render,
    corrupt_renders,
    paste_colour_blocks,
)


def toy_render(size: int = 32) -> np.ndarray:
    """A red disc lit from the top left with a drop shadow to the bottom right, on a light background."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    image = np.full((size, size, 3), 220.0)
    centre, radius = size / 2 - 2, size / 4
    shadow = (x - centre - 3) ** 2 + (y - centre - 3) ** 2 < radius**2
    image[shadow] = 150.0
    disc = (x - centre) ** 2 + (y - centre) ** 2 < radius**2
    light = 1.0 - 0.4 * ((x - centre) + (y - centre)) / (2 * radius)
    image[disc] = np.stack([200 * light, 30 * light, 30 * light], axis=-1)[disc]
    return np.clip(image, 0, 255).astype(np.uint8)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / mse))


def test_corrupted_render_is_visibly_different() -> None:
    image = toy_render()
    for seed in range(5):
        corrupted = corrupt_render(image, seed)
        assert corrupted.shape == image.shape and corrupted.dtype == np.uint8
        assert psnr(image, corrupted) < 15.0  # JPEG-level damage is ~30 dB; this is far worse
        assert np.abs(corrupted.astype(int) - image.astype(int)).mean() > 20


def test_seeded_and_input_untouched() -> None:
    image = toy_render()
    before = image.copy()
    a, b, c = corrupt_render(image, 3), corrupt_render(image, 3), corrupt_render(image, 4)
    np.testing.assert_array_equal(image, before)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    np.testing.assert_array_equal(corrupt_render(image, np.random.default_rng(9)), corrupt_render(image, 9))


def test_break_shading_lights_tiles_from_different_sides() -> None:
    flat = np.full((40, 40, 3), 128, np.uint8)
    out = break_shading(flat, 0, tiles=2, strength=0.6)
    directions = []
    for rows in (slice(0, 20), slice(20, 40)):
        for cols in (slice(0, 20), slice(20, 40)):
            tile = out[rows, cols, 0].astype(np.float64)
            assert abs(tile.mean() - 128) < 2  # a symmetric ramp keeps the tile's mean
            gy, gx = np.gradient(tile)
            directions.append(np.arctan2(gy.mean(), gx.mean()))
    spread = max(abs(np.angle(np.exp(1j * (p - q)))) for p in directions for q in directions)
    assert spread > np.pi / 6


def test_colour_blocks_and_noise_components() -> None:
    flat = np.full((30, 30, 3), 128, np.uint8)
    np.testing.assert_array_equal(paste_colour_blocks(flat, 0, n_blocks=0), flat)
    np.testing.assert_array_equal(add_noise(flat, 0, sigma=0.0), flat)
    blocks = paste_colour_blocks(flat, 1, n_blocks=3, block_frac=0.5)
    changed = np.any(blocks != flat, axis=2)
    assert 0 < changed.mean() < 0.75
    noisy = add_noise(flat, 2, sigma=20.0).astype(np.float64)
    assert abs(noisy.std() - 20.0) < 1.0 and abs(noisy.mean() - 128) < 1.0


def test_alpha_kept_and_grey_images_work() -> None:
    rgba = np.concatenate([toy_render(), np.full((32, 32, 1), 77, np.uint8)], axis=2)
    out = corrupt_render(rgba, 0)
    assert out.shape == rgba.shape
    np.testing.assert_array_equal(out[..., 3], rgba[..., 3])
    grey = toy_render()[..., :1].copy()
    assert corrupt_render(grey, 0).shape == grey.shape


def test_batch_uses_one_seed_per_index() -> None:
    batch = np.stack([toy_render(), toy_render()[::-1].copy()])
    out = corrupt_renders(batch, seed=5)
    for i in range(2):
        np.testing.assert_array_equal(out[i], corrupt_render(batch[i], np.random.default_rng([5, i])))


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (np.zeros((8, 8, 3), np.float32), "uint8"),
        (np.zeros((8, 8), np.uint8), "H x W x C"),
        (np.zeros((8, 8, 2), np.uint8), "H x W x C"),
    ],
)
def test_bad_images_are_rejected(image: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        corrupt_render(image, 0)
