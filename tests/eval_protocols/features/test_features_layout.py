"""The colour-layout extractor: per-cell RGB means on [0, 1], by brute force; sizes that do not divide evenly."""

from __future__ import annotations

import numpy as np
import pytest

from eval_protocols.features.pixels import LayoutExtractor


def test_layout_features_are_cell_means_in_row_major_order(rng: np.random.Generator) -> None:
    images = rng.integers(0, 256, size=(3, 8, 12, 3), dtype=np.uint8)
    extractor = LayoutExtractor(grid=4)
    features = extractor(images)
    assert features.shape == (3, 48) and features.dtype == np.float64 and extractor.dim == 48
    assert extractor.extractor_id == "layout-g4" and extractor.weights_sha256 is None
    want = images.astype(float).reshape(3, 4, 2, 4, 3, 3).mean(axis=(2, 4)).reshape(3, 48) / 255
    assert np.allclose(features, want, atol=1e-12)
    assert 0.0 <= features.min() and features.max() <= 1.0


def test_layout_features_pool_uneven_cells_and_ignore_where_inside_a_cell() -> None:
    image = np.zeros((1, 10, 10, 3), np.uint8)
    image[0, 0, 0] = 255  # top-left cell of a 3x3 grid is 4x4 pixels (array_split: 4, 3, 3)
    features = LayoutExtractor(grid=3)(image).reshape(3, 3, 3)
    assert features[0, 0] == pytest.approx(np.full(3, 1 / 16)) and features[1:, :].max() == 0.0
    moved = np.zeros_like(image)
    moved[0, 3, 3] = 255  # another pixel of the same cell
    assert np.array_equal(LayoutExtractor(grid=3)(moved), LayoutExtractor(grid=3)(image))


def test_layout_extractor_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match="grid must be >= 1"):
        LayoutExtractor(grid=0)
    with pytest.raises(ValueError, match="uint8"):
        LayoutExtractor()(np.zeros((1, 8, 8, 3)))
    with pytest.raises(ValueError, match="cannot be cut into a 4x4 grid"):
        LayoutExtractor()(np.zeros((1, 2, 8, 3), np.uint8))
