from __future__ import annotations

import numpy as np
import pytest
import torch

from models.networks.pca_quant import PCAQuantizer, QuantileBuckets, percentile_bucket


def _embeddings(n: int = 600, d: int = 8) -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    scales = torch.linspace(3.0, 0.1, d)
    mix = torch.linalg.qr(torch.randn(d, d, generator=gen))[0]
    return (torch.randn(n, d, generator=gen) * scales) @ mix.T + torch.arange(d) * 0.5


def test_pca_matches_numpy_eigendecomposition() -> None:
    z = _embeddings()
    quant = PCAQuantizer.fit(z, num_components=3, num_buckets=16)
    evals, evecs = np.linalg.eigh(np.cov(z.numpy().astype(np.float64), rowvar=False))
    order = np.argsort(evals)[::-1][:3]
    np.testing.assert_allclose(quant.explained_variance.numpy(), evals[order], rtol=1e-4)
    dots = np.abs(np.sum(quant.components.numpy() * evecs[:, order].T, axis=1))
    np.testing.assert_allclose(dots, 1.0, atol=1e-4)
    np.testing.assert_allclose(quant.mean.numpy(), z.numpy().mean(0), atol=1e-5)


def test_full_rank_reconstruction_is_exact_and_buckets_equal_mass() -> None:
    z = _embeddings()
    quant = PCAQuantizer.fit(z, num_components=8, num_buckets=10)
    torch.testing.assert_close(quant.reconstruct(quant.project(z)), z, atol=1e-4, rtol=1e-4)
    tokens = quant.encode(z)
    assert tokens.shape == (600, 8) and tokens.dtype == torch.int64
    assert tokens.min() >= 0 and tokens.max() <= 9
    for k in range(8):
        counts = torch.bincount(tokens[:, k], minlength=10)
        assert counts.min() >= 55 and counts.max() <= 65  # 60 per bucket
    # decoding error shrinks with more buckets
    errors = []
    for n in (4, 64):
        q = PCAQuantizer.fit(z, num_components=8, num_buckets=n)
        errors.append(((q.decode(q.encode(z)) - z) ** 2).mean().item())
    assert errors[1] < errors[0] / 10


def test_state_dict_round_trip() -> None:
    z = _embeddings()
    quant = PCAQuantizer.fit(z, num_components=4, num_buckets=8)
    restored = PCAQuantizer(8, 4, 8)
    restored.load_state_dict(quant.state_dict())
    assert torch.equal(restored.encode(z), quant.encode(z))
    assert set(quant.state_dict()) == {"mean", "components", "explained_variance", "buckets.edges", "buckets.centers"}


def test_scalar_buckets_and_percentiles() -> None:
    values = torch.arange(100, dtype=torch.float32)[:, None]
    buckets = QuantileBuckets(1, 4).fit(values)
    assert buckets.encode(torch.tensor([[0.0], [30.0], [60.0], [99.0]])).flatten().tolist() == [0, 1, 2, 3]
    assert [percentile_bucket(4, p) for p in (0.0, 0.5, 0.74, 1.0)] == [0, 2, 2, 3]
    with pytest.raises(ValueError, match="percentile"):
        percentile_bucket(4, 1.5)


def test_fit_errors() -> None:
    with pytest.raises(ValueError, match="more than num_components"):
        PCAQuantizer.fit(torch.randn(3, 8), num_components=4, num_buckets=4)
    with pytest.raises(ValueError, match="num_components"):
        PCAQuantizer(8, 9, 4)
    with pytest.raises(ValueError, match="at least 2"):
        QuantileBuckets(1, 1)
