"""A weight-free feature extractor for the toy world: area-pooled RGB on a coarse grid.

``pixels-g<grid>``: each image is converted to float RGB on [0, 1], averaged over a ``grid × grid`` lattice of
equal cells (area pooling, exact for sizes divisible by ``grid``; otherwise by `numpy` index splits), and the
cell means are flattened to ``(N, grid·grid·3)``. It needs no weights, so the walking skeleton and the tests can
compute a Fréchet distance on any machine. It measures colour layout only — it is *not* FID and its numbers are
not comparable to published ones; use the Inception or CLIP extractors for that.
"""

from __future__ import annotations

import numpy as np


class PixelExtractor:
    """Area-pooled RGB features; ``__call__((N, H, W, 3) uint8) -> (N, grid²·3) float64``."""

    weights_sha256: str | None = None

    def __init__(self, grid: int = 4) -> None:
        if grid < 1:
            raise ValueError(f"grid must be >= 1, got {grid}")
        self.grid = grid
        self.dim = grid * grid * 3
        self.extractor_id = f"pixels-g{grid}"

    def __call__(self, images: np.ndarray) -> np.ndarray:
        if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
            raise ValueError(f"expected (N, H, W, 3) uint8 images, got {images.shape} {images.dtype}")
        x = images.astype(np.float64) / 255.0
        n, h, w, _ = x.shape
        rows = np.array_split(np.arange(h), self.grid)
        cols = np.array_split(np.arange(w), self.grid)
        out = np.empty((n, self.grid, self.grid, 3))
        for i, r in enumerate(rows):
            band = x[:, r[0] : r[-1] + 1]
            for j, c in enumerate(cols):
                out[:, i, j] = band[:, :, c[0] : c[-1] + 1].mean(axis=(1, 2))
        return out.reshape(n, self.dim)
