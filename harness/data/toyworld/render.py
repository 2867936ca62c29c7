"""Numpy rasteriser of toy-world scenes: anti-aliased 64x64 RGB, and 32x32 by area downsampling.

Rendering order, all in float RGB in [0, 255] at the native size (64):

1. background: solid, linear gradient, or a texture of summed sinusoids;
2. drop shadows: each object's silhouette shifted by ``shadow_length`` *away* from the light, supersampled,
   blurred (soft edges) and multiplied in: ``I <- I * (1 - SHADOW_STRENGTH * alpha)``;
3. objects: coverage from ``SUPERSAMPLE x SUPERSAMPLE`` point samples per pixel (anti-aliasing), base colour
   shaded by ``1 + SHADE_STRENGTH * clip(d . L, -1, 1)``, with ``d`` the offset from the object's centre in units
   of its radius and ``L`` the unit vector towards the light, so the lit side is brighter on every object;
   composited as ``I <- (1 - c) I + c * colour``.

Shapes are inside-tests in the object's local frame ``(u, v)`` (units of its radius, y down, rotation undone).
Every step only reads the scene spec, so the image is a deterministic function of the scene.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Final

import numpy as np

from harness.data.toyworld.scene import BackgroundSpec, ObjectSpec, SceneSpec

BASE_SIZE: Final[int] = 64
RENDER_SIZES: Final[tuple[int, ...]] = (32, 64)
SUPERSAMPLE: Final[int] = 4  # samples per pixel along each axis for object edges
SHADOW_SUPERSAMPLE: Final[int] = 2  # shadows are blurred afterwards, so fewer samples suffice
SHADOW_BLUR: Final[np.ndarray] = np.array([1.0, 2.0, 3.0, 2.0, 1.0]) / 9.0  # separable, in native pixels
SHADOW_STRENGTH: Final[float] = 0.45  # fraction of light a full shadow removes
SHADE_STRENGTH: Final[float] = 0.3  # lit side x1.3, far side x0.7
TEXTURE_WAVES: Final[int] = 3
TEXTURE_CYCLES: Final[tuple[float, float]] = (2.5, 7.0)  # spatial frequency of texture waves, cycles per image

ShapeTest = Callable[[np.ndarray, np.ndarray], np.ndarray]


def _regular_polygon(sides: int, inradius: float, first_normal_deg: float) -> ShapeTest:
    """Inside-test of a regular polygon: ``max_j (u cos p_j + v sin p_j) <= inradius`` over its edge normals."""
    angles = np.radians(first_normal_deg + 360.0 / sides * np.arange(sides))
    normals = np.stack([np.cos(angles), np.sin(angles)])

    def inside(u: np.ndarray, v: np.ndarray) -> np.ndarray:
        reach = np.full(u.shape, -np.inf)
        for nx, ny in normals.T:
            reach = np.maximum(reach, u * nx + v * ny)
        return reach <= inradius

    return inside


def _star(points: int, outer: float, inner: float) -> ShapeTest:
    """Inside-test of a ``points``-pointed star with one point up.

    The angle around the centre is folded into half a sector, ``s`` in [0, pi/points], measured from an inner
    vertex ``I = (inner, 0)``; the outer vertex is ``O = outer (cos a/2, sin a/2)``. A point ``q`` is inside when
    it lies on the centre's side of the edge ``IO``: ``cross(O - I, q - I) >= 0``.
    """
    sector = 2.0 * math.pi / points
    ox, oy = outer * math.cos(sector / 2), outer * math.sin(sector / 2)
    ex, ey = ox - inner, oy

    def inside(u: np.ndarray, v: np.ndarray) -> np.ndarray:
        rho = np.hypot(u, v)
        theta = np.arctan2(v, u) + math.pi / 2  # 0 at the top point (v < 0 is up)
        s = np.abs(np.mod(theta, sector) - sector / 2)
        qx, qy = rho * np.cos(s), rho * np.sin(s)
        return ex * qy - ey * (qx - inner) >= 0.0

    return inside


def _circle(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return u * u + v * v <= 1.0


def _square(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return np.maximum(np.abs(u), np.abs(v)) <= 0.82


def _diamond(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return np.abs(u) / 0.8 + np.abs(v) / 1.12 <= 1.0  # taller than wide: never a rotated square


def _cross(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    au, av = np.abs(u), np.abs(v)
    return ((au <= 0.34) & (av <= 1.0)) | ((av <= 0.34) & (au <= 1.0))


# Areas (units of radius^2) kept within 1.8..3.2 so no shape reads as "smaller"; reach matches vocab.SHAPE_EXTENT.
SHAPE_TESTS: Final[dict[str, ShapeTest]] = {
    "circle": _circle,
    "square": _square,
    "triangle": _regular_polygon(3, 0.62, 90.0),  # bottom edge normal points down: apex up
    "star": _star(5, 1.25, 0.52),
    "hexagon": _regular_polygon(6, 0.92, 0.0),
    "diamond": _diamond,
    "cross": _cross,
}


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
    c2 = np.array(background.colour2, dtype=np.float64)
    if background.kind == "solid":
        return np.broadcast_to(c1, (size, size, 3)).copy()
    coords = (np.arange(size) + 0.5) / size - 0.5  # pixel centres, centred on the frame
    x, y = coords[None, :], coords[:, None]
    if background.kind == "gradient":
        a = math.radians(background.angle)
        dx, dy = math.cos(a), -math.sin(a)
        t = 0.5 + (x * dx + y * dy) / (abs(dx) + abs(dy))  # 0 at one side of the frame, 1 at the other
    else:
        t = _texture(background.texture_seed, x, y)
    t = np.clip(t, 0.0, 1.0)[..., None]
    return (1.0 - t) * c1 + t * c2


def _texture(seed: int, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Mixing weight in [0, 1] of a texture: ``1/2 + sum_k sin(2 pi f_k . p + phi_k) / (2K)``."""
    rng = np.random.default_rng(seed)
    cycles = rng.uniform(*TEXTURE_CYCLES, size=TEXTURE_WAVES)
    directions = rng.uniform(0.0, 2.0 * math.pi, size=TEXTURE_WAVES)
    phases = rng.uniform(0.0, 2.0 * math.pi, size=TEXTURE_WAVES)
    total = np.zeros(np.broadcast_shapes(x.shape, y.shape))
    for f, d, phi in zip(cycles, directions, phases, strict=True):
        total += np.sin(2.0 * math.pi * f * (x * math.cos(d) + y * math.sin(d)) + phi)
    return 0.5 + total / (2.0 * TEXTURE_WAVES)


def shadow_alpha(scene: SceneSpec, size: int = BASE_SIZE) -> np.ndarray:
    """Shadow opacity in [0, 1], (size, size): silhouettes moved ``shadow_length`` away from the light, blurred."""
    lx, ly = scene.light.vector
    offset = (-lx * scene.light.shadow_length, -ly * scene.light.shadow_length)
    alpha = np.zeros((size, size))
    for obj in scene.objects:
        window = object_coverage(obj, size, SHADOW_SUPERSAMPLE, offset=offset)
        if window is not None:
            (ys, xs), cov = window
            alpha[ys, xs] = np.maximum(alpha[ys, xs], cov)
    return _blur(alpha, SHADOW_BLUR)


def _blur(alpha: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Separable convolution with zero padding, output the size of the input."""
    pad = len(kernel) // 2
    rows = np.pad(alpha, ((pad, pad), (0, 0)))
    alpha = sum(w * rows[k : k + alpha.shape[0]] for k, w in enumerate(kernel))
    cols = np.pad(alpha, ((0, 0), (pad, pad)))
    return sum(w * cols[:, k : k + alpha.shape[1]] for k, w in enumerate(kernel))


def object_coverage(
    obj: ObjectSpec, size: int, supersample: int = SUPERSAMPLE, offset: tuple[float, float] = (0.0, 0.0)
) -> tuple[tuple[slice, slice], np.ndarray] | None:
    """Fraction of each pixel the object covers, within its bounding window.

    Args:
        obj: the object.
        size: image size in pixels.
        supersample: point samples per pixel along each axis.
        offset: displacement of the object (fraction of the image width), e.g. for its shadow.

    Returns:
        ``((rows, cols), coverage)`` with ``coverage`` (h, w) in [0, 1] for ``image[rows, cols]``, or None when
        the object lies outside the frame.
    """
    cx, cy = (obj.x + offset[0]) * size, (obj.y + offset[1]) * size
    radius, reach = obj.radius * size, obj.extent * size
    x0, x1 = max(math.floor(cx - reach), 0), min(math.ceil(cx + reach), size)
    y0, y1 = max(math.floor(cy - reach), 0), min(math.ceil(cy + reach), size)
    if x1 <= x0 or y1 <= y0:
        return None
    sub = (np.arange(supersample) + 0.5) / supersample
    xs = ((np.arange(x0, x1)[:, None] + sub[None, :]).ravel() - cx) / radius
    ys = ((np.arange(y0, y1)[:, None] + sub[None, :]).ravel() - cy) / radius
    cos_r, sin_r = math.cos(math.radians(obj.rotation)), math.sin(math.radians(obj.rotation))
    u = cos_r * xs[None, :] - sin_r * ys[:, None]  # undo a counter-clockwise (on screen) rotation
    v = sin_r * xs[None, :] + cos_r * ys[:, None]
    inside = SHAPE_TESTS[obj.shape](u, v)
    coverage = inside.reshape(y1 - y0, supersample, x1 - x0, supersample).mean(axis=(1, 3))
    return (slice(y0, y1), slice(x0, x1)), coverage


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
    h, w, c = image.shape
    if h % factor or w % factor:
        raise ValueError(f"image of {h}x{w} cannot be downsampled by {factor}; use a factor dividing both sides")
    blocks = image.reshape(h // factor, factor, w // factor, factor, c).astype(np.uint32).sum(axis=(1, 3))
    n = factor * factor
    return ((blocks + n // 2) // n).astype(np.uint8)
