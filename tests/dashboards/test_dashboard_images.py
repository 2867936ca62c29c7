"""Blinded stimuli: grid composition, equal size for both sides, and no metadata left in the PNG."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from dashboards.images import DISPLAY_PX, GRID_GAP_PX, compose, display_scale, fit_square, item_stimuli


def _solid(value: int, size: int = 8) -> Image.Image:
    return Image.fromarray(np.full((size, size, 3), value, dtype=np.uint8))


def _decode(uri: str) -> Image.Image:
    assert uri.startswith("data:image/png;base64,")
    img = Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))
    img.load()
    return img


def test_compose_grid_is_row_major_with_gaps() -> None:
    cells = [_solid(10 * k) for k in range(6)]
    grid = compose(cells, (2, 3))
    assert grid.size == (3 * 8 + 2 * GRID_GAP_PX, 2 * 8 + GRID_GAP_PX)
    px = np.asarray(grid)
    for k in range(6):
        r, c = divmod(k, 3)
        y, x = r * (8 + GRID_GAP_PX), c * (8 + GRID_GAP_PX)
        assert (px[y : y + 8, x : x + 8] == 10 * k).all()
    assert (px[:, 8 : 8 + GRID_GAP_PX] == 255).all()  # white gap between columns


def test_compose_rejects_a_wrong_count() -> None:
    with pytest.raises(ValueError, match="needs 16 images"):
        compose([_solid(0)] * 15, (4, 4))
    with pytest.raises(ValueError, match="one image per side"):
        compose([_solid(0)] * 2, None)


def test_fit_square_keeps_pixels_and_pads() -> None:
    src = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    up = np.asarray(fit_square(Image.fromarray(src), 64))
    assert up.shape == (64, 64, 3)
    assert (up[::8, ::8] == src).all()  # nearest-neighbour upscaling by 8
    wide = fit_square(Image.new("RGB", (20, 10), "black"), 40)
    assert wide.size == (40, 40)
    arr = np.asarray(wide)
    assert (arr[:10] == 255).all() and (arr[10:30] == 0).all()  # letterboxed in white


def test_item_stimuli_same_size_both_sides_and_no_metadata(tmp_path: Path) -> None:
    paths = []
    for name, size in (("a", 32), ("b", 64)):
        info = PngImagePlugin.PngInfo()
        info.add_text("model", f"secret-model-{name}")
        path = tmp_path / f"{name}.png"
        Image.new("RGB", (size, size), "red").save(path, pnginfo=info)
        assert Image.open(path).text  # the source carries a tell-tale chunk
        paths.append(str(path))
    stimuli = item_stimuli((paths[0],), (paths[1],), None)
    left, right = _decode(stimuli.left), _decode(stimuli.right)
    assert left.size == right.size == (64, 64) == (stimuli.size, stimuli.size)  # the larger side's native size
    assert stimuli.display_px == 512  # shown 8× by the browser, whole pixels
    assert left.mode == right.mode == "RGB"
    assert not getattr(left, "text", {}) and not right.info.get("model")
    for uri in (stimuli.left, stimuli.right):
        raw = base64.b64decode(uri.split(",", 1)[1])
        assert b"secret-model" not in raw and b"tEXt" not in raw
    assert item_stimuli((paths[0],), (paths[1],), None) is stimuli  # encoded once per item


def test_item_stimuli_grid_and_large_sources(tmp_path: Path) -> None:
    paths = []
    for k in range(16):
        path = tmp_path / f"{k}.png"
        _solid(k * 15, 16).save(path)
        paths.append(str(path))
    stimuli = item_stimuli(tuple(paths), tuple(reversed(paths)), (4, 4))
    side = 4 * 16 + 3 * GRID_GAP_PX
    assert _decode(stimuli.left).size == _decode(stimuli.right).size == (side, side)
    assert stimuli.display_px == side * display_scale(side) and stimuli.display_px % side == 0
    big = tmp_path / "big.png"
    Image.new("RGB", (1024, 1024), "blue").save(big)
    large = item_stimuli((str(big),), (paths[0],), None)
    assert _decode(large.left).size == _decode(large.right).size == (DISPLAY_PX, DISPLAY_PX)
    with pytest.raises(OSError):
        item_stimuli((str(tmp_path / "missing.png"),), (paths[0],), None)


def test_display_scale_is_the_nearest_whole_factor() -> None:
    assert [display_scale(s) for s in (64, 76, 128, 268, 512, 1024)] == [8, 7, 4, 2, 1, 1]
