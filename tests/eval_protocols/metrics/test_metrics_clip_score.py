"""CLIP score (per-sample clamp, then mean) and CLIP R-precision."""

from __future__ import annotations

import numpy as np
import pytest

from eval_protocols.metrics.clip_score import clip_r_precision, clip_r_precision_hits, clip_score


def test_clip_score_equals_the_formula(rng: np.random.Generator) -> None:
    images, texts = rng.normal(size=(30, 16)), rng.normal(size=(30, 16))
    cos = np.array([a @ b / np.linalg.norm(a) / np.linalg.norm(b) for a, b in zip(images, texts, strict=True)])
    expected = np.mean([100 * max(c, 0.0) for c in cos])
    result = clip_score(images, texts)
    assert result.value == pytest.approx(expected, rel=1e-12)
    assert (cos < 0).any()  # the clamp was exercised, and differs from torchmetrics' clamp of the mean
    assert result.value != pytest.approx(max(100 * cos.mean(), 0.0))
    np.testing.assert_allclose(result.details["per_sample"], 100 * np.maximum(cos, 0), rtol=1e-12)
    assert result.n == 30 and result.higher_is_better


def test_clip_score_needs_one_caption_per_image(rng: np.random.Generator) -> None:
    with pytest.raises(ValueError, match="one caption per image"):
        clip_score(rng.normal(size=(3, 4)), rng.normal(size=(2, 4)))


def test_r_precision_with_all_captions_is_top1_retrieval(rng: np.random.Generator) -> None:
    captions = rng.normal(size=(10, 8))
    index = rng.integers(0, 10, 60)
    images = captions[index] + 1.2 * rng.normal(size=(60, 8))
    unit_i = images / np.linalg.norm(images, axis=1, keepdims=True)
    unit_c = captions / np.linalg.norm(captions, axis=1, keepdims=True)
    brute = np.mean([np.argmax(unit_c @ img) == true for img, true in zip(unit_i, index, strict=True)])
    assert clip_r_precision(images, captions, index, k=10).value == pytest.approx(brute)
    assert 0 < brute < 1


def test_r_precision_extremes_and_seeding(rng: np.random.Generator) -> None:
    captions = np.eye(40)
    index = np.arange(40)
    assert clip_r_precision(captions, captions, index, k=32).value == 1.0
    wrong = (index + 1) % 40
    assert clip_r_precision(captions[wrong], captions, index, k=40).value == 0.0
    noisy = captions + 0.6 * rng.normal(size=(40, 40))
    a = clip_r_precision_hits(noisy, captions, index, k=8, seed=1)
    np.testing.assert_array_equal(a, clip_r_precision_hits(noisy, captions, index, k=8, seed=1))


def test_r_precision_clamps_k_and_checks_input(rng: np.random.Generator) -> None:
    with pytest.warns(UserWarning, match="using k = 5"):
        result = clip_r_precision(rng.normal(size=(4, 3)), rng.normal(size=(5, 3)), np.arange(4), k=32)
    assert result.details["k"] == 5
    with pytest.raises(ValueError, match="at least 2 distinct captions"):
        clip_r_precision(rng.normal(size=(2, 3)), rng.normal(size=(1, 3)), np.zeros(2))
    with pytest.raises(ValueError, match="caption_index"):
        clip_r_precision(rng.normal(size=(2, 3)), rng.normal(size=(3, 3)), np.array([0, 3]))
