"""Linear probe: how much of a label a feature space carries linearly (multinomial logistic regression).

Given features x_n ∈ R^D with labels y_n ∈ {1..K}, standardise each feature with the *training* mean μ and
standard deviation σ (x̃ = (x − μ)/σ, σ floored at 1e-12) and minimise the convex objective

    L(W, b) = (1/N) Σ_n −log softmax(x̃_n W + b)[y_n] + (λ/2) ‖W‖²_F,      W: (D, K), b: (K,)

with L-BFGS (scipy) and the analytic gradient ∂L/∂W = x̃ᵀ (P − Y)/N + λW, ∂L/∂b = mean_n (P − Y), P the softmax
and Y the one-hot labels. λ > 0 makes the optimum unique, so the probe is deterministic. Test accuracy is the
fraction of held-out rows whose arg-max class is their label; ``chance`` is the majority-class rate of the test
labels (what a constant guess scores), not 1/K.

This is the standard representation probe (Alain & Bengio 2016; CLIP's linear-probe tables): used here to ask
whether a CLIP image embedding z_i encodes an attribute (shape, colour, size) at all, which bounds what a decoder
conditioned on z_i can reproduce.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import minimize


@dataclass(frozen=True)
class LinearProbe:
    """A fitted probe.

    Attributes:
        weights: (D, K) float64.
        bias: (K,) float64.
        mean: (D,) training feature means μ.
        scale: (D,) training feature standard deviations σ (floored).
        classes: the K labels, in column order.
        loss: final objective value L(W, b).
    """

    weights: np.ndarray
    bias: np.ndarray
    mean: np.ndarray
    scale: np.ndarray
    classes: tuple[Any, ...]
    loss: float

    def logits(self, features: np.ndarray) -> np.ndarray:
        """(N, K) logits of (N, D) features."""
        logits: np.ndarray = _standardise(features, self.mean, self.scale) @ self.weights + self.bias
        return logits

    def predict(self, features: np.ndarray) -> list[Any]:
        """The arg-max label of each of (N, D) features."""
        return [self.classes[k] for k in self.logits(features).argmax(axis=1)]


@dataclass(frozen=True)
class ProbeResult:
    """Held-out accuracy of a linear probe.

    Attributes:
        accuracy: fraction of test rows classified right, in [0, 1].
        chance: majority-class rate of the test labels, in (0, 1].
        n_train: training rows.
        n_test: test rows.
        classes: number of classes K.
    """

    accuracy: float
    chance: float
    n_train: int
    n_test: int
    classes: int


def fit_linear_probe(
    features: np.ndarray, labels: Sequence[Any], l2: float = 1e-3, max_iter: int = 2000
) -> LinearProbe:
    """Fit the L2-regularised multinomial logistic regression of the module docstring.

    Args:
        features: (N, D) real features, finite.
        labels: N labels of at least two distinct values (any sortable type: str, int).
        l2: λ > 0.
        max_iter: L-BFGS iteration cap.

    Raises:
        ValueError: shapes disagree, fewer than two classes, non-finite features, or λ ≤ 0.
    """
    x, y, classes = _check(features, labels)
    if l2 <= 0:
        raise ValueError(f"l2 must be > 0 (it makes the optimum unique), got {l2}")
    mean = x.mean(axis=0)
    scale = np.maximum(x.std(axis=0), 1e-12)
    z = _standardise(x, mean, scale)
    n, d = z.shape
    k = len(classes)
    onehot = np.zeros((n, k))
    onehot[np.arange(n), y] = 1.0

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        weights, bias = theta[: d * k].reshape(d, k), theta[d * k :]
        logits = z @ weights + bias
        logits -= logits.max(axis=1, keepdims=True)
        log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        loss = -float((onehot * log_p).sum()) / n + 0.5 * l2 * float((weights**2).sum())
        residual = (np.exp(log_p) - onehot) / n
        grad_w = z.T @ residual + l2 * weights
        return loss, np.concatenate([grad_w.ravel(), residual.sum(axis=0)])

    solution = minimize(
        objective, np.zeros(d * k + k), jac=True, method="L-BFGS-B", options={"maxiter": max_iter, "gtol": 1e-9}
    )
    theta = solution.x
    return LinearProbe(
        weights=theta[: d * k].reshape(d, k),
        bias=theta[d * k :],
        mean=mean,
        scale=scale,
        classes=classes,
        loss=float(solution.fun),
    )


def linear_probe_accuracy(
    train_features: np.ndarray,
    train_labels: Sequence[Any],
    test_features: np.ndarray,
    test_labels: Sequence[Any],
    l2: float = 1e-3,
) -> ProbeResult:
    """Fit on the training rows, score on the test rows (labels unseen in training count as errors)."""
    probe = fit_linear_probe(train_features, train_labels, l2=l2)
    test = np.asarray(test_features, dtype=np.float64)
    truth = list(test_labels)
    if test.ndim != 2 or test.shape[0] != len(truth) or test.shape[1] != probe.weights.shape[0]:
        raise ValueError(
            f"test features must be (N, {probe.weights.shape[0]}) with one label per row, got {test.shape} "
            f"and {len(truth)} labels"
        )
    if not truth:
        raise ValueError("no test rows")
    predicted = probe.predict(test)
    _, counts = np.unique(np.asarray(truth, dtype=object).astype(str), return_counts=True)
    return ProbeResult(
        accuracy=float(np.mean([p == t for p, t in zip(predicted, truth, strict=True)])),
        chance=float(counts.max() / len(truth)),
        n_train=len(train_labels),
        n_test=len(truth),
        classes=len(probe.classes),
    )


def _standardise(features: np.ndarray, mean: np.ndarray, scale: np.ndarray) -> np.ndarray:
    result: np.ndarray = (np.asarray(features, dtype=np.float64) - mean) / scale
    return result


def _check(features: np.ndarray, labels: Sequence[Any]) -> tuple[np.ndarray, np.ndarray, tuple[Any, ...]]:
    """(N, D) float64 features, (N,) class indices, the sorted classes."""
    x = np.asarray(features, dtype=np.float64)
    values = list(labels)
    if x.ndim != 2 or x.shape[0] != len(values):
        raise ValueError(f"features must be (N, D) with one label per row, got {x.shape} and {len(values)} labels")
    if not np.isfinite(x).all():
        raise ValueError("features contain NaN or infinity")
    classes = tuple(sorted(set(values)))
    if len(classes) < 2:
        raise ValueError(f"a probe needs at least two classes, got {list(classes)}")
    index = {c: k for k, c in enumerate(classes)}
    return x, np.array([index[v] for v in values]), classes
