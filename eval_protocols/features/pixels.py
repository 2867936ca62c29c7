"""Weight-free feature extractors for the toy world: area-pooled RGB on a coarse grid.

``pixels-g<grid>``: each image is converted to float RGB on [0, 1] and cut into a ``grid × grid`` lattice of equal
cells (by `numpy` index splits). Per cell it keeps

* the mean of each RGB channel (colour layout),
* the standard deviation of the luminance Y = 0.299 R + 0.587 G + 0.114 B (contrast, speckle noise),
* the mean absolute difference of Y between horizontal and vertical neighbours (edge sharpness; blur lowers it),

so features are ``(N, grid·grid·5)`` (the two texture statistics scaled by `TEXTURE_WEIGHT`). It needs no weights, so the walking skeleton and the tests can compute a
Fréchet distance on any machine and see both colour and sharpness defects. It is *not* FID and its numbers are not
comparable to published ones; use the Inception or CLIP extractors for that.

``layout-g<grid>`` (`LayoutExtractor`): the colour layout alone, the mean R, G, B of each cell on [0, 1], features
``(N, grid·grid·3)``. It sees what captions leave open (where the objects are, the background colour, the light,
unnamed sizes), to which a CLIP trained contrastively on captions is nearly blind by construction; the within-caption
diversity of these features (`eval_protocols.metrics.diversity`, ``layout_diversity``) is the toy world's measure
of sample diversity.
"""

from __future__ import annotations

import numpy as np

TEXTURE_WEIGHT = 4.0
"""Scale of the two texture statistics: their natural range (~0.05) is far below the colour means' (~0.5), and a
Fréchet distance is not scale-invariant, so unweighted they would hardly count."""


class PixelExtractor:
    """Cell statistics; ``__call__((N, H, W, 3) uint8) -> (N, grid²·5) float64`` (see the module docstring)."""

    weights_sha256: str | None = None

    def __init__(self, grid: int = 4) -> None:
        if grid < 1:
            raise ValueError(f"grid must be >= 1, got {grid}")
        self.grid = grid
        self.dim = grid * grid * 5
        self.extractor_id = f"pixels-v2-w{TEXTURE_WEIGHT:g}-g{grid}"

    def __call__(self, images: np.ndarray) -> np.ndarray:
        if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
            raise ValueError(f"expected (N, H, W, 3) uint8 images, got {images.shape} {images.dtype}")
        x = images.astype(np.float64) / 255.0
        y = x @ np.array([0.299, 0.587, 0.114])
        dx = np.abs(np.diff(y, axis=2, append=y[:, :, -1:]))
        dy = np.abs(np.diff(y, axis=1, append=y[:, -1:, :]))
        n, h, w, _ = x.shape
        rows = np.array_split(np.arange(h), self.grid)
        cols = np.array_split(np.arange(w), self.grid)
        out = np.empty((n, self.grid, self.grid, 5))
        for i, r in enumerate(rows):
            for j, c in enumerate(cols):
                cell = (slice(None), slice(r[0], r[-1] + 1), slice(c[0], c[-1] + 1))
                out[:, i, j, :3] = x[cell].mean(axis=(1, 2))
                out[:, i, j, 3] = TEXTURE_WEIGHT * y[cell].std(axis=(1, 2))
                out[:, i, j, 4] = TEXTURE_WEIGHT * 0.5 * (dx[cell].mean(axis=(1, 2)) + dy[cell].mean(axis=(1, 2)))
        return out.reshape(n, self.dim)


def cell_means(images: np.ndarray, grid: int) -> np.ndarray:
    """Mean of each RGB channel over the cells of a ``grid × grid`` lattice (`numpy.array_split` of rows and columns).

    Args:
        images: ``uint8 (N, H, W, 3)``, H and W >= grid.
        grid: cells per side.

    Returns:
        ``float64 (N, grid, grid, 3)`` on [0, 1].
    """
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(f"expected (N, H, W, 3) uint8 images, got {images.shape} {images.dtype}")
    n, h, w, _ = images.shape
    if h < grid or w < grid:
        raise ValueError(f"images of {h}x{w} pixels cannot be cut into a {grid}x{grid} grid; use a smaller grid")
    x = images.astype(np.float64) / 255.0
    rows = np.array_split(np.arange(h), grid)
    cols = np.array_split(np.arange(w), grid)
    out = np.empty((n, grid, grid, 3))
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            out[:, i, j] = x[:, r[0] : r[-1] + 1, c[0] : c[-1] + 1].mean(axis=(1, 2))
    return out


class LayoutExtractor:
    """Colour layout: per cell of a ``grid × grid`` lattice the mean R, G, B on [0, 1].

    ``__call__((N, H, W, 3) uint8) -> (N, grid²·3) float64``, cells in row-major order, channels innermost. No
    weights, no resizing: images of any size >= ``grid`` pixels a side are pooled from their native resolution (cells
    of unequal size when the side is not a multiple of ``grid``), so one scene rendered at two sizes gives nearly the
    same features.

    Why: captions fix what is drawn and leave open where and on what (see the module docstring); the Euclidean
    distance of these features measures that freedom, which the caption-trained CLIP does not see.
    """

    weights_sha256: str | None = None

    def __init__(self, grid: int = 4) -> None:
        if grid < 1:
            raise ValueError(f"grid must be >= 1, got {grid}")
        self.grid = grid
        self.dim = grid * grid * 3
        self.extractor_id = f"layout-g{grid}"

    def __call__(self, images: np.ndarray) -> np.ndarray:
        return cell_means(images, self.grid).reshape(len(images), self.dim)
