"""The metric ``fd`` (FID on Inception features) and FD reference-statistics files; the computation is in `frechet`.

    FD = ||mu_r - mu_g||^2 + tr(Sigma_r) + tr(Sigma_g) - 2 tr((Sigma_r Sigma_g)^{1/2})

(Heusel et al. 2017), computed in float64 by `eval_protocols.metrics.frechet` (torch, imported only when an FD is
computed, so registering and looking up ``fd`` stays cheap). Its names `frechet_distance`, `FrechetDistance`,
`fd_from_features` and `SqrtMethod` are also importable from here.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from eval_protocols.metrics.base import FeatureStats, MetricResult
from eval_protocols.metrics.registry import MetricInputs, register_metric

if TYPE_CHECKING:
    from eval_protocols.metrics.frechet import SqrtMethod

_FRECHET_NAMES = ("FrechetDistance", "SqrtMethod", "fd_from_features", "frechet_distance")


def __getattr__(name: str) -> Any:
    """`eval_protocols.metrics.frechet`'s public names, imported (with torch) on first use."""
    if name in _FRECHET_NAMES:
        from eval_protocols.metrics import frechet

        return getattr(frechet, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def load_stats(path: str | Path) -> FeatureStats:
    """Read FD reference statistics from an ``.npz`` with ``mu`` ``(D,)``, ``sigma`` ``(D, D)`` and optional ``n``.

    Raises:
        ValueError: missing keys or wrong shapes (the message lists the keys found).
    """
    with np.load(path, allow_pickle=False) as data:
        keys = sorted(data.files)
        if "mu" not in data.files or "sigma" not in data.files:
            raise ValueError(f"{path}: FD statistics need arrays 'mu' and 'sigma', found {keys}")
        mu = np.asarray(data["mu"], dtype=np.float64)
        sigma = np.asarray(data["sigma"], dtype=np.float64)
        n = int(data["n"]) if "n" in data.files else None
    if mu.ndim != 1 or sigma.shape != (mu.shape[0], mu.shape[0]):
        raise ValueError(f"{path}: mu {mu.shape} and sigma {sigma.shape} are not (D,) and (D, D)")
    return FeatureStats(mu, sigma, n)


def save_stats(path: str | Path, stats: FeatureStats) -> None:
    """Write ``mu``, ``sigma`` (and ``n`` when known) to an ``.npz`` readable by `load_stats` and pytorch-fid."""
    if stats.n is None:
        np.savez(path, mu=stats.mu, sigma=stats.sigma)
    else:
        np.savez(path, mu=stats.mu, sigma=stats.sigma, n=np.asarray(stats.n))


def _fd_replicates(inputs: MetricInputs, idx: np.ndarray, ref_idx: np.ndarray | None) -> tuple[float, np.ndarray]:
    """FD of all rows and of each resample: samples ``idx[b]`` against reference rows ``ref_idx[b]``, or against
    ``reference_stats`` (kept fixed) when given; the Gaussian statistics of `fd_from_features` (mean, ``np.cov``),
    without its streaming metric object.

    Raises:
        ValueError: neither ``reference_stats`` nor resampled reference rows.
    """
    from eval_protocols.metrics.frechet import frechet_distance

    samples, stats = np.asarray(inputs.samples), inputs.reference_stats
    if stats is None and (inputs.reference is None or ref_idx is None):
        raise ValueError("FD replicates need reference_stats, or reference features with resampled rows (ref_idx)")
    reference = None if stats is not None else np.asarray(inputs.reference)

    def fd(i: np.ndarray, r: np.ndarray | None) -> float:
        x = samples[i]
        if stats is not None:
            return frechet_distance(stats.mu, stats.sigma, x.mean(axis=0), np.cov(x, rowvar=False))
        assert reference is not None and r is not None
        y = reference[r]
        return frechet_distance(y.mean(axis=0), np.cov(y, rowvar=False), x.mean(axis=0), np.cov(x, rowvar=False))

    identity = None if ref_idx is None else np.arange(ref_idx.shape[1])
    value = fd(np.arange(idx.shape[1]), identity)
    return value, np.array([fd(i, None if ref_idx is None else ref_idx[b]) for b, i in enumerate(idx)], dtype=np.float64)


@register_metric(
    "fd",
    higher_is_better=False,
    requires=("samples", "reference|reference_stats"),
    description="Fréchet distance (FID on Inception)",
    replicates=_fd_replicates,
)
def _fd_metric(inputs: MetricInputs, method: SqrtMethod = "eigh") -> list[MetricResult]:
    from eval_protocols.metrics.frechet import fd_from_features

    return [fd_from_features(inputs.reference, inputs.samples, reference_stats=inputs.reference_stats, method=method)]
