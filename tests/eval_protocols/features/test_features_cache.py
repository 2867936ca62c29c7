"""The on-disk feature cache: scoring twice extracts once."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from eval_protocols.features.base import sha256_file
from eval_protocols.features.cache import FeatureCache, extract_files


class CountingExtractor:
    extractor_id = "counting:v1"
    dim = 3
    weights_sha256 = None

    def __init__(self) -> None:
        self.images_seen = 0

    def __call__(self, images: np.ndarray) -> np.ndarray:
        self.images_seen += len(images)
        return images.reshape(len(images), -1, 3).mean(axis=1)


def _write_images(folder: Path, rng: np.random.Generator, n: int) -> list[Path]:
    paths = []
    for i in range(n):
        path = folder / f"img{i}.png"
        Image.fromarray(rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def test_second_scoring_reads_the_cache(tmp_path: Path, rng: np.random.Generator) -> None:
    paths = _write_images(tmp_path, rng, 5)
    cache = FeatureCache(tmp_path / "cache")
    extractor = CountingExtractor()
    first = extract_files(extractor, paths, cache, batch_size=2)
    assert extractor.images_seen == 5
    second = extract_files(extractor, paths, FeatureCache(tmp_path / "cache"), batch_size=2)
    assert extractor.images_seen == 5  # nothing re-extracted
    np.testing.assert_array_equal(first, second)
    expected = np.stack([np.asarray(Image.open(p)).reshape(-1, 3).mean(axis=0) for p in paths])
    np.testing.assert_allclose(first, expected, rtol=1e-6)


def test_only_misses_are_extracted(tmp_path: Path, rng: np.random.Generator) -> None:
    paths = _write_images(tmp_path, rng, 4)
    cache = FeatureCache(tmp_path / "cache")
    extractor = CountingExtractor()
    extract_files(extractor, paths[:2], cache)
    features = extract_files(extractor, paths, cache)
    assert extractor.images_seen == 4
    assert cache.hits == 2 and cache.misses == 4
    assert features.shape == (4, 3)


def test_keys_separate_extractors_and_writes_leave_no_temp_files(tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path)
    key = "a" * 64
    cache.put(key, "ext:one", np.ones(3))
    cache.put(key, "ext/two", np.zeros(4))
    np.testing.assert_array_equal(cache.get(key, "ext:one"), np.ones(3, dtype=np.float32))
    np.testing.assert_array_equal(cache.get(key, "ext/two"), np.zeros(4, dtype=np.float32))
    assert cache.get("b" * 64, "ext:one") is None
    assert not list(tmp_path.rglob(".tmp-*"))
    assert {p.read_text().strip() for p in tmp_path.rglob("extractor_id")} == {"ext:one", "ext/two"}


def test_manifest_sha256_is_used_as_key(tmp_path: Path, rng: np.random.Generator) -> None:
    paths = _write_images(tmp_path, rng, 2)
    cache = FeatureCache(tmp_path / "cache")
    keys = [sha256_file(p) for p in paths]
    extract_files(CountingExtractor(), paths, cache, image_sha256s=keys)
    assert cache.path_for(keys[0], CountingExtractor.extractor_id).is_file()
    with pytest.raises(ValueError, match="one per file"):
        extract_files(CountingExtractor(), paths, cache, image_sha256s=keys[:1])


@pytest.mark.parametrize("bad", ["abc", "A" * 64, "../" + "a" * 61])
def test_bad_keys_are_rejected(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ValueError, match="sha256"):
        FeatureCache(tmp_path).path_for(bad, "x")


def test_non_finite_vectors_are_not_cached(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="finite"):
        FeatureCache(tmp_path).put("c" * 64, "x", np.array([1.0, np.nan]))


def test_non_finite_features_name_the_image(tmp_path: Path, rng: np.random.Generator) -> None:
    class NanOnSecond(CountingExtractor):
        def __call__(self, images: np.ndarray) -> np.ndarray:
            out = super().__call__(images)
            out[1:2] = np.nan
            return out

    paths = _write_images(tmp_path, rng, 3)
    with pytest.raises(ValueError, match="img1.png"):
        extract_files(NanOnSecond(), paths, FeatureCache(tmp_path / "cache"))
