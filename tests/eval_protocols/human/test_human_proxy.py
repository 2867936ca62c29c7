"""The vote-trained preference proxy: fit against a brute-force optimum, CV accuracy vs the majority baseline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import minimize

from eval_protocols.human.proxy import PreferenceProxy, cross_validate, fit_proxy, fit_weights, training_rows


def separable(n: int, dim: int, seed: int, noise: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    w = rng.standard_normal(dim)
    a, b = rng.standard_normal((n, dim)), rng.standard_normal((n, dim))
    margin = (a - b) @ w + noise * rng.standard_normal(n)
    return a, b, (margin > 0).astype(float)


def test_cv_accuracy_beats_majority_on_separable_votes() -> None:
    a, b, s = separable(400, 8, seed=1, noise=0.5)
    cv = cross_validate(a, b, s, k=5, seed=0)
    assert cv.n_decisive == 400 and len(cv.fold_accuracy) == 5
    assert cv.accuracy > 0.85 and cv.accuracy > cv.baseline + 0.25


def test_cv_accuracy_is_near_baseline_on_noise() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((600, 8)), rng.standard_normal((600, 8))
    s = rng.choice([0.0, 1.0], size=600)
    cv = cross_validate(a, b, s, k=5, seed=0)
    assert abs(cv.accuracy - cv.baseline) < 0.08
    assert abs(cv.accuracy - 0.5) < 0.08


def test_fit_matches_direct_minimisation_with_ties_half() -> None:
    rng = np.random.default_rng(5)
    d = rng.standard_normal((60, 3))
    s = rng.choice([0.0, 0.5, 1.0], size=60)
    x, y, w = training_rows(d, s, "half")
    got = fit_weights(x, y, w, C=0.7)

    def objective(v: np.ndarray) -> float:  # ties as y = ½ on both orientations, written independently
        z = d @ v
        ll = s * np.log(1 / (1 + np.exp(-z))) + (1 - s) * np.log(1 / (1 + np.exp(z)))
        return float(-2 * ll.sum() + 0.5 * v @ v / 0.7)

    ref = minimize(objective, np.zeros(3), method="Nelder-Mead", options={"xatol": 1e-9, "fatol": 1e-12,
                                                                          "maxiter": 20000}).x
    np.testing.assert_allclose(got, ref, atol=1e-4)


def test_mirroring_makes_the_proxy_antisymmetric_and_ties_drop() -> None:
    a, b, s = separable(100, 4, seed=2)
    s[:10] = 0.5
    proxy = fit_proxy(a, b, s, ties="drop")
    assert proxy.n_votes == 90
    p = proxy.prefer_probability(a, b)
    np.testing.assert_allclose(p + proxy.prefer_probability(b, a), 1.0)
    assert np.mean((p[10:] < 0.5) == (s[10:] == 1.0)) > 0.9  # P(prefer b over a) < ½ exactly when a won


def test_save_load_roundtrip(tmp_path: Path) -> None:
    a, b, s = separable(80, 5, seed=4)
    proxy = fit_proxy(a, b, s, protocol="photorealism", feature_id="toy", C=2.0)
    proxy.save(tmp_path / "proxy")
    back = PreferenceProxy.load(tmp_path / "proxy.json")
    np.testing.assert_array_equal(back.weights, proxy.weights)
    assert (back.protocol, back.feature_id, back.C, back.n_votes) == ("photorealism", "toy", 2.0, 80)
    np.testing.assert_allclose(back.utility(a), proxy.utility(a))


def test_bad_inputs_raise_clear_errors() -> None:
    a, b, s = separable(10, 3, seed=0)
    with pytest.raises(ValueError, match="scores must be"):
        fit_proxy(a, b, s * 2)
    with pytest.raises(ValueError, match="shape"):
        fit_proxy(a, b[:, :2], s)
    with pytest.raises(ValueError, match="k >= 2"):
        cross_validate(a, b, s, k=20)
    with pytest.raises(ValueError, match="train one first"):
        PreferenceProxy.load("/nonexistent/proxy")


def test_grouped_folds_keep_groups_together() -> None:
    from eval_protocols.human.proxy import fold_ids

    groups = [f"g{i // 4}" for i in range(40)]
    folds = fold_ids(40, 5, seed=1, groups=groups)
    for g in set(groups):
        assert len({folds[i] for i in range(40) if groups[i] == g}) == 1
