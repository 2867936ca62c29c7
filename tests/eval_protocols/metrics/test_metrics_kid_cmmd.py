"""KID (vs torchmetrics, unbiasedness) and CMMD (vs a brute-force formula)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist
from torchmetrics.image.kid import KernelInceptionDistance, poly_mmd

from eval_protocols.metrics.cmmd import cmmd
from eval_protocols.metrics.kid import kernel_inception_distance, mmd2_unbiased, polynomial_kernel


class _Identity(torch.nn.Module):
    num_features = 16

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def test_kid_single_subset_equals_torchmetrics_poly_mmd(rng: np.random.Generator) -> None:
    x, y = rng.normal(size=(120, 16)), rng.normal(size=(120, 16)) + 0.3
    ours = kernel_inception_distance(x, y, subsets=3, subset_size=120).value  # every subset is the whole set
    expected = float(poly_mmd(torch.from_numpy(x), torch.from_numpy(y)))
    assert ours == pytest.approx(expected, rel=1e-10)


@pytest.mark.filterwarnings("ignore:Metric `Kernel Inception Distance` will save")
def test_kid_equals_torchmetrics_metric_when_subsets_cover_the_sets(rng: np.random.Generator) -> None:
    x, y = rng.normal(size=(80, 16)), 1.1 * rng.normal(size=(80, 16))
    metric = KernelInceptionDistance(feature=_Identity(), subsets=4, subset_size=80)
    metric.update(torch.from_numpy(x), real=True)
    metric.update(torch.from_numpy(y), real=False)
    expected_mean, _ = metric.compute()
    ours = kernel_inception_distance(x, y, subsets=4, subset_size=80)
    assert ours.value == pytest.approx(float(expected_mean), rel=1e-6)


def test_unequal_subset_sizes_use_the_unbiased_formula(rng: np.random.Generator) -> None:
    x, y = rng.normal(size=(7, 3)), rng.normal(size=(5, 3))
    k_xx, k_yy, k_xy = (polynomial_kernel(a, b) for a, b in ((x, x), (y, y), (x, y)))
    brute = (
        sum(k_xx[i, j] for i in range(7) for j in range(7) if i != j) / 42
        + sum(k_yy[i, j] for i in range(5) for j in range(5) if i != j) / 20
        - 2 * k_xy.sum() / 35
    )
    assert mmd2_unbiased(k_xx, k_yy, k_xy) == pytest.approx(brute, rel=1e-12)
    result = kernel_inception_distance(x, y, subsets=2, subset_size=100)
    assert result.details["subset_size_reference"] == 7 and result.details["subset_size_samples"] == 5


def test_kid_is_about_zero_for_one_distribution_and_positive_for_two(rng: np.random.Generator) -> None:
    same = kernel_inception_distance(
        rng.normal(size=(600, 32)), rng.normal(size=(600, 32)), subsets=20, subset_size=200, seed=1
    )
    shifted = kernel_inception_distance(
        rng.normal(size=(600, 32)), rng.normal(size=(600, 32)) + 0.5, subsets=20, subset_size=200, seed=1
    )
    assert abs(same.value) < 3 * same.details["std"]
    assert shifted.value > 10 * same.details["std"] > 0


def test_kid_is_seeded(rng: np.random.Generator) -> None:
    x, y = rng.normal(size=(50, 4)), rng.normal(size=(60, 4))
    a = kernel_inception_distance(x, y, subsets=5, subset_size=20, seed=3)
    b = kernel_inception_distance(x, y, subsets=5, subset_size=20, seed=3)
    c = kernel_inception_distance(x, y, subsets=5, subset_size=20, seed=4)
    assert a == b and a.value != c.value


def test_kid_bad_input(rng: np.random.Generator) -> None:
    with pytest.raises(ValueError, match="subsets >= 1"):
        kernel_inception_distance(rng.normal(size=(5, 2)), rng.normal(size=(5, 2)), subsets=0)
    with pytest.raises(ValueError, match="at least 2"):
        kernel_inception_distance(rng.normal(size=(1, 2)), rng.normal(size=(5, 2)))


def _cmmd_brute(x: np.ndarray, y: np.ndarray, sigma: float = 10.0) -> float:
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    y = y / np.linalg.norm(y, axis=1, keepdims=True)

    def k(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.exp(-cdist(a, b, "sqeuclidean") / (2 * sigma**2)).mean())

    return 1000 * (k(x, x) + k(y, y) - 2 * k(x, y))


def test_cmmd_equals_the_official_formula(rng: np.random.Generator) -> None:
    x, y = rng.normal(size=(70, 8)), rng.normal(size=(50, 8)) + 0.4
    assert cmmd(x, y).value == pytest.approx(_cmmd_brute(x, y), rel=1e-9)
    from eval_protocols.metrics.cmmd import gaussian_kernel_mean

    assert gaussian_kernel_mean(x, y, block=7) == pytest.approx(gaussian_kernel_mean(x, y), rel=1e-12)


def test_cmmd_of_identical_sets_is_zero_and_grows_with_a_shift(rng: np.random.Generator) -> None:
    x = rng.normal(size=(40, 8))
    assert cmmd(x, x).value == pytest.approx(0.0, abs=1e-9)
    assert cmmd(x, x + 2.0).value > cmmd(x, x + 0.5).value > 0
