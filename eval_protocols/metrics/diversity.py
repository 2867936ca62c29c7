"""Diversity within a caption: mean pairwise cosine distance and the Vendi score, per caption and averaged.

For the samples e_1..e_n of one caption (CLIP image embeddings, L2-normalised here):

- mean pairwise cosine distance: ``1 - mean_{i<j} cos(e_i, e_j)``; 0 when all samples are identical.
- Vendi score (Friedman & Dieng 2023): with the cosine-similarity kernel ``K_ij = cos(e_i, e_j)`` (PSD, ``K_ii = 1``)
  and ``lambda`` the eigenvalues of ``K / n``, ``VS = exp(-sum_{lambda > 0} lambda log lambda)``: the effective number
  of distinct samples, 1 for n identical samples and n for n mutually orthogonal ones. Own few lines (the
  ``vendi-score`` package has known defects, reference/metrics.md §3).

Both need at least 2 samples per caption; the averaged value weights every caption equally, so a bootstrap over
captions (`eval_protocols.metrics.bootstrap`) gives its confidence interval.

Replicates for comparing two runs (`diversity_replicates`, the CI gate): samples are resampled within each caption and
a replicate averages only pairs of distinct original samples (a repeated sample would add a distance of 0); the
replicates' spread is then scaled to the within-caption delete-one jackknife standard error
(`diversity_jackknife_se`; Efron–Stein: not below the true one in expectation), since the bootstrap of a pairwise
statistic from a few samples per caption runs narrow.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from eval_protocols.bootstrap import rescale_spread
from eval_protocols.metrics.base import MetricResult, as_features, group_indices
from eval_protocols.metrics.registry import MetricInputs, register_metric


def _unit_rows(x: np.ndarray) -> np.ndarray:
    result: np.ndarray = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    return result


def mean_pairwise_cosine_distance(features: np.ndarray) -> float:
    """``1 - mean_{i<j} cos(x_i, x_j)`` for ``(n, D)`` features, n >= 2; in [0, 2]."""
    unit = _unit_rows(np.asarray(features, dtype=np.float64))
    n = len(unit)
    similarity = unit @ unit.T
    off_diagonal_mean = (similarity.sum() - np.trace(similarity)) / (n * (n - 1))
    return float(1.0 - off_diagonal_mean)


def vendi(features: np.ndarray) -> float:
    """Vendi score of ``(n, D)`` features with the cosine-similarity kernel; in [1, n]."""
    unit = _unit_rows(np.asarray(features, dtype=np.float64))
    eigenvalues = np.linalg.eigvalsh(unit @ unit.T / len(unit))
    positive = eigenvalues[eigenvalues > 1e-12]
    return float(np.exp(-np.sum(positive * np.log(positive))))


def _per_caption(name: str, score: Callable[[np.ndarray], float], features: Any, groups: Any) -> MetricResult:
    """Apply ``score`` to each caption's samples and average over captions."""
    array = as_features(features, "sample features", min_rows=2)
    by_caption = group_indices(groups, len(array), min_size=2)
    values = {label: score(array[rows]) for label, rows in by_caption.items()}
    per_caption = np.fromiter(values.values(), dtype=np.float64)
    details: dict[str, Any] = {
        "n_captions": len(values),
        "std": float(per_caption.std()),
        "per_caption": {str(label): value for label, value in values.items()},
    }
    return MetricResult(name, float(per_caption.mean()), len(values), higher_is_better=True, details=details)


def pairwise_diversity(features: Any, groups: Any = None) -> MetricResult:
    """Mean over captions of the within-caption mean pairwise cosine distance (``name="diversity"``).

    Args:
        features: ``(N, D)`` sample embeddings.
        groups: ``(N,)`` caption label per row; None treats all rows as one caption.

    Raises:
        ValueError: a caption with fewer than 2 samples (named), or bad features.
    """
    return _per_caption("diversity", mean_pairwise_cosine_distance, features, groups)


def vendi_score(features: Any, groups: Any = None) -> MetricResult:
    """Mean over captions of the within-caption Vendi score (``name="vendi"``); arguments as `pairwise_diversity`."""
    return _per_caption("vendi", vendi, features, groups)


def diversity_replicates(features: Any, groups: Any, idx: np.ndarray) -> np.ndarray:
    """Diversity of each resample ``idx (B, N)`` (drawn within captions) over pairs of distinct original rows.

    Per caption: ``1 − mean_{a≠b, idx_a≠idx_b} cos(x_idx_a, x_idx_b)`` (a resample of one repeated row keeps the
    caption's own value), then the mean over captions; ``float64 (B,)``.

    Args:
        features: ``(N, D)`` sample embeddings.
        groups: ``(N,)`` caption label per row; None: one caption.
        idx: ``int (B, N)`` resampled rows, each within its row's caption
            (`eval_protocols.bootstrap.stratified_indices`).
    """
    unit = _unit_rows(np.asarray(features, dtype=np.float64))
    labels = np.zeros(len(unit), dtype=np.int64) if groups is None else np.asarray(groups)
    per_caption = []
    for label in dict.fromkeys(labels.tolist()):
        rows = np.flatnonzero(labels == label)
        sim = unit[rows] @ unit[rows].T
        local = np.searchsorted(rows, idx[:, rows])  # (B, n) positions within the caption
        pairs = sim[local[:, :, None], local[:, None, :]]
        distinct = local[:, :, None] != local[:, None, :]
        count = distinct.sum(axis=(1, 2))
        own = (sim.sum() - np.trace(sim)) / max(len(rows) * (len(rows) - 1), 1)
        mean_sim = np.where(count > 0, (pairs * distinct).sum(axis=(1, 2)) / np.maximum(count, 1), own)
        per_caption.append(1.0 - mean_sim)
    result: np.ndarray = np.mean(per_caption, axis=0)
    return result


def diversity_jackknife_se(features: Any, groups: Any) -> float | None:
    """Within-caption delete-one jackknife standard error of the caption-averaged diversity.

    For a caption of n samples with leave-one-out values ``d_(i)``, its variance is ``(n − 1)/n Σ_i (d_(i) − d̄)²``;
    the standard error is ``sqrt(Σ_captions variance) / C``. None when a caption has fewer than 3 samples.
    """
    unit = _unit_rows(np.asarray(features, dtype=np.float64))
    labels_array = np.zeros(len(unit), dtype=np.int64) if groups is None else np.asarray(groups)
    labels = list(dict.fromkeys(labels_array.tolist()))
    variance = 0.0
    for label in labels:
        rows = np.flatnonzero(labels_array == label)
        n = len(rows)
        if n < 3:
            return None
        sim = unit[rows] @ unit[rows].T
        off = sim - np.diag(np.diag(sim))
        leave_out = 1.0 - (off.sum() - 2.0 * off.sum(axis=1)) / ((n - 1) * (n - 2))  # (n,) diversity without row i
        variance += (n - 1) / n * float(((leave_out - leave_out.mean()) ** 2).sum())
    return float(np.sqrt(variance) / len(labels))


def _diversity_replicates(
    inputs: MetricInputs, idx: np.ndarray, ref_idx: np.ndarray | None
) -> tuple[float, np.ndarray]:
    """Diversity and its replicates, their spread scaled to the jackknife standard error (module docstring)."""
    value = pairwise_diversity(inputs.samples, inputs.groups).value
    replicates = diversity_replicates(inputs.samples, inputs.groups, idx)
    se, spread = diversity_jackknife_se(inputs.samples, inputs.groups), float(replicates.std())
    return value, (rescale_spread(replicates, se / spread) if se and spread > 0 else replicates)


@register_metric(
    "diversity",
    higher_is_better=True,
    requires=("samples",),
    description="within-caption cosine distance",
    clip_features=True,
    replicates=_diversity_replicates,
)
def _diversity_metric(inputs: MetricInputs) -> list[MetricResult]:
    return [pairwise_diversity(inputs.samples, inputs.groups)]


@register_metric(
    "vendi", higher_is_better=True, requires=("samples",), description="within-caption Vendi score", clip_features=True
)
def _vendi_metric(inputs: MetricInputs) -> list[MetricResult]:
    return [vendi_score(inputs.samples, inputs.groups)]
