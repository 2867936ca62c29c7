"""Linear probe: the optimum against an independent autograd solver, and accuracy on data of known separability."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from eval_protocols.metrics.linear_probe import fit_linear_probe, linear_probe_accuracy


def _clusters(n: int, k: int, d: int, spread: float, seed: int) -> tuple[np.ndarray, list[str]]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, d)) * 4.0
    y = rng.integers(k, size=n)
    return centres[y] + spread * rng.normal(size=(n, d)), [f"c{v}" for v in y]


def _torch_optimum(x: np.ndarray, y: np.ndarray, k: int, l2: float) -> tuple[np.ndarray, np.ndarray, float]:
    """The same objective, minimised by torch's autograd + LBFGS in float64 (independent of the probe's gradient)."""
    z = torch.tensor((x - x.mean(0)) / x.std(0))
    target = torch.tensor(y)
    w = torch.zeros(x.shape[1], k, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(k, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=500, tolerance_grad=1e-10, tolerance_change=1e-15,
                            line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(z @ w + b, target) + 0.5 * l2 * (w**2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach().numpy(), b.detach().numpy(), float(closure().detach())


def test_optimum_matches_an_autograd_solver() -> None:
    x, labels = _clusters(300, 3, 5, spread=3.0, seed=0)  # overlapping: a finite optimum
    probe = fit_linear_probe(x, labels, l2=1e-2)
    y = np.array([probe.classes.index(v) for v in labels])
    w, b, loss = _torch_optimum(x, y, 3, 1e-2)
    assert probe.loss == pytest.approx(loss, abs=1e-9)
    # The bias is identified only up to a constant shift across classes; compare it centred.
    np.testing.assert_allclose(probe.weights, w, atol=1e-4)
    np.testing.assert_allclose(probe.bias - probe.bias.mean(), b - b.mean(), atol=1e-4)


def test_separable_clusters_are_read_perfectly_and_chance_is_the_majority_rate() -> None:
    x, labels = _clusters(600, 4, 8, spread=0.3, seed=1)
    result = linear_probe_accuracy(x[:400], labels[:400], x[400:], labels[400:])
    assert result.accuracy == 1.0
    _, counts = np.unique(labels[400:], return_counts=True)
    assert result.chance == pytest.approx(counts.max() / 200)
    assert (result.n_train, result.n_test, result.classes) == (400, 200, 4)


def test_labels_independent_of_the_features_score_near_chance() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(3000, 6))
    labels = list(rng.integers(4, size=3000))
    result = linear_probe_accuracy(x[:1000], labels[:1000], x[1000:], labels[1000:])
    assert abs(result.accuracy - 0.25) < 4 * np.sqrt(0.25 * 0.75 / 2000)


def test_standardisation_makes_the_probe_blind_to_feature_units() -> None:
    x, labels = _clusters(400, 3, 4, spread=2.0, seed=3)
    scaled = x * np.array([1000.0, 1e-3, 1.0, 7.0]) + 50.0
    a = fit_linear_probe(x, labels)
    b = fit_linear_probe(scaled, labels)
    assert a.predict(x) == b.predict(scaled)
    assert a.loss == pytest.approx(b.loss, rel=1e-6)


@pytest.mark.parametrize(
    ("features", "labels", "message"),
    [
        (np.zeros((3, 2)), ["a", "a", "a"], "at least two classes"),
        (np.zeros((3, 2)), ["a", "b"], "one label per row"),
        (np.full((2, 2), np.nan), ["a", "b"], "NaN"),
    ],
)
def test_bad_training_input_is_one_clear_error(features: np.ndarray, labels: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        fit_linear_probe(features, labels)


def test_bad_l2_and_test_shape_are_refused() -> None:
    x, labels = _clusters(50, 2, 3, spread=1.0, seed=4)
    with pytest.raises(ValueError, match="l2 must be > 0"):
        fit_linear_probe(x, labels, l2=0.0)
    with pytest.raises(ValueError, match=r"test features must be \(N, 3\)"):
        linear_probe_accuracy(x, labels, x[:, :2], labels)
