"""Image conversion rules and batched streaming extraction."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from eval_protocols.features.base import FeatureExtractor, extract, iter_features, to_uint8_rgb


class MeanColour:
    """A dummy extractor: per-image mean RGB; records the batch shapes it was called with."""

    extractor_id = "mean-colour"
    dim = 3
    weights_sha256 = None

    def __init__(self) -> None:
        self.calls: list[tuple[int, ...]] = []

    def __call__(self, images: np.ndarray) -> np.ndarray:
        self.calls.append(images.shape)
        return images.reshape(len(images), -1, 3).mean(axis=1)


def test_dummy_satisfies_protocol() -> None:
    assert isinstance(MeanColour(), FeatureExtractor)


def test_grayscale_is_repeated_to_three_channels() -> None:
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4)
    rgb = to_uint8_rgb(gray)
    assert rgb.shape == (3, 4, 3) and rgb.dtype == np.uint8
    for c in range(3):
        np.testing.assert_array_equal(rgb[:, :, c], gray)
    np.testing.assert_array_equal(to_uint8_rgb(gray[:, :, None]), rgb)


def test_rgba_is_composited_on_white() -> None:
    rgba = np.array([[[200, 0, 100, 255], [200, 0, 100, 0], [0, 0, 0, 128]]], dtype=np.uint8)
    rgb = to_uint8_rgb(rgba)
    alpha = 128 / 255
    expected_half = np.rint(0 * alpha + 255 * (1 - alpha))
    np.testing.assert_array_equal(rgb[0, 0], [200, 0, 100])  # opaque: unchanged
    np.testing.assert_array_equal(rgb[0, 1], [255, 255, 255])  # transparent: white, not the hidden colour
    np.testing.assert_array_equal(rgb[0, 2], [expected_half] * 3)


def test_float_images_are_rounded_not_truncated() -> None:
    values = np.arange(256) / 255.0
    image = np.repeat(values.reshape(16, 16, 1), 3, axis=2)
    np.testing.assert_array_equal(to_uint8_rgb(image)[:, :, 0].ravel(), np.arange(256))
    assert to_uint8_rgb(np.full((1, 1, 3), 0.999 / 255))[0, 0, 0] == 1  # truncation would give 0


def test_pil_modes_are_converted() -> None:
    palette = Image.new("P", (5, 4))
    palette.putpalette([10, 20, 30] * 256)
    assert to_uint8_rgb(palette).shape == (4, 5, 3)
    np.testing.assert_array_equal(to_uint8_rgb(palette)[0, 0], [10, 20, 30])
    la = Image.new("LA", (2, 2), (50, 0))
    np.testing.assert_array_equal(to_uint8_rgb(la)[0, 0], [255, 255, 255])


@pytest.mark.parametrize(
    ("image", "match"),
    [
        (np.zeros((2, 2, 2), dtype=np.uint8), "shape"),
        (np.full((2, 2, 3), 1.5), r"outside \[0, 1\]"),
        (np.full((2, 2, 3), 300, dtype=np.int32), r"not \[0, 255\]"),
    ],
)
def test_bad_images_raise_value_error(image: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        to_uint8_rgb(image)


def test_iter_features_batches_by_size_and_count_in_order(rng: np.random.Generator) -> None:
    sizes = [(8, 8)] * 5 + [(6, 10)] * 2 + [(8, 8)]
    images = [rng.integers(0, 256, (*s, 3), dtype=np.uint8) for s in sizes]
    extractor = MeanColour()
    features = extract(extractor, iter(images), batch_size=2)
    assert [c[:3] for c in extractor.calls] == [(2, 8, 8), (2, 8, 8), (1, 8, 8), (2, 6, 10), (1, 8, 8)]
    expected = np.stack([im.reshape(-1, 3).mean(axis=0) for im in images])
    np.testing.assert_allclose(features, expected, rtol=1e-6)


def test_extract_of_nothing_is_empty() -> None:
    assert extract(MeanColour(), [], batch_size=4).shape == (0, 3)


def test_extractor_with_wrong_output_shape_is_reported() -> None:
    class Broken(MeanColour):
        def __call__(self, images: np.ndarray) -> np.ndarray:
            return np.zeros((len(images), 5))

    with pytest.raises(ValueError, match="returned shape"):
        list(iter_features(Broken(), [np.zeros((2, 2, 3), dtype=np.uint8)]))


def test_batch_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        list(iter_features(MeanColour(), [], batch_size=0))
