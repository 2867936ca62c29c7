"""The toy world's vocabulary: shapes, colours, sizes and spatial relations, with what each word means.

Every word a caption can use is defined here together with its meaning in the renderer (an RGB value, a radius,
a geometric predicate), so the caption grammar, the scene sampler and the renderer cannot drift apart.

Coordinates are image-relative: ``x`` runs left to right and ``y`` top to bottom, both in ``[0, 1]``; radii are
fractions of the image width.
"""

from __future__ import annotations

from typing import Final

import numpy as np

SHAPES: Final[tuple[str, ...]] = ("circle", "square", "triangle", "star", "hexagon", "diamond", "cross")

# Saturated, well separated hues: they stay recognisable after shading (x0.7 .. x1.3) on muted backgrounds.
COLOURS: Final[dict[str, tuple[int, int, int]]] = {
    "red": (215, 35, 35),
    "orange": (245, 135, 20),
    "yellow": (240, 215, 30),
    "green": (40, 165, 55),
    "cyan": (30, 200, 210),
    "blue": (35, 70, 215),
    "purple": (135, 50, 185),
    "pink": (245, 110, 185),
}
COLOUR_NAMES: Final[tuple[str, ...]] = tuple(COLOURS)

SIZES: Final[tuple[str, ...]] = ("small", "medium", "large")
# Nominal radius (fraction of the image width) of each size class; a scene jitters it by at most SIZE_JITTER,
# which keeps the classes disjoint: 0.11 * 1.05 < 0.14 * 0.95 and 0.14 * 1.05 < 0.17 * 0.95. Three large stars
# still fit in the frame without touching.
SIZE_RADIUS: Final[dict[str, float]] = {"small": 0.11, "medium": 0.14, "large": 0.17}
SIZE_JITTER: Final[float] = 0.05

# Farthest point of each shape from its centre, in units of the object's radius (for bounds and placement).
SHAPE_EXTENT: Final[dict[str, float]] = {
    "circle": 1.0,
    "square": 1.17,
    "triangle": 1.24,
    "star": 1.25,
    "hexagon": 1.02,
    "diamond": 1.12,
    "cross": 1.06,
}

RELATIONS: Final[tuple[str, ...]] = ("left of", "right of", "above", "below")
INVERSE_RELATION: Final[dict[str, str]] = {
    "left of": "right of",
    "right of": "left of",
    "above": "below",
    "below": "above",
}
# A relation holds when the centres differ by at least RELATION_MIN_GAP along its axis and that axis dominates:
# |dx| >= |dy| for left/right, |dy| >= |dx| for above/below. Unambiguous to a human reader.
RELATION_MIN_GAP: Final[float] = 0.12


def relation_mask(dx: np.ndarray | float, dy: np.ndarray | float, relation: str) -> np.ndarray:
    """Whether ``subject <relation> object`` holds, for arrays of centre displacements ``object - subject``.

    A relation holds when the centres are at least `RELATION_MIN_GAP` apart along its axis and that axis
    dominates the displacement, e.g. ``left of``: ``dx >= gap`` and ``|dx| >= |dy|`` (y grows downwards, so
    ``above`` means ``dy >= gap``).

    Args:
        dx: object x minus subject x, any shape.
        dy: object y minus subject y, same shape.
        relation: one of `RELATIONS`.

    Returns:
        Boolean array of the broadcast shape.

    Raises:
        ValueError: ``relation`` is not in `RELATIONS`.
    """
    x, y = np.asarray(dx, dtype=np.float64), np.asarray(dy, dtype=np.float64)
    horizontal, vertical = np.abs(x) >= np.abs(y), np.abs(y) >= np.abs(x)
    if relation == "left of":
        return (x >= RELATION_MIN_GAP) & horizontal
    if relation == "right of":
        return (-x >= RELATION_MIN_GAP) & horizontal
    if relation == "above":
        return (y >= RELATION_MIN_GAP) & vertical
    if relation == "below":
        return (-y >= RELATION_MIN_GAP) & vertical
    raise ValueError(f"unknown relation {relation!r}; use one of {', '.join(RELATIONS)}")


def relation_holds(subject_xy: tuple[float, float], object_xy: tuple[float, float], relation: str) -> bool:
    """Whether ``subject <relation> object`` is true of two object centres ``(x, y)`` (see `relation_mask`)."""
    return bool(relation_mask(object_xy[0] - subject_xy[0], object_xy[1] - subject_xy[1], relation))


def check_word(kind: str, word: str, options: tuple[str, ...]) -> None:
    """Raise a one-line `ValueError` when ``word`` is not one of ``options`` (used by the specs' validation)."""
    if word not in options:
        raise ValueError(f"unknown {kind} {word!r}; the toy world knows {', '.join(options)}")
