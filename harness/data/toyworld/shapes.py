"""Geometry of the toy world's shapes, as signed distance bounds in the object's local frame.

Each shape is a function ``bound(u, v)`` of local coordinates (units of the object's radius, x right, y down,
rotation undone) with these properties, which the rasteriser relies on:

* ``bound <= 0`` exactly on the shape (the inside-test);
* inside, ``-bound`` is at most the distance to the outline; outside, ``bound`` is at most that distance.

So a pixel whose centre has ``|bound| > half the pixel diagonal`` is entirely inside or entirely outside, and only
the pixels along the outline need supersampling. Convex shapes use ``max_j (p . n_j - a_j)`` over their edge
lines (exact inside, a lower bound outside); unions take the minimum of their parts.

Areas (units of radius^2) lie within 1.7..3.2, so no shape reads as "smaller"; the farthest reach of each shape
is `vocab.SHAPE_EXTENT`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Final

import numpy as np

ShapeBound = Callable[[np.ndarray, np.ndarray], np.ndarray]

SQUARE_HALF_SIDE: Final[float] = 0.82
TRIANGLE_INRADIUS: Final[float] = 0.62  # circumradius 1.24
HEXAGON_INRADIUS: Final[float] = 0.88  # circumradius 1.016: flat sides clearly inside the unit circle
DIAMOND_HALF_AXES: Final[tuple[float, float]] = (0.8, 1.12)  # taller than wide: never a rotated square
STAR_OUTER_RADIUS: Final[float] = 1.25
CROSS_ARM: Final[tuple[float, float]] = (0.34, 1.0)  # half width, half length


def circle(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Unit disc: ``|p| - 1`` (exact distance)."""
    return np.hypot(u, v) - 1.0


def square(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Axis-aligned square of half side `SQUARE_HALF_SIDE`."""
    return np.maximum(np.abs(u), np.abs(v)) - SQUARE_HALF_SIDE


def triangle(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Equilateral triangle, apex up, centred on its centroid: edge normals at 90, 210 and 330 degrees (y down)."""
    flat = v  # bottom edge, normal pointing down
    left = -0.8660254037844386 * u - 0.5 * v
    right = 0.8660254037844386 * u - 0.5 * v
    return np.maximum(np.maximum(flat, left), right) - TRIANGLE_INRADIUS


def hexagon(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Regular hexagon, flat sides left and right; by symmetry two of its six edge lines suffice."""
    au, av = np.abs(u), np.abs(v)
    return np.maximum(au, 0.5 * au + 0.8660254037844386 * av) - HEXAGON_INRADIUS


_DIAMOND_NORM: Final[float] = math.hypot(1.0 / DIAMOND_HALF_AXES[0], 1.0 / DIAMOND_HALF_AXES[1])


def diamond(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Rhombus ``|u|/a + |v|/b <= 1``; dividing by ``|(1/a, 1/b)|`` makes it a distance to the edge lines."""
    a, b = DIAMOND_HALF_AXES
    return (np.abs(u) / a + np.abs(v) / b - 1.0) / _DIAMOND_NORM


_STAR_NORMALS: Final[np.ndarray] = np.stack(
    [np.cos(np.radians(-90.0 + 72.0 * np.arange(5))), np.sin(np.radians(-90.0 + 72.0 * np.arange(5)))], axis=1
)
_STAR_OFFSET: Final[float] = STAR_OUTER_RADIUS * math.cos(math.radians(72.0))


def star(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Regular five-pointed star (pentagram outline), one point up.

    Each of the 5 pentagram lines cuts one point off the circumscribed pentagon, at distance
    ``R cos 72deg`` from the centre; ``d_j = p . n_j - R cos 72deg`` is the signed distance to line ``j``. The star
    is the union over ``k`` of the convex sets ``{d_j <= 0 for all j != k}`` (the points on the wrong side of at
    most one line), whose bound ``min_k max_{j != k} d_j`` is the second largest ``d_j``.
    """
    d = np.stack([u * nx + v * ny for nx, ny in _STAR_NORMALS]) - _STAR_OFFSET
    return np.partition(d, 3, axis=0)[3]


def cross(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Plus sign: the union of a vertical and a horizontal bar."""
    w, length = CROSS_ARM
    au, av = np.abs(u), np.abs(v)
    return np.minimum(np.maximum(au - w, av - length), np.maximum(av - w, au - length))


SHAPE_BOUNDS: Final[dict[str, ShapeBound]] = {
    "circle": circle,
    "square": square,
    "triangle": triangle,
    "star": star,
    "hexagon": hexagon,
    "diamond": diamond,
    "cross": cross,
}
