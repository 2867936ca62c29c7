"""Diversity within a caption: mean pairwise distance (cosine or RMS) and the Vendi score, per caption and averaged.

For the samples x_1..x_n of one caption, with a distance matrix ``d`` (`PairwiseDistance`):

- mean pairwise distance: ``mean_{i≠j} d(x_i, x_j)``; 0 when all samples are identical. Two distances:
  * cosine (``diversity``, on CLIP image embeddings): ``d(x, y) = 1 − cos(x, y)``, in [0, 2];
  * RMS (``layout_diversity``, on colour-layout features, `eval_protocols.features.pixels.LayoutExtractor`):
    ``d(x, y) = ‖x − y‖₂ / √D``, the root-mean-square difference per feature; in [0, 1] for features on [0, 1].
- Vendi score (Friedman & Dieng 2023): with the cosine-similarity kernel ``K_ij = cos(e_i, e_j)`` (PSD, ``K_ii = 1``)
  and ``lambda`` the eigenvalues of ``K / n``, ``VS = exp(-sum_{lambda > 0} lambda log lambda)``: the effective number
  of distinct samples, 1 for n identical samples and n for n mutually orthogonal ones. Own few lines (the
  ``vendi-score`` package has known defects, reference/metrics.md §3).

Why two distances. A CLIP trained contrastively on captions is, by construction, nearly invariant to what captions
leave open (positions, background, light, unnamed sizes): within a caption the spread of its embeddings measures a
model's *errors* (wrong shapes or colours), not its diversity. On the toy run ``runs/toy-64b7b1ee`` CLIP diversity
ranks the real renders lowest (0.058, against 0.229 for GLIDE at g = 1); the RMS distance of colour layouts ranks
them highest (0.176, against 0.12–0.15 for the models) and falls with guidance as the paper's diversity does.

All need at least 2 samples per caption; the averaged value weights every caption equally, so a bootstrap over
captions (`eval_protocols.metrics.bootstrap`) gives its confidence interval.

Replicates for comparing two runs (`diversity_replicates`, the CI gate): samples are resampled within each caption and
a replicate averages only pairs of distinct original samples (a repeated sample would add a distance of 0); the
replicates' spread is then scaled to the within-caption delete-one jackknife standard error
(`diversity_jackknife_se`; Efron–Stein: not below the true one in expectation), since the bootstrap of a pairwise
statistic from a few samples per caption runs narrow. Both take the distance as an argument, so every pairwise
diversity shares them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from eval_protocols.bootstrap import rescale_spread
from eval_protocols.metrics.base import MetricResult, as_features, group_indices
from eval_protocols.metrics.registry import MetricInputs, ReplicatesFn, register_metric

PairwiseDistance = Callable[[np.ndarray], np.ndarray]
"""``distance(x (n, D) float64) -> (n, n)`` symmetric distances with a zero diagonal."""


def _unit_rows(x: np.ndarray) -> np.ndarray:
    result: np.ndarray = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    return result


def cosine_distances(features: np.ndarray) -> np.ndarray:
    """``1 − cos(x_i, x_j)`` for ``(n, D)`` features: ``(n, n)`` in [0, 2], zero diagonal."""
    unit = _unit_rows(np.asarray(features, dtype=np.float64))
    d: np.ndarray = 1.0 - unit @ unit.T
    np.fill_diagonal(d, 0.0)
    return d


def rms_distances(features: np.ndarray) -> np.ndarray:
    """``‖x_i − x_j‖₂ / √D`` for ``(n, D)`` features: ``(n, n)``, zero diagonal (Gram form, clipped at 0)."""
    x = np.asarray(features, dtype=np.float64)
    x = x - x.mean(axis=0)  # distances are shift-invariant; centring keeps the Gram form accurate
    sq = (x * x).sum(axis=1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * x @ x.T, 0.0)
    np.fill_diagonal(d2, 0.0)
    result: np.ndarray = np.sqrt(d2 / max(x.shape[1], 1))
    return result


def _off_diagonal_mean(d: np.ndarray) -> float:
    n = len(d)
    return float((d.sum() - np.trace(d)) / (n * (n - 1)))


def mean_pairwise_cosine_distance(features: np.ndarray) -> float:
    """``1 - mean_{i<j} cos(x_i, x_j)`` for ``(n, D)`` features, n >= 2; in [0, 2]."""
    return _off_diagonal_mean(cosine_distances(features))


def mean_pairwise_rms_distance(features: np.ndarray) -> float:
    """``mean_{i<j} ‖x_i − x_j‖₂ / √D`` for ``(n, D)`` features, n >= 2; in [0, 1] for features on [0, 1]."""
    return _off_diagonal_mean(rms_distances(features))


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


def layout_diversity(features: Any, groups: Any = None) -> MetricResult:
    """Mean over captions of the within-caption mean pairwise RMS distance (``name="layout_diversity"``).

    Args:
        features: ``(N, D)`` colour-layout features (`eval_protocols.features.pixels.LayoutExtractor`, on [0, 1]).
        groups: ``(N,)`` caption label per row; None treats all rows as one caption.

    Raises:
        ValueError: a caption with fewer than 2 samples (named), or bad features.
    """
    return _per_caption("layout_diversity", mean_pairwise_rms_distance, features, groups)


def vendi_score(features: Any, groups: Any = None) -> MetricResult:
    """Mean over captions of the within-caption Vendi score (``name="vendi"``); arguments as `pairwise_diversity`."""
    return _per_caption("vendi", vendi, features, groups)


def _caption_rows(n: int, groups: Any) -> list[np.ndarray]:
    """Row indices of each caption, in first-seen order (None: one caption)."""
    labels = np.zeros(n, dtype=np.int64) if groups is None else np.asarray(groups)
    return [np.flatnonzero(labels == label) for label in dict.fromkeys(labels.tolist())]


def diversity_replicates(
    features: Any, groups: Any, idx: np.ndarray, distance: PairwiseDistance = cosine_distances
) -> np.ndarray:
    """Mean pairwise ``distance`` of each resample ``idx (B, N)`` (drawn within captions) over pairs of distinct
    original rows.

    Per caption: ``mean_{a≠b, idx_a≠idx_b} d(x_idx_a, x_idx_b)`` (a resample of one repeated row keeps the caption's
    own value), then the mean over captions; ``float64 (B,)``.

    Args:
        features: ``(N, D)`` sample features.
        groups: ``(N,)`` caption label per row; None: one caption.
        idx: ``int (B, N)`` resampled rows, each within its row's caption
            (`eval_protocols.bootstrap.stratified_indices`).
        distance: the pairwise distance (`cosine_distances`: ``diversity``; `rms_distances`: ``layout_diversity``).
    """
    array = np.asarray(features, dtype=np.float64)
    per_caption = []
    for rows in _caption_rows(len(array), groups):
        d = distance(array[rows])
        local = np.searchsorted(rows, idx[:, rows])  # (B, n) positions within the caption
        pairs = d[local[:, :, None], local[:, None, :]]
        distinct = local[:, :, None] != local[:, None, :]
        count = distinct.sum(axis=(1, 2))
        own = _off_diagonal_mean(d) if len(rows) > 1 else 0.0
        per_caption.append(np.where(count > 0, (pairs * distinct).sum(axis=(1, 2)) / np.maximum(count, 1), own))
    result: np.ndarray = np.mean(per_caption, axis=0)
    return result


def diversity_jackknife_se(features: Any, groups: Any, distance: PairwiseDistance = cosine_distances) -> float | None:
    """Within-caption delete-one jackknife standard error of the caption-averaged mean pairwise ``distance``.

    For a caption of n samples with leave-one-out values ``d_(i)``, its variance is ``(n − 1)/n Σ_i (d_(i) − d̄)²``;
    the standard error is ``sqrt(Σ_captions variance) / C``. None when a caption has fewer than 3 samples.
    """
    array = np.asarray(features, dtype=np.float64)
    captions = _caption_rows(len(array), groups)
    variance = 0.0
    for rows in captions:
        n = len(rows)
        if n < 3:
            return None
        d = distance(array[rows])
        leave_out = (d.sum() - 2.0 * d.sum(axis=1)) / ((n - 1) * (n - 2))  # (n,) mean distance without row i
        variance += (n - 1) / n * float(((leave_out - leave_out.mean()) ** 2).sum())
    return float(np.sqrt(variance) / len(captions))


def pairwise_replicates(
    value: Callable[[Any, Any], MetricResult], distance: PairwiseDistance
) -> ReplicatesFn:
    """The registry's replicate rule of a pairwise diversity: its value, and its replicates with their spread scaled
    to the jackknife standard error (module docstring)."""

    def rule(inputs: MetricInputs, idx: np.ndarray, ref_idx: np.ndarray | None) -> tuple[float, np.ndarray]:
        point = value(inputs.samples, inputs.groups).value
        replicates = diversity_replicates(inputs.samples, inputs.groups, idx, distance)
        se, spread = diversity_jackknife_se(inputs.samples, inputs.groups, distance), float(replicates.std())
        return point, (rescale_spread(replicates, se / spread) if se and spread > 0 else replicates)

    return rule


@register_metric(
    "diversity",
    higher_is_better=True,
    requires=("samples",),
    description="within-caption cosine distance",
    clip_features=True,
    replicates=pairwise_replicates(pairwise_diversity, cosine_distances),
)
def _diversity_metric(inputs: MetricInputs) -> list[MetricResult]:
    return [pairwise_diversity(inputs.samples, inputs.groups)]


@register_metric(
    "vendi", higher_is_better=True, requires=("samples",), description="within-caption Vendi score", clip_features=True
)
def _vendi_metric(inputs: MetricInputs) -> list[MetricResult]:
    return [vendi_score(inputs.samples, inputs.groups)]


@register_metric(
    "layout_diversity",
    higher_is_better=True,
    requires=("samples",),
    description="within-caption RMS distance of colour layouts",
    extractor="layout",
    replicates=pairwise_replicates(layout_diversity, rms_distances),
)
def _layout_diversity_metric(inputs: MetricInputs) -> list[MetricResult]:
    return [layout_diversity(inputs.samples, inputs.groups)]
