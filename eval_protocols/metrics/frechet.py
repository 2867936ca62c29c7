"""Fréchet distance (FD; FID on Inception pool3 features) in torch: float64 running sums, an eigenvalue square root.

The registered metric ``fd`` and the statistics files are in `eval_protocols.metrics.fid` (torch-free at import).

    FD = ||mu_r - mu_g||^2 + tr(Sigma_r) + tr(Sigma_g) - 2 tr((Sigma_r Sigma_g)^{1/2})

(Heusel et al. 2017). ``tr((S1 S2)^{1/2}) = sum_i sqrt(lambda_i)`` over the eigenvalues of ``S1 S2``, which are real and
>= 0 in exact arithmetic (``S1 S2`` is similar to the PSD ``S1^{1/2} S2 S1^{1/2}``). Two methods:

- ``"eigh"`` (default): ``eigvalsh(L^T S2 L)`` clipped at 0, where ``S1 = L L^T`` (Cholesky; ``L = S1^{1/2}`` from
  ``eigh(S1)`` when S1 is singular, N <= D). ``L^T S2 L`` is symmetric PSD and similar to ``S1 S2``, so one symmetric
  eigenvalue problem replaces a general one: several times faster on CPU, no spurious imaginary parts;
- ``"eig"``: ``sum(sqrt(eigvals(S1 S2)).real)``, torchmetrics >= 1.0's and torch-fidelity's formula.

Both avoid ``scipy.linalg.sqrtm(disp=False)`` (removed in SciPy 1.18). `FrechetDistance` is a ``torchmetrics.Metric``:
state is ``sum x`` (D), ``sum x x^T`` (D x D) and N per side, all float64, so memory is O(D^2), independent of N;
``Sigma = (sum x x^T - N mu mu^T) / (N - 1)``. FD is biased upward by about c/N: compare only at one N.

Several processes (torchrun): each rank updates its share of the features; ``compute()`` (or ``sync()``) all-gathers
the per-rank sums and adds them in rank order (``((r0 + r1) + r2) ...``), so every rank gets the same statistics,
reproducible for a fixed world size and equal to one process's up to float64 round-off (the additions are grouped
differently). A reference given as statistics (`FrechetDistance.set_reference_stats`, the same on every rank) is
kept, not summed over ranks. `fd_from_features` holds all features in one process and never syncs.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from copy import deepcopy
from typing import Any, Literal

import numpy as np
import torch
from torchmetrics import Metric

from eval_protocols.metrics.base import FeatureStats, MetricResult, as_features

SqrtMethod = Literal["eigh", "eig"]
_REAL_STATES = ("real_sum", "real_cov_sum", "real_n", "real_n_unknown")


def _fold_sum(stacked: torch.Tensor) -> torch.Tensor:
    """Distributed reduction: the per-rank states (dim 0, in rank order) added one after another."""
    total = stacked[0].clone()
    for part in stacked[1:]:
        total = total + part
    return total


def frechet_distance(mu1: Any, sigma1: Any, mu2: Any, sigma2: Any, method: SqrtMethod = "eigh") -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2), in float64.

    Args:
        mu1: ``(D,)`` mean of the first set.
        sigma1: ``(D, D)`` covariance of the first set (symmetric PSD).
        mu2: ``(D,)`` mean of the second set.
        sigma2: ``(D, D)`` covariance of the second set.
        method: ``"eigh"`` or ``"eig"`` (module docstring).

    Returns:
        ``||mu1 - mu2||^2 + tr(sigma1) + tr(sigma2) - 2 tr((sigma1 sigma2)^{1/2})``; may be a rounding-size negative
        number (about -1e-10 * tr) for identical sets.

    Raises:
        ValueError: mismatching shapes, non-finite entries or an unknown method.
    """
    m1, s1, m2, s2 = (
        torch.as_tensor(np.asarray(a) if not torch.is_tensor(a) else a) for a in (mu1, sigma1, mu2, sigma2)
    )
    m1, s1, m2, s2 = (t.to(dtype=torch.float64, device=m1.device) for t in (m1, s1, m2, s2))
    dim = m1.shape[0]
    if m1.shape != (dim,) or m2.shape != (dim,) or s1.shape != (dim, dim) or s2.shape != (dim, dim):
        raise ValueError(
            f"FD needs mu (D,) and sigma (D, D) of one D; got {tuple(m1.shape)}, {tuple(s1.shape)}, "
            f"{tuple(m2.shape)}, {tuple(s2.shape)}"
        )
    if not all(torch.isfinite(t).all() for t in (m1, s1, m2, s2)):
        raise ValueError("FD statistics contain NaN or inf; check the features or the .npz file")
    mean_term = (m1 - m2).square().sum()
    trace_sqrt = _trace_sqrt_product(s1, s2, method)
    return float(mean_term + s1.trace() + s2.trace() - 2.0 * trace_sqrt)


def _trace_sqrt_product(s1: torch.Tensor, s2: torch.Tensor, method: SqrtMethod) -> torch.Tensor:
    """``tr((s1 s2)^{1/2})`` by eigenvalues (module docstring)."""
    if method == "eig":
        general: torch.Tensor = torch.linalg.eigvals(s1 @ s2).sqrt().real.sum()
        return general
    if method != "eigh":
        raise ValueError(f"unknown FD square-root method {method!r}; valid: eigh, eig")
    s1 = (s1 + s1.T) / 2
    factor, info = torch.linalg.cholesky_ex(s1)  # s1 = L L^T, so s1 s2 is similar to L^T s2 L
    if int(info) != 0:  # s1 singular (N <= D): its PSD square root s1^{1/2} serves as the factor instead
        eigvals, eigvecs = torch.linalg.eigh(s1)
        factor = (eigvecs * eigvals.clamp(min=0).sqrt()) @ eigvecs.T
    middle = factor.T @ s2 @ factor
    result: torch.Tensor = torch.linalg.eigvalsh((middle + middle.T) / 2).clamp(min=0).sqrt().sum()
    return result


class FrechetDistance(Metric):
    """Streaming FD between reference (``real=True``) and sample features, torchmetrics-style.

    ``update(features, real)`` adds a ``(B, D)`` batch; ``compute()`` returns FD as a float64 scalar tensor;
    ``reset()`` clears the samples (and the reference unless ``reset_real_features=False``). Under torch.distributed
    every rank must call ``compute()`` (it syncs; see the module docstring), unless built with
    ``sync_on_compute=False``; ``with metric.sync_context(): metric.stats(real)`` gives the synced statistics.
    """

    higher_is_better = False
    is_differentiable = False
    full_state_update = False

    real_sum: torch.Tensor
    real_cov_sum: torch.Tensor
    real_n: torch.Tensor
    real_n_unknown: torch.Tensor
    fake_sum: torch.Tensor
    fake_cov_sum: torch.Tensor
    fake_n: torch.Tensor

    def __init__(
        self, num_features: int, reset_real_features: bool = True, method: SqrtMethod = "eigh", **kwargs: Any
    ) -> None:
        """Args:
        num_features: feature dimension D.
        reset_real_features: whether `reset` also clears the reference side.
        method: square-root method of `frechet_distance`.
        **kwargs: passed to ``torchmetrics.Metric``.
        """
        super().__init__(**kwargs)
        if num_features < 1:
            raise ValueError(f"num_features must be >= 1, got {num_features}")
        self.num_features = num_features
        self.reset_real_features = reset_real_features
        self.method: SqrtMethod = method
        for side in ("real", "fake"):
            self.add_state(f"{side}_sum", torch.zeros(num_features, dtype=torch.float64), dist_reduce_fx=_fold_sum)
            self.add_state(
                f"{side}_cov_sum",
                torch.zeros(num_features, num_features, dtype=torch.float64),
                dist_reduce_fx=_fold_sum,
            )
            self.add_state(f"{side}_n", torch.tensor(0, dtype=torch.long), dist_reduce_fx=_fold_sum)
        # 1 when the reference came from statistics without a sample count (its rank is then unknown)
        self.add_state("real_n_unknown", torch.tensor(0, dtype=torch.long), dist_reduce_fx="max")
        # where the reference side came from: "features" (streamed, summed over ranks when syncing), "stats"
        # (`set_reference_stats`: replicated, kept as is), "mixed" (features on top of statistics: cannot be synced)
        self._reference_source = "features"

    def update(self, features: Any, real: bool) -> None:
        """Add a batch of features.

        Args:
            features: ``(B, D)`` array or tensor (any float dtype; accumulated in float64).
            real: True for reference features, False for samples.

        Raises:
            ValueError: wrong width or NaN/inf rows (named by their index in the whole stream of that side).
        """
        side = "real" if real else "fake"
        batch = torch.as_tensor(features if torch.is_tensor(features) else np.asarray(features)).to(
            dtype=torch.float64, device=self.device
        )
        if batch.ndim != 2 or batch.shape[1] != self.num_features:
            raise ValueError(
                f"FD expects (B, {self.num_features}) features, got {tuple(batch.shape)}; use one extractor"
            )
        bad = torch.nonzero(~torch.isfinite(batch).all(dim=1)).flatten()
        if bad.numel():
            offset = int(getattr(self, f"{side}_n"))
            rows = [offset + int(r) for r in bad[:10]]
            raise ValueError(
                f"{'reference' if real else 'sample'} features rows {rows} contain NaN or inf "
                f"({bad.numel()} rows); drop or re-extract those images"
            )
        if real and self._reference_source == "stats":
            self._reference_source = "mixed"
        setattr(self, f"{side}_sum", getattr(self, f"{side}_sum") + batch.sum(dim=0))
        setattr(self, f"{side}_cov_sum", getattr(self, f"{side}_cov_sum") + batch.T @ batch)
        setattr(self, f"{side}_n", getattr(self, f"{side}_n") + batch.shape[0])

    def set_reference_stats(self, stats: FeatureStats) -> None:
        """Replace the reference side by precomputed statistics (e.g. from `eval_protocols.metrics.fid.load_stats`).

        The running sums are rebuilt exactly as ``sum = N mu`` and ``sum x x^T = (N - 1) Sigma + N mu mu^T``, with
        ``N = stats.n`` (2 when unknown: any N >= 2 gives back the same mu and Sigma).
        """
        mu = torch.as_tensor(stats.mu, dtype=torch.float64, device=self.device)
        sigma = torch.as_tensor(stats.sigma, dtype=torch.float64, device=self.device)
        if mu.shape != (self.num_features,) or sigma.shape != (self.num_features, self.num_features):
            raise ValueError(
                f"reference stats have mu {tuple(mu.shape)} and sigma {tuple(sigma.shape)}, "
                f"expected ({self.num_features},) and ({self.num_features}, {self.num_features})"
            )
        n = stats.n if stats.n is not None else 2
        self.real_sum = n * mu
        self.real_cov_sum = (n - 1) * sigma + n * torch.outer(mu, mu)
        self.real_n = torch.tensor(n, dtype=torch.long, device=self.device)
        self.real_n_unknown = torch.tensor(int(stats.n is None), dtype=torch.long, device=self.device)
        self._reference_source = "stats"

    def sync(
        self,
        dist_sync_fn: Callable[..., Any] | None = None,
        process_group: Any | None = None,
        should_sync: bool = True,
        distributed_available: Callable[[], bool] | None = None,
    ) -> None:
        """torchmetrics' ``sync`` (rank-order sums), keeping a reference set from statistics instead of summing it
        (every rank must then have set the same statistics).

        Raises:
            ValueError: when syncing a reference that mixes statistics and streamed features (not well defined over
                ranks; one process may mix them freely).
        """
        available = distributed_available or self.distributed_available_fn
        syncing = should_sync and callable(available) and bool(available())
        if syncing and self._reference_source == "mixed":
            raise ValueError(
                "FD reference holds statistics plus streamed features, which cannot be synced across processes; "
                "stream all reference features, or set the same statistics on every rank and stream none"
            )
        kept = {name: getattr(self, name) for name in _REAL_STATES} if self._reference_source == "stats" else None
        super().sync(dist_sync_fn, process_group, should_sync, distributed_available)
        if kept is None or not self._is_synced:
            return
        for name, value in kept.items():
            setattr(self, name, value)

    def stats(self, real: bool) -> FeatureStats:
        """Mean and unbiased covariance of one side (e.g. to save reference statistics with `eval_protocols.metrics.fid.save_stats`)."""
        side = "real" if real else "fake"
        n = int(getattr(self, f"{side}_n"))
        if n < 2:
            raise ValueError(
                f"FD needs at least 2 {'reference' if real else 'sample'} features, got {n}; pass more images"
            )
        mu = getattr(self, f"{side}_sum") / n
        sigma = (getattr(self, f"{side}_cov_sum") - n * torch.outer(mu, mu)) / (n - 1)
        known = not (real and bool(self.real_n_unknown))
        return FeatureStats(mu.cpu().numpy(), sigma.cpu().numpy(), n if known else None)

    def compute(self) -> torch.Tensor:
        """FD between the two sides, float64 scalar; warns when a side has N <= D (rank-deficient covariance)."""
        real, fake = self.stats(real=True), self.stats(real=False)
        for label, stats in (("reference", real), ("samples", fake)):
            if stats.n is not None and stats.n <= self.num_features:
                warnings.warn(
                    f"FD: {label} has {stats.n} features of dimension {self.num_features}, so its covariance has "
                    f"rank <= {stats.n - 1} < {self.num_features}; FD is strongly biased upward and unstable; use more "
                    f"than {self.num_features} images (10k+ for comparisons with published numbers)",
                    stacklevel=2,
                )
        return torch.tensor(
            frechet_distance(real.mu, real.sigma, fake.mu, fake.sigma, self.method), dtype=torch.float64
        )

    def reset(self) -> None:
        """Clear the state; keeps the reference side when ``reset_real_features`` is False."""
        if self.reset_real_features:
            super().reset()
            self._reference_source = "features"
            return
        kept = {
            name: deepcopy(getattr(self, name)) for name in ("real_sum", "real_cov_sum", "real_n", "real_n_unknown")
        }
        super().reset()
        for name, value in kept.items():
            setattr(self, name, value)


def fd_from_features(
    reference: Any,
    samples: Any,
    *,
    reference_stats: FeatureStats | None = None,
    method: SqrtMethod = "eigh",
    batch_size: int = 4096,
) -> MetricResult:
    """FD of two feature arrays (or precomputed reference statistics and sample features).

    Args:
        reference: ``(N_ref, D)`` reference features; ignored when ``reference_stats`` is given.
        samples: ``(N, D)`` sample features.
        reference_stats: precomputed reference statistics.
        method: square-root method.
        batch_size: rows per update (bounds the temporary memory).

    Returns:
        ``MetricResult(name="fd")`` with ``n_reference`` and ``method`` in details.
    """
    sample_array = as_features(samples, "sample features", min_rows=2)
    metric = FrechetDistance(sample_array.shape[1], method=method, sync_on_compute=False)  # all features are here
    if reference_stats is not None:
        metric.set_reference_stats(reference_stats)
        n_ref = reference_stats.n
    else:
        ref_array = as_features(reference, "reference features", min_rows=2, dim=sample_array.shape[1])
        for start in range(0, len(ref_array), batch_size):
            metric.update(ref_array[start : start + batch_size], real=True)
        n_ref = len(ref_array)
    for start in range(0, len(sample_array), batch_size):
        metric.update(sample_array[start : start + batch_size], real=False)
    value = float(metric.compute())
    details: dict[str, Any] = {"n_reference": n_ref if n_ref is not None else "unknown", "method": method}
    return MetricResult("fd", value, len(sample_array), higher_is_better=False, details=details)
