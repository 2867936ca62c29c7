"""Blinded stimuli: image files → one re-encoded PNG per side, served inline as a ``data:`` URI.

Blinding rules (issue 5, item 3): an annotator must not learn which system made an image from anything they can
inspect. So a side's image (or its ``rows × cols`` grid) is decoded and composed **server-side**, both sides are
brought to the same square size (the larger side's native size, at most `DISPLAY_PX`), and re-encoded as fresh RGB
PNGs without any metadata chunks (a generator's PNG text chunks could name the model). The browser receives only
``data:image/png;base64,...``: no URL, no file name, no sha256.

Speed (issue 14): the PNGs keep native pixels (a 64×64 toy render stays 64×64) and the page scales them up by a
whole factor with CSS ``image-rendering: pixelated``, which shows the same whole pixels a server-side
nearest-neighbour upscale would, for a fraction of the bytes and encoding time; `item_stimuli` encodes an item's
two sides once and caches them. Downscaling (sources above `DISPLAY_PX`) uses Lanczos. Both sides of an item always
get the same treatment.
"""

from __future__ import annotations

import base64
import functools
import io
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image

DISPLAY_PX = 512
"""Largest side length, in pixels, of a stimulus as sent to the browser, and the CSS size stimuli are scaled up
towards (by a whole factor, see `display_scale`)."""

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
    image.convert("RGB").save(buf, format="PNG", compress_level=1)  # 4× faster to encode than 6, ~30 % larger
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


@dataclass(frozen=True)
class Stimuli:
    """The two blinded sides of one item, ready for the page.

    Attributes:
        left: ``data:`` URI of the left side's PNG (``size × size``, RGB, no metadata).
        right: the same for the right side.
        size: side length in pixels of both PNGs: the larger side's native (composed) size, at most `DISPLAY_PX`.
        display_px: CSS pixels to show both at: ``size × display_scale(size)``, a whole multiple of ``size``, so
            that the browser's nearest-neighbour upscaling (``image-rendering: pixelated``) draws every source
            pixel as an equal square (a 64×64 render at 512 px, a 4×4 grid of 64×64 renders, 268 px, at 536).
    """

    left: str
    right: str
    size: int
    display_px: int


def display_scale(size: int, target: int = DISPLAY_PX) -> int:
    """The whole factor a ``size``-pixel stimulus is shown at: ``max(1, round(target / size))``, the whole factor
    that brings it closest to ``target`` CSS pixels. E.g. 64 → 8 (512 px), 268 → 2 (536 px), 512 → 1."""
    return max(1, round(target / max(1, size)))


def _load(paths: Sequence[str]) -> list[Image.Image]:
    decoded = []
    for path in paths:
        with Image.open(path) as img:
            img.load()
            decoded.append(img.copy())
    return decoded


@functools.lru_cache(maxsize=512)
def item_stimuli(left: tuple[str, ...], right: tuple[str, ...], grid: tuple[int, int] | None) -> Stimuli:
    """Both blinded sides of an item, encoded once per item (cached by file paths).

    Each side's files are decoded and composed into the grid (or taken alone); both sides are fit to the same
    square, the larger side's native size capped at `DISPLAY_PX` (nearest up, Lanczos down), and re-encoded as
    fresh metadata-free PNGs. Sending native pixels (a 64×64 render is ~5 KiB, a 4×4 grid ~40 KiB) and letting the
    browser scale them by a whole factor keeps the page fast; blinding is as before: same size and format on both
    sides, no URL, no file name, no metadata. Files are content-addressed (a path names a sha256), so caching by
    path never serves stale pixels; no store read is cached.

    Raises:
        OSError: a file is missing or not an image.
        ValueError: a side's count does not fill the grid.
    """
    sides = [compose(_load(paths), grid) for paths in (left, right)]
    size = min(DISPLAY_PX, max(max(side.size) for side in sides))
    uris = [png_data_uri(fit_square(side, size)) for side in sides]
    return Stimuli(uris[0], uris[1], size, size * display_scale(size))
