"""Improved precision/recall (Kynkäänniemi et al. 2019, k = 3) and density/coverage (Naeem et al. 2020, k = 5).

With real (reference) features X_1..X_N, fake (sample) features Y_1..Y_M, Euclidean distance d, and NND_k(X_i) the
distance from X_i to its k-th nearest other real point (likewise NND_k(Y_j) among fakes):

    precision = (1/M) sum_j 1[exists i: d(X_i, Y_j) < NND_k(X_i)]             (fakes inside the real manifold)
    recall    = (1/N) sum_i 1[exists j: d(X_i, Y_j) < NND_k(Y_j)]             (reals inside the fake manifold)
    density   = (1/(k M)) sum_j sum_i 1[d(X_i, Y_j) < NND_k(X_i)]            (can exceed 1)
    coverage  = (1/N) sum_i 1[min_j d(X_i, Y_j) < NND_k(X_i)]

Strict ``<`` and the k-th neighbour excluding the point itself, as clovaai/generative-evaluation-prdc. Distances are
computed over blocks of real rows, so memory is O(block x max(N, M)) instead of the package's full N x M matrices.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from eval_protocols.metrics.base import MetricResult, as_features
from eval_protocols.metrics.registry import MetricInputs, register_metric


def _distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distances ``(len(a), len(b))`` via ``||a||^2 + ||b||^2 - 2 a.b``, clipped at 0."""
    sq = np.einsum("ij,ij->i", a, a)[:, None] + np.einsum("ij,ij->i", b, b)[None, :] - 2.0 * (a @ b.T)
    result: np.ndarray = np.sqrt(np.maximum(sq, 0.0))
    return result


def nearest_neighbour_radii(features: np.ndarray, ks: tuple[int, ...], block: int = 1024) -> dict[int, np.ndarray]:
    """Distance from each row to its k-th nearest *other* row, for each k in ``ks``.

    Args:
        features: ``(N, D)``, N > max(ks).
        ks: neighbour ranks.
        block: rows per distance block.

    Returns:
        ``{k: float64 (N,)}``.
    """
    radii = {k: np.empty(len(features)) for k in ks}
    for start in range(0, len(features), block):
        dist = _distances(features[start : start + block], features)
        for k in ks:  # position k of the sorted row is the k-th neighbour: position 0 is the point itself
            radii[k][start : start + block] = np.partition(dist, k, axis=1)[:, k]
    return radii


def prdc(reference: Any, samples: Any, *, k_pr: int = 3, k_dc: int = 5, block: int = 1024) -> list[MetricResult]:
    """Precision, recall (k = ``k_pr``), density and coverage (k = ``k_dc``) of samples against a reference.

    Args:
        reference: ``(N, D)`` real features.
        samples: ``(M, D)`` sample features.
        k_pr: neighbour rank for precision and recall.
        k_dc: neighbour rank for density and coverage.
        block: real rows per distance block.

    Returns:
        Four `MetricResult` named ``precision``, ``recall``, ``density``, ``coverage`` (higher is better).

    Raises:
        ValueError: a set with no more rows than the largest k, mismatched dimensions, NaN rows, k < 1.
    """
    if min(k_pr, k_dc) < 1:
        raise ValueError(f"PRDC neighbour ranks must be >= 1, got k_pr={k_pr}, k_dc={k_dc}")
    real = as_features(reference, "reference features", min_rows=max(k_pr, k_dc) + 1)
    fake = as_features(samples, "sample features", min_rows=k_pr + 1, dim=real.shape[1])
    real_radii = nearest_neighbour_radii(real, tuple(sorted({k_pr, k_dc})), block)
    fake_radius = nearest_neighbour_radii(fake, (k_pr,), block)[k_pr]
    in_real_manifold = np.zeros(len(fake), dtype=bool)
    density_count = np.zeros(len(fake))
    recall_hit = np.empty(len(real), dtype=bool)
    coverage_hit = np.empty(len(real), dtype=bool)
    for start in range(0, len(real), block):
        dist = _distances(real[start : start + block], fake)
        rows = slice(start, start + block)
        in_real_manifold |= (dist < real_radii[k_pr][rows, None]).any(axis=0)
        density_count += (dist < real_radii[k_dc][rows, None]).sum(axis=0)
        recall_hit[rows] = (dist < fake_radius[None, :]).any(axis=1)
        coverage_hit[rows] = dist.min(axis=1) < real_radii[k_dc][rows]
    shared = {"n_reference": len(real)}
    return [
        MetricResult("precision", float(in_real_manifold.mean()), len(fake), True, details={"k": k_pr, **shared}),
        MetricResult("recall", float(recall_hit.mean()), len(fake), True, details={"k": k_pr, **shared}),
        MetricResult("density", float(density_count.mean() / k_dc), len(fake), True, details={"k": k_dc, **shared}),
        MetricResult("coverage", float(coverage_hit.mean()), len(fake), True, details={"k": k_dc, **shared}),
    ]


@register_metric(
    "prdc", higher_is_better=True, requires=("reference", "samples"), description="precision/recall/density/coverage"
)
def _prdc_metric(inputs: MetricInputs, **options: Any) -> list[MetricResult]:
    return prdc(inputs.reference, inputs.samples, **options)
