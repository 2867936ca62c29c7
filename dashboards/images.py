"""Blinded stimuli: image files → one re-encoded PNG per side, served inline as a ``data:`` URI.

Blinding rules (issue 5, item 3): an annotator must not learn which system made an image from anything they can
inspect. So a side's image (or its ``rows × cols`` grid) is decoded, composed and resized **server-side** to the
same square size for both sides, and re-encoded as a fresh RGB PNG without any metadata chunks (a generator's PNG
text chunks could name the model). The browser receives only ``data:image/png;base64,...``: no URL, no file name,
no sha256.

Upscaling uses nearest-neighbour (whole pixels stay visible, which is what a photorealism judge looks at);
downscaling uses Lanczos. Both sides of an item get the same treatment.
"""

from __future__ import annotations

import base64
import functools
import io
from collections.abc import Sequence

from PIL import Image

DISPLAY_PX = 512
"""Side length in pixels of each side's stimulus as sent to the browser (both sides identical)."""

GRID_GAP_PX = 4
"""White gap between grid cells, in pixels of the composed grid before resizing."""


def compose(images: Sequence[Image.Image], grid: tuple[int, int] | None) -> Image.Image:
    """Tile ``rows × cols`` images into one (or return the single image), RGB, row-major.

    Args:
        images: decoded images; exactly ``rows * cols`` of them for a grid, one otherwise.
        grid: ``(rows, cols)`` or ``None``.

    Returns:
        An RGB image; a grid's cells all take the first image's size, separated by `GRID_GAP_PX` of white.

    Raises:
        ValueError: the number of images does not fill the grid.
    """
    if grid is None:
        if len(images) != 1:
            raise ValueError(f"one image per side expected, got {len(images)}; the study item is malformed")
        return images[0].convert("RGB")
    rows, cols = grid
    if len(images) != rows * cols:
        raise ValueError(f"a {rows}x{cols} grid needs {rows * cols} images, got {len(images)}; the item is malformed")
    w, h = images[0].size
    canvas = Image.new("RGB", (cols * w + (cols - 1) * GRID_GAP_PX, rows * h + (rows - 1) * GRID_GAP_PX), "white")
    for k, img in enumerate(images):
        r, c = divmod(k, cols)
        cell = img.convert("RGB")
        if cell.size != (w, h):
            cell = cell.resize((w, h), Image.Resampling.LANCZOS)
        canvas.paste(cell, (c * (w + GRID_GAP_PX), r * (h + GRID_GAP_PX)))
    return canvas


def fit_square(image: Image.Image, size: int = DISPLAY_PX) -> Image.Image:
    """Resize to fit a ``size × size`` square (aspect kept, padded with white), nearest up / Lanczos down."""
    w, h = image.size
    scale = size / max(w, h)
    new = (max(1, round(w * scale)), max(1, round(h * scale)))
    resample = Image.Resampling.NEAREST if scale >= 1 else Image.Resampling.LANCZOS
    resized = image.resize(new, resample)
    if new == (size, size):
        return resized
    canvas = Image.new("RGB", (size, size), "white")
    canvas.paste(resized, ((size - new[0]) // 2, (size - new[1]) // 2))
    return canvas


def png_data_uri(image: Image.Image) -> str:
    """``data:image/png;base64,...`` of a freshly encoded RGB PNG carrying no metadata chunks."""
    buf = io.BytesIO()
    image.convert("RGB").save(buf, format="PNG", optimize=False)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


@functools.lru_cache(maxsize=256)
def stimulus_uri(paths: tuple[str, ...], grid: tuple[int, int] | None, size: int = DISPLAY_PX) -> str:
    """The blinded ``data:`` URI of one side: files decoded, composed into the grid, fit to ``size``, re-encoded.

    Images are content-addressed (a path names a sha256), so caching by path never serves stale pixels; the
    cache holds rendered stimuli only, never store reads.

    Raises:
        OSError: a file is missing or not an image.
        ValueError: the count does not fill the grid.
    """
    decoded = []
    for path in paths:
        with Image.open(path) as img:
            img.load()
            decoded.append(img.copy())
    return png_data_uri(fit_square(compose(decoded, grid), size))
