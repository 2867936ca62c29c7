"""Visibly corrupted copies of real renders, for photorealism attention checks.

A photorealism attention check shows a real render beside a copy that no attentive annotator would call more
realistic. `corrupt_render` makes that copy from a uint8 ``H × W × C`` image (``C`` = 1, 3 or 4, values 0..255) by
composing three defects, each seeded:

1. **broken shading**: the image is cut into ``tiles × tiles`` cells and each cell is multiplied by a linear ramp
   ``1 + s · t`` (``t ∈ [-1, 1]`` along a random direction per cell), so neighbouring cells are lit from different
   sides and the scene's single light direction is lost;
2. **colour blocks**: ``n_blocks`` axis-aligned rectangles of random solid colour, each side up to ``block_frac`` of
   the image side;
3. **noise**: i.i.d. Gaussian noise ``N(0, σ²)`` per pixel and channel.

The alpha channel of an RGBA image is left as it is. All functions return new arrays and never modify their input.

The other two checks need no pixel work here: a diversity check shows 16 copies of one render (see
`eval_protocols.human.pairing.AttentionCase.collapsed_grid`), and a caption check shows a render of a
*contradicting* caption. Choosing that caption (another shape or colour, from the caller's prompt grammar) and
rendering it are the caller's job, because only the caller knows its caption grammar and renderer.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _generator(seed: int | np.random.Generator) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def _as_float_rgb(image: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Check a uint8 HWC image; return its colour channels as float64 and its alpha channel (or ``None``)."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 numpy image, got {getattr(image, 'dtype', type(image).__name__)}; "
                         "convert with np.asarray(img, dtype=np.uint8)")
    if image.ndim != 3 or image.shape[2] not in (1, 3, 4) or image.shape[0] < 2 or image.shape[1] < 2:
        raise ValueError(f"expected an H x W x C image with C in (1, 3, 4) and H, W >= 2, got shape {image.shape}")
    if image.shape[2] == 4:
        return image[..., :3].astype(np.float64), image[..., 3:].copy()
    return image.astype(np.float64), None


def _to_uint8(colour: np.ndarray, alpha: np.ndarray | None) -> np.ndarray:
    out = np.clip(np.rint(colour), 0, 255).astype(np.uint8)
    return out if alpha is None else np.concatenate([out, alpha], axis=2)


def break_shading(image: np.ndarray, seed: int | np.random.Generator, *, tiles: int = 2, strength: float = 0.6) -> np.ndarray:
    """Relight each of ``tiles × tiles`` cells from its own random direction.

    Args:
        image: uint8 ``H × W × C``.
        seed: seed or generator.
        tiles: cells per side (>= 1).
        strength: ramp amplitude ``s`` in ``(0, 1]``; a cell's brightness factor spans ``[1 - s, 1 + s]``.

    Returns:
        uint8 image of the same shape.
    """
    if tiles < 1 or not 0.0 < strength <= 1.0:
        raise ValueError(f"break_shading needs tiles >= 1 and 0 < strength <= 1, got tiles={tiles}, strength={strength}")
    rng = _generator(seed)
    colour, alpha = _as_float_rgb(image)
    height, width = colour.shape[:2]
    rows = np.array_split(np.arange(height), tiles)
    cols = np.array_split(np.arange(width), tiles)
    for r in rows:
        for c in cols:
            if r.size == 0 or c.size == 0:
                continue
            angle = rng.uniform(0.0, 2.0 * np.pi)
            y = np.linspace(-1.0, 1.0, r.size)[:, None]
            x = np.linspace(-1.0, 1.0, c.size)[None, :]
            ramp = (np.cos(angle) * x + np.sin(angle) * y) / np.sqrt(2.0)  # in [-1, 1]
            colour[r[0] : r[-1] + 1, c[0] : c[-1] + 1] *= (1.0 + strength * ramp)[..., None]
    return _to_uint8(colour, alpha)


def paste_colour_blocks(
    image: np.ndarray, seed: int | np.random.Generator, *, n_blocks: int = 4, block_frac: float = 0.3
) -> np.ndarray:
    """Paste ``n_blocks`` solid rectangles of random colour at random places.

    Args:
        image: uint8 ``H × W × C``.
        seed: seed or generator.
        n_blocks: number of rectangles (>= 0).
        block_frac: largest rectangle side as a fraction of the image side, in ``(0, 1]``.

    Returns:
        uint8 image of the same shape.
    """
    if n_blocks < 0 or not 0.0 < block_frac <= 1.0:
        raise ValueError(f"paste_colour_blocks needs n_blocks >= 0 and 0 < block_frac <= 1, got {n_blocks}, {block_frac}")
    rng = _generator(seed)
    colour, alpha = _as_float_rgb(image)
    height, width, channels = colour.shape
    for _ in range(n_blocks):
        h = int(rng.integers(1, max(2, int(block_frac * height)) + 1))
        w = int(rng.integers(1, max(2, int(block_frac * width)) + 1))
        top = int(rng.integers(0, height - min(h, height) + 1))
        left = int(rng.integers(0, width - min(w, width) + 1))
        colour[top : top + h, left : left + w] = rng.integers(0, 256, size=channels)
    return _to_uint8(colour, alpha)


def add_noise(image: np.ndarray, seed: int | np.random.Generator, *, sigma: float = 40.0) -> np.ndarray:
    """Add i.i.d. Gaussian noise ``N(0, sigma²)`` (in 0..255 units) to every pixel and channel, then clip.

    Returns:
        uint8 image of the same shape.
    """
    if sigma < 0:
        raise ValueError(f"add_noise needs sigma >= 0, got {sigma}")
    rng = _generator(seed)
    colour, alpha = _as_float_rgb(image)
    return _to_uint8(colour + rng.normal(0.0, sigma, size=colour.shape), alpha)


def corrupt_render(
    image: np.ndarray,
    seed: int | np.random.Generator,
    *,
    tiles: int = 2,
    shading_strength: float = 0.6,
    n_blocks: int = 4,
    block_frac: float = 0.3,
    noise_sigma: float = 40.0,
) -> np.ndarray:
    """Make a visibly corrupted copy of a real render: broken shading, then colour blocks, then noise.

    Args:
        image: uint8 ``H × W × C`` render, C in (1, 3, 4).
        seed: seed or generator; the same seed gives the same corruption.
        tiles, shading_strength: see `break_shading`.
        n_blocks, block_frac: see `paste_colour_blocks`.
        noise_sigma: see `add_noise`.

    Returns:
        uint8 image of the same shape; the input is not modified.
    """
    rng = _generator(seed)
    out = break_shading(image, rng, tiles=tiles, strength=shading_strength)
    out = paste_colour_blocks(out, rng, n_blocks=n_blocks, block_frac=block_frac)
    return add_noise(out, rng, sigma=noise_sigma)


def corrupt_renders(images: np.ndarray, seed: int, **kwargs: Any) -> np.ndarray:
    """`corrupt_render` over a uint8 ``N × H × W × C`` batch; image ``i`` uses seed ``(seed, i)``.

    Returns:
        uint8 array of the same shape.
    """
    if not isinstance(images, np.ndarray) or images.ndim != 4:
        raise ValueError(f"expected an N x H x W x C uint8 batch, got {getattr(images, 'shape', type(images).__name__)}")
    if len(images) == 0:
        return images.copy()
    return np.stack([corrupt_render(img, np.random.default_rng([seed, i]), **kwargs) for i, img in enumerate(images)])
