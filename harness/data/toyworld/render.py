"""Numpy rasteriser of toy-world scenes: anti-aliased 64x64 RGB, and 32x32 by area downsampling.

Rendering order, all in float RGB in [0, 255] at the native size (64):

1. background: solid, linear gradient, or a texture of summed sinusoids;
2. drop shadows: each object's silhouette shifted by ``shadow_length`` *away* from the light, with a soft edge
   (`shadow_alpha`), multiplied in: ``I <- I * (1 - SHADOW_STRENGTH * alpha)``;
3. objects: coverage from ``SUPERSAMPLE x SUPERSAMPLE`` point samples per pixel (anti-aliasing), base colour
   shaded by ``1 + SHADE_STRENGTH * clip(d . L, -1, 1)``, with ``d`` the offset from the object's centre in units
   of its radius and ``L`` the unit vector towards the light, so the lit side is brighter on every object;
   composited as ``I <- (1 - c) I + c * colour``.

Shapes are signed distance bounds in the object's local frame (`shapes`); only pixels whose centre lies within
`EDGE_BAND` of an outline are supersampled, the others are wholly inside or outside (same result, far less work).
Every step only reads the scene spec, so the image is a deterministic function of the scene.
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np

from harness.data.toyworld.scene import BackgroundSpec, ObjectSpec, SceneSpec
from harness.data.toyworld.shapes import SHAPE_BOUNDS

BASE_SIZE: Final[int] = 64
RENDER_SIZES: Final[tuple[int, ...]] = (32, 64)
SUPERSAMPLE: Final[int] = 4  # samples per pixel along each axis for object edges
EDGE_BAND: Final[float] = 0.75  # pixels: > half a pixel diagonal (0.7071), so pixels outside the band are uniform
SHADOW_SOFTNESS: Final[float] = 3.0  # width (native pixels) of a shadow's soft edge
SHADOW_STRENGTH: Final[float] = 0.45  # fraction of light a full shadow removes
SHADE_STRENGTH: Final[float] = 0.3  # lit side x1.3, far side x0.7
TEXTURE_WAVES: Final[int] = 3
TEXTURE_CYCLES: Final[tuple[float, float]] = (2.5, 7.0)  # spatial frequency of texture waves, cycles per image


def render_scene(scene: SceneSpec, size: int = BASE_SIZE) -> np.ndarray:
    """Render ``scene`` as an image.

    Args:
        scene: the scene.
        size: 64 (native) or 32 (the 64x64 render, area-downsampled by 2 with `area_downsample`).

    Returns:
        (size, size, 3) uint8 RGB.

    Raises:
        ValueError: ``size`` is not one of `RENDER_SIZES`.
    """
    if size not in RENDER_SIZES:
        raise ValueError(f"toy-world render size must be one of {RENDER_SIZES}, got {size}")
    image = _to_uint8(render_float(scene, BASE_SIZE))
    return image if size == BASE_SIZE else area_downsample(image, BASE_SIZE // size)


def render_float(scene: SceneSpec, size: int = BASE_SIZE) -> np.ndarray:
    """Native render without quantisation: (size, size, 3) float64 in [0, 255]."""
    image = render_background(scene.background, size)
    image *= 1.0 - SHADOW_STRENGTH * shadow_alpha(scene, size)[..., None]
    light = np.array(scene.light.vector)
    for obj in scene.objects:
        _composite_object(image, obj, light, size)
    return np.clip(image, 0.0, 255.0)


def render_background(background: BackgroundSpec, size: int = BASE_SIZE) -> np.ndarray:
    """The backdrop alone: (size, size, 3) float64 in [0, 255]."""
    c1 = np.array(background.colour, dtype=np.float64)
    if background.kind == "solid":
        image = np.empty((size, size, 3))
        image[...] = c1
        return image
    coords = (np.arange(size) + 0.5) / size - 0.5  # pixel centres, centred on the frame
    if background.kind == "gradient":
        a = math.radians(background.angle)
        dx, dy = math.cos(a), -math.sin(a)
        norm = abs(dx) + abs(dy)
        t = 0.5 + (coords[None, :] * (dx / norm) + coords[:, None] * (dy / norm))  # 0 on one side, 1 on the other
    else:
        t = _texture(background.texture_seed, coords)
    c2 = np.array(background.colour2, dtype=np.float64)
    return c1 + np.clip(t, 0.0, 1.0)[..., None] * (c2 - c1)


def _texture(seed: int, coords: np.ndarray) -> np.ndarray:
    """Mixing weight in [0, 1] of a texture: ``1/2 + sum_k sin(2 pi f_k . p + phi_k) / (2K)``.

    Each wave is separable, ``sin(a x + b y + phi) = sin(a x) cos(b y + phi) + cos(a x) sin(b y + phi)``, so
    only 1-D sines are evaluated.
    """
    rng = np.random.default_rng(seed)
    cycles = rng.uniform(*TEXTURE_CYCLES, size=TEXTURE_WAVES)
    directions = rng.uniform(0.0, 2.0 * math.pi, size=TEXTURE_WAVES)
    phases = rng.uniform(0.0, 2.0 * math.pi, size=TEXTURE_WAVES)
    total = np.zeros((len(coords), len(coords)))
    for f, d, phi in zip(cycles, directions, phases, strict=True):
        ax = 2.0 * math.pi * f * math.cos(d) * coords
        by = 2.0 * math.pi * f * math.sin(d) * coords + phi
        total += np.outer(np.cos(by), np.sin(ax)) + np.outer(np.sin(by), np.cos(ax))
    return 0.5 + total / (2.0 * TEXTURE_WAVES)


def shadow_alpha(scene: SceneSpec, size: int = BASE_SIZE) -> np.ndarray:
    """Drop-shadow opacity, (size, size) in [0, 1].

    Each object's silhouette, moved ``shadow_length`` away from the light, with a soft edge from its signed
    distance bound ``d`` (pixels): ``alpha = clip(1/2 - d / w, 0, 1)`` with ``w`` = `SHADOW_SOFTNESS` (scaled
    to ``size``); overlapping shadows take the maximum, so they never double-darken.
    """
    lx, ly = scene.light.vector
    softness = SHADOW_SOFTNESS * size / BASE_SIZE
    alpha = np.zeros((size, size))
    for obj in scene.objects:
        cx = (obj.x - lx * scene.light.shadow_length) * size
        cy = (obj.y - ly * scene.light.shadow_length) * size
        window = _window(cx, cy, obj.extent * size + softness / 2, size)
        if window is None:
            continue
        ys, xs = window
        radius = obj.radius * size
        u, v = _to_local(
            np.arange(xs.start, xs.stop) + 0.5 - cx, np.arange(ys.start, ys.stop) + 0.5 - cy, radius, obj.rotation
        )
        soft = np.clip(0.5 - SHAPE_BOUNDS[obj.shape](u, v) * (radius / softness), 0.0, 1.0)
        alpha[ys, xs] = np.maximum(alpha[ys, xs], soft)
    return alpha


def _window(cx: float, cy: float, reach: float, size: int) -> tuple[slice, slice] | None:
    """Rows and columns of the pixels within ``reach`` of ``(cx, cy)`` (pixels), clipped to the frame."""
    x0, x1 = max(math.floor(cx - reach), 0), min(math.ceil(cx + reach), size)
    y0, y1 = max(math.floor(cy - reach), 0), min(math.ceil(cy + reach), size)
    if x1 <= x0 or y1 <= y0:
        return None
    return slice(y0, y1), slice(x0, x1)


def object_coverage(
    obj: ObjectSpec, size: int, supersample: int = SUPERSAMPLE
) -> tuple[tuple[slice, slice], np.ndarray] | None:
    """Fraction of each pixel the object covers, within its bounding window.

    Pixels whose centre lies farther than `EDGE_BAND` from the outline are wholly inside or outside; the others
    average ``supersample x supersample`` point samples, which gives exactly the full supersampled coverage.

    Args:
        obj: the object.
        size: image size in pixels.
        supersample: point samples per pixel along each axis.

    Returns:
        ``((rows, cols), coverage)`` with ``coverage`` (h, w) in [0, 1] for ``image[rows, cols]``, or None when
        the object lies outside the frame.
    """
    cx, cy, radius = obj.x * size, obj.y * size, obj.radius * size
    window = _window(cx, cy, obj.extent * size, size)
    if window is None:
        return None
    ys, xs = window
    bound = SHAPE_BOUNDS[obj.shape]
    at_centre = bound(
        *_to_local(
            np.arange(xs.start, xs.stop) + 0.5 - cx, np.arange(ys.start, ys.stop) + 0.5 - cy, radius, obj.rotation
        )
    )
    band = EDGE_BAND / radius
    coverage = (at_centre < -band).astype(np.float64)
    rows, cols = np.nonzero(np.abs(at_centre) <= band)
    if rows.size:
        sub = (np.arange(supersample) + 0.5) / supersample - 0.5  # sample offsets from the pixel centre
        sx = (cols + xs.start + 0.5 - cx)[:, None, None] + sub[None, None, :]
        sy = (rows + ys.start + 0.5 - cy)[:, None, None] + sub[None, :, None]
        coverage[rows, cols] = (bound(*_to_local(sx, sy, radius, obj.rotation)) <= 0.0).mean(axis=(1, 2))
    return window, coverage


def _to_local(dx: np.ndarray, dy: np.ndarray, radius: float, degrees: float) -> tuple[np.ndarray, np.ndarray]:
    """Pixel offsets from an object's centre -> its local frame (units of radius, counter-clockwise rotation undone).

    1-D ``dx`` (columns) and ``dy`` (rows) broadcast to a grid; arrays of matching shape map point by point.
    """
    if dx.ndim == 1 and dy.ndim == 1:
        dx, dy = dx[None, :], dy[:, None]
    rotation = math.radians(degrees)
    cos_r, sin_r = math.cos(rotation) / radius, math.sin(rotation) / radius
    return cos_r * dx - sin_r * dy, sin_r * dx + cos_r * dy


def _composite_object(image: np.ndarray, obj: ObjectSpec, light: np.ndarray, size: int) -> None:
    """Paint one shaded object over ``image`` in place."""
    window = object_coverage(obj, size)
    if window is None:
        return
    (ys, xs), coverage = window
    px = ((np.arange(xs.start, xs.stop) + 0.5) / size - obj.x) / obj.radius
    py = ((np.arange(ys.start, ys.stop) + 0.5) / size - obj.y) / obj.radius
    facing = np.clip(px[None, :] * light[0] + py[:, None] * light[1], -1.0, 1.0)
    colour = np.array(obj.rgb, dtype=np.float64) * (1.0 + SHADE_STRENGTH * facing)[..., None]
    c = coverage[..., None]
    image[ys, xs] = (1.0 - c) * image[ys, xs] + c * np.clip(colour, 0.0, 255.0)


def _to_uint8(image: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def area_downsample(image: np.ndarray, factor: int) -> np.ndarray:
    """Mean over ``factor x factor`` blocks, rounded half up: (H, W, 3) uint8 -> (H/f, W/f, 3) uint8.

    Raises:
        ValueError: H or W is not a multiple of ``factor``.
    """
    h, w, _ = image.shape
    if h % factor or w % factor:
        raise ValueError(f"image of {h}x{w} cannot be downsampled by {factor}; use a factor dividing both sides")
    wide = image.astype(np.uint32)
    total = np.zeros((h // factor, w // factor, image.shape[2]), dtype=np.uint32)
    for i in range(factor):
        for j in range(factor):
            total += wide[i::factor, j::factor]
    n = factor * factor
    return ((total + n // 2) // n).astype(np.uint8)
