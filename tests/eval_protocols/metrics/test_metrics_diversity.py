"""Within-caption diversity: mean pairwise cosine and RMS distance, the Vendi score."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import pdist, squareform

from eval_protocols.metrics.diversity import (
    cosine_distances,
    layout_diversity,
    mean_pairwise_cosine_distance,
    mean_pairwise_rms_distance,
    pairwise_diversity,
    rms_distances,
    vendi,
    vendi_score,
)
from eval_protocols.metrics.registry import MetricInputs, get_metric


def test_vendi_of_identical_points_is_one_and_of_orthogonal_points_is_n(rng: np.random.Generator) -> None:
    point = rng.normal(size=16)
    assert vendi(np.tile(point, (7, 1))) == pytest.approx(1.0, abs=1e-9)
    orthogonal = np.linalg.qr(rng.normal(size=(16, 16)))[0][:, :9].T * rng.uniform(0.5, 3, size=(9, 1))
    assert vendi(orthogonal) == pytest.approx(9.0, rel=1e-9)


def test_vendi_equals_the_dual_eigenvalue_formula(rng: np.random.Generator) -> None:
    x = rng.normal(size=(12, 5))
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    dual = np.linalg.eigvalsh(unit.T @ unit / len(unit))  # X^T X / n has the nonzero eigenvalues of K / n
    dual = dual[dual > 1e-12]
    assert vendi(x) == pytest.approx(float(np.exp(-np.sum(dual * np.log(dual)))), rel=1e-9)
    assert 1.0 < vendi(x) <= 5.0 + 1e-9


def test_pairwise_distance_extremes(rng: np.random.Generator) -> None:
    assert mean_pairwise_cosine_distance(np.tile(rng.normal(size=4), (3, 1))) == pytest.approx(0.0, abs=1e-12)
    assert mean_pairwise_cosine_distance(np.eye(4)) == pytest.approx(1.0)
    x = rng.normal(size=(5, 3))
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    brute = 1 - np.mean([unit[i] @ unit[j] for i in range(5) for j in range(i + 1, 5)])
    assert mean_pairwise_cosine_distance(x) == pytest.approx(brute, rel=1e-12)


def test_per_caption_values_are_averaged_with_equal_weight(rng: np.random.Generator) -> None:
    same = np.tile(rng.normal(size=6), (4, 1))
    orthogonal = np.eye(6)[:2]
    features = np.vstack([same, orthogonal])
    groups = ["cube"] * 4 + ["ball"] * 2
    result = vendi_score(features, groups)
    assert result.details["per_caption"] == pytest.approx({"cube": 1.0, "ball": 2.0})
    assert result.value == pytest.approx(1.5) and result.n == 2
    div = pairwise_diversity(features, groups)
    assert div.details["per_caption"] == pytest.approx({"cube": 0.0, "ball": 1.0})
    assert pairwise_diversity(features).details["n_captions"] == 1  # no groups: one group


def test_fewer_than_two_samples_per_caption_is_a_clear_error(rng: np.random.Generator) -> None:
    with pytest.raises(ValueError, match=r"1 caption\(s\) have fewer than 2 samples \('lonely'\)"):
        vendi_score(rng.normal(size=(3, 4)), ["a", "a", "lonely"])
    with pytest.raises(ValueError, match="one label per feature row"):
        pairwise_diversity(rng.normal(size=(3, 4)), ["a", "a"])


def test_distance_matrices_equal_scipy_pdist(rng: np.random.Generator) -> None:
    x = rng.uniform(size=(9, 48)) + 5.0  # offset: the Gram form must not lose precision far from the origin
    assert np.allclose(rms_distances(x), squareform(pdist(x, "euclidean")) / np.sqrt(48), atol=1e-12, rtol=1e-9)
    assert np.allclose(cosine_distances(x), squareform(pdist(x, "cosine")), atol=1e-12)
    assert mean_pairwise_rms_distance(x) == pytest.approx(pdist(x, "euclidean").mean() / np.sqrt(48), rel=1e-10)
    assert mean_pairwise_cosine_distance(x) == pytest.approx(pdist(x, "cosine").mean(), rel=1e-9)
    assert np.all(np.diag(rms_distances(x)) == 0.0) and rms_distances(np.tile(x[:1], (3, 1))).max() == 0.0


def test_rms_distance_is_on_the_scale_of_the_features() -> None:
    black, white = np.zeros(12), np.ones(12)
    assert mean_pairwise_rms_distance(np.stack([black, white])) == pytest.approx(1.0)  # the largest on [0, 1]
    half = np.r_[np.ones(6), np.zeros(6)]
    assert mean_pairwise_rms_distance(np.stack([black, half])) == pytest.approx(np.sqrt(0.5))
    # cosine sees no difference between two images of one hue at two brightnesses; RMS does
    assert mean_pairwise_cosine_distance(np.stack([0.2 * white, 0.9 * white])) == pytest.approx(0.0, abs=1e-12)
    assert mean_pairwise_rms_distance(np.stack([0.2 * white, 0.9 * white])) == pytest.approx(0.7)


def test_layout_diversity_averages_captions_like_brute_force(rng: np.random.Generator) -> None:
    features = rng.uniform(size=(12, 48))
    groups = np.array(["a"] * 5 + ["b"] * 3 + ["c"] * 4)
    want = {g: pdist(features[groups == g]).mean() / np.sqrt(48) for g in "abc"}
    result = layout_diversity(features, groups)
    assert result.name == "layout_diversity" and result.higher_is_better and result.n == 3
    assert result.details["per_caption"] == pytest.approx(want, rel=1e-10)
    assert result.value == pytest.approx(np.mean(list(want.values())), rel=1e-10)
    (registered,) = get_metric("layout_diversity")(MetricInputs(samples=features, groups=groups))
    assert registered.value == result.value
    with pytest.raises(ValueError, match="fewer than 2 samples"):
        layout_diversity(features[:6], groups[:6])
