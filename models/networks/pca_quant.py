"""PCA + per-component quantisation of CLIP image embeddings for the autoregressive prior (unCLIP §2.2).

The paper reduces z_i (1024-d) to its 319 leading principal components (ordered by decreasing eigenvalue; < 1%
average reconstruction MSE) and quantises each into 1,024 buckets; it also conditions on a quantised z_i·z_t.

Choices (the paper gives no bucketing rule): buckets are **equal-mass** (edges at the training quantiles i/n of each
component), so every bucket is used; a bucket decodes to its median (quantile (i + ½)/n). The same rule quantises
z_i·z_t, so "a dot product from the top half of the distribution" is any bucket ≥ n/2, and the bucket at
percentile p is ⌊p·n⌋ (:func:`percentile_bucket`).

These are buffer-only ``nn.Module`` s: fitted statistics travel in the prior's checkpoint (``state_dict``) and
follow ``.to(device)``; build an empty one with the sizes and ``load_state_dict`` to restore. Fitting is
deterministic (SVD in float64; each component's sign is fixed so that its largest-magnitude entry is positive).
"""

from __future__ import annotations

import torch
from torch import nn


def percentile_bucket(num_buckets: int, percentile: float) -> int:
    """Equal-mass bucket holding the given percentile, ``min(⌊p·n⌋, n − 1)``.

    Args:
        num_buckets: n.
        percentile: p in [0, 1] (e.g. 0.5 for the median of z_i·z_t, the paper's best setting).

    Raises:
        ValueError: p outside [0, 1].
    """
    if not 0.0 <= percentile <= 1.0:
        raise ValueError(f"percentile must lie in [0, 1], got {percentile}")
    return min(int(percentile * num_buckets), num_buckets - 1)


class QuantileBuckets(nn.Module):
    """Independent equal-mass quantisation of K real columns into n buckets each.

    Buffers: ``edges`` (K, n − 1) increasing inner edges; ``centers`` (K, n) decoded values.

    Args:
        num_columns: K.
        num_buckets: n ≥ 2.
    """

    edges: torch.Tensor
    centers: torch.Tensor

    def __init__(self, num_columns: int, num_buckets: int) -> None:
        super().__init__()
        if num_buckets < 2:
            raise ValueError(f"num_buckets must be at least 2, got {num_buckets}")
        self.register_buffer("edges", torch.zeros(num_columns, num_buckets - 1))
        self.register_buffer("centers", torch.zeros(num_columns, num_buckets))

    @property
    def num_buckets(self) -> int:
        return self.centers.shape[1]

    @torch.no_grad()
    def fit(self, values: torch.Tensor) -> QuantileBuckets:
        """Set edges and centers from training values (N, K); returns self."""
        if values.ndim != 2 or values.shape[1] != self.edges.shape[0]:
            raise ValueError(f"expected values of shape (N, {self.edges.shape[0]}), got {tuple(values.shape)}")
        n = self.num_buckets
        v = values.double()
        q_edges = torch.arange(1, n, dtype=torch.float64, device=v.device) / n
        q_centers = (torch.arange(n, dtype=torch.float64, device=v.device) + 0.5) / n
        self.edges.copy_(torch.quantile(v, q_edges, dim=0).T)
        self.centers.copy_(torch.quantile(v, q_centers, dim=0).T)
        return self

    def encode(self, values: torch.Tensor) -> torch.Tensor:
        """(N, K) float → (N, K) int64 bucket ids in [0, n): bucket i holds edges[i−1] < v ≤ edges[i]."""
        edges = self.edges.to(values.dtype)
        return torch.searchsorted(edges, values.T.contiguous()).T

    def decode(self, tokens: torch.Tensor) -> torch.Tensor:
        """(N, K) bucket ids → (N, K) float bucket centers."""
        return torch.gather(self.centers.T, 0, tokens)


class PCAQuantizer(nn.Module):
    """PCA to K leading components, each quantised into n equal-mass buckets.

    ``c = (z − μ) Vᵀ`` with V (K, D) the leading right singular vectors of the centred training set;
    ``ẑ = μ + c V``. Buffers: ``mean`` (D,), ``components`` (K, D), ``explained_variance`` (K,) and ``buckets``.

    Args:
        embed_dim: D.
        num_components: K ≤ D.
        num_buckets: n per component.
    """

    mean: torch.Tensor
    components: torch.Tensor
    explained_variance: torch.Tensor

    def __init__(self, embed_dim: int, num_components: int, num_buckets: int) -> None:
        super().__init__()
        if not 0 < num_components <= embed_dim:
            raise ValueError(f"num_components must lie in [1, embed_dim={embed_dim}], got {num_components}")
        self.register_buffer("mean", torch.zeros(embed_dim))
        self.register_buffer("components", torch.zeros(num_components, embed_dim))
        self.register_buffer("explained_variance", torch.zeros(num_components))
        self.buckets = QuantileBuckets(num_components, num_buckets)

    @classmethod
    @torch.no_grad()
    def fit(cls, z: torch.Tensor, num_components: int, num_buckets: int) -> PCAQuantizer:
        """Fit PCA and the buckets on embeddings z (N, D), N > K.

        Raises:
            ValueError: too few samples for K components.
        """
        n, d = z.shape
        if n <= num_components:
            raise ValueError(f"need more than num_components={num_components} embeddings to fit PCA, got {n}")
        quant = cls(d, num_components, num_buckets).to(z.device)
        x = z.double()
        mean = x.mean(dim=0)
        _, s, vh = torch.linalg.svd(x - mean, full_matrices=False)
        v = vh[:num_components]
        sign = torch.sign(v.gather(1, v.abs().argmax(dim=1, keepdim=True)))
        v = v * sign
        quant.mean.copy_(mean)
        quant.components.copy_(v)
        quant.explained_variance.copy_(s[:num_components] ** 2 / (n - 1))
        quant.buckets.fit((x - mean) @ v.T)
        return quant

    def project(self, z: torch.Tensor) -> torch.Tensor:
        """(N, D) embeddings → (N, K) PCA coefficients."""
        return (z - self.mean.to(z.dtype)) @ self.components.to(z.dtype).T

    def reconstruct(self, coeffs: torch.Tensor) -> torch.Tensor:
        """(N, K) coefficients → (N, D) embeddings."""
        return self.mean.to(coeffs.dtype) + coeffs @ self.components.to(coeffs.dtype)

    def encode(self, z: torch.Tensor) -> torch.Tensor:
        """(N, D) embeddings → (N, K) int64 bucket ids (the AR prior's targets)."""
        return self.buckets.encode(self.project(z))

    def decode(self, tokens: torch.Tensor) -> torch.Tensor:
        """(N, K) bucket ids → (N, D) float embeddings (bucket centers, reconstructed)."""
        return self.reconstruct(self.buckets.decode(tokens).to(self.components.dtype))
