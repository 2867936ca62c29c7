"""Precision/recall/density/coverage against a brute-force transcription of the definitions."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from eval_protocols.metrics.prdc import prdc


def _brute(real: np.ndarray, fake: np.ndarray, k_pr: int, k_dc: int) -> dict[str, float]:
    rr, ff, rf = cdist(real, real), cdist(fake, fake), cdist(real, fake)

    def nnd(d: np.ndarray, i: int, k: int) -> float:
        return float(np.sort(np.delete(d[i], i))[k - 1])  # k-th nearest other point

    r_pr = [nnd(rr, i, k_pr) for i in range(len(real))]
    r_dc = [nnd(rr, i, k_dc) for i in range(len(real))]
    f_pr = [nnd(ff, j, k_pr) for j in range(len(fake))]
    n, m = len(real), len(fake)
    precision = np.mean([any(rf[i, j] < r_pr[i] for i in range(n)) for j in range(m)])
    recall = np.mean([any(rf[i, j] < f_pr[j] for j in range(m)) for i in range(n)])
    density = sum(rf[i, j] < r_dc[i] for i in range(n) for j in range(m)) / (k_dc * m)
    coverage = np.mean([min(rf[i]) < r_dc[i] for i in range(n)])
    return {"precision": precision, "recall": recall, "density": density, "coverage": coverage}


@pytest.mark.parametrize("block", [1024, 7])
def test_prdc_equals_brute_force(rng: np.random.Generator, block: int) -> None:
    real = rng.normal(size=(60, 5))
    fake = 1.3 * rng.normal(size=(45, 5)) + 0.3
    results = {r.name: r.value for r in prdc(real, fake, block=block)}
    expected = _brute(real, fake, 3, 5)
    assert list(results) == ["precision", "recall", "density", "coverage"]
    for name, value in expected.items():
        assert results[name] == pytest.approx(value, abs=1e-12), name
    assert 0 < results["precision"] < 1 and 0 < results["coverage"] < 1


def test_prdc_with_other_k(rng: np.random.Generator) -> None:
    real, fake = rng.normal(size=(30, 3)), rng.normal(size=(30, 3))
    results = prdc(real, fake, k_pr=2, k_dc=4)
    expected = _brute(real, fake, 2, 4)
    assert [r.value for r in results] == pytest.approx(list(expected.values()), abs=1e-12)
    assert [r.details["k"] for r in results] == [2, 2, 4, 4]


def test_prdc_bad_input(rng: np.random.Generator) -> None:
    with pytest.raises(ValueError, match="at least 6"):
        prdc(rng.normal(size=(5, 2)), rng.normal(size=(10, 2)))
    with pytest.raises(ValueError, match=">= 1"):
        prdc(rng.normal(size=(10, 2)), rng.normal(size=(10, 2)), k_pr=0)
