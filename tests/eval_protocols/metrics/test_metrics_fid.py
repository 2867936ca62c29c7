"""Fréchet distance: parity with torchmetrics and scipy sqrtm, invariants, streaming, bad input."""

from __future__ import annotations

import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch
from torchmetrics.image.fid import FrechetInceptionDistance, _compute_fid

from eval_protocols.metrics.base import FeatureStats
from eval_protocols.metrics.fid import load_stats, save_stats
from eval_protocols.metrics.frechet import FrechetDistance, fd_from_features, frechet_distance


def _stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return x.mean(axis=0), np.cov(x, rowvar=False)


def _sqrtm_reference(mu1: np.ndarray, s1: np.ndarray, mu2: np.ndarray, s2: np.ndarray) -> float:
    """pytorch-fid's formula with scipy's float64 sqrtm (no deprecated disp argument)."""
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean).real)


@pytest.fixture
def two_sets(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    mixing = rng.normal(size=(32, 32)) / 6
    real = rng.normal(size=(400, 32)) @ mixing + 1.0
    fake = rng.normal(size=(300, 32)) @ (mixing + 0.05 * rng.normal(size=(32, 32))) + 1.2
    return real, fake


class _Identity(torch.nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.num_features = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


@pytest.mark.parametrize("method", ["eigh", "eig"])
def test_fd_equals_torchmetrics_and_scipy_sqrtm(two_sets: tuple[np.ndarray, np.ndarray], method: str) -> None:
    real, fake = two_sets
    ours = fd_from_features(real, fake, method=method).value  # type: ignore[arg-type]
    tm = FrechetInceptionDistance(feature=_Identity(32))
    tm.update(torch.from_numpy(real), real=True)
    tm.update(torch.from_numpy(fake), real=False)
    expected_tm = float(tm.compute())
    (mu1, s1), (mu2, s2) = _stats(real), _stats(fake)
    expected_fn = float(_compute_fid(*(torch.from_numpy(a) for a in (mu1, s1, mu2, s2))))
    expected_scipy = _sqrtm_reference(mu1, s1, mu2, s2)
    assert ours == pytest.approx(expected_tm, rel=1e-6)
    assert ours == pytest.approx(expected_fn, rel=1e-6)
    assert ours == pytest.approx(expected_scipy, rel=1e-6)


def test_fd_of_identical_sets_is_zero(two_sets: tuple[np.ndarray, np.ndarray]) -> None:
    real, _ = two_sets
    for method in ("eigh", "eig"):
        value = fd_from_features(real, real, method=method).value  # type: ignore[arg-type]
        assert -1e-6 <= value <= 1e-6


def test_fd_of_a_shift_is_the_squared_shift(two_sets: tuple[np.ndarray, np.ndarray]) -> None:
    real, _ = two_sets
    shift = np.linspace(-1, 1, real.shape[1])
    assert fd_from_features(real, real + shift).value == pytest.approx(float(shift @ shift), rel=1e-8)


def test_streamed_fd_equals_one_shot(two_sets: tuple[np.ndarray, np.ndarray]) -> None:
    real, fake = two_sets
    metric = FrechetDistance(32)
    for batch in np.array_split(real, 7):
        metric.update(batch, real=True)
    for batch in np.array_split(fake, 5):
        metric.update(torch.from_numpy(batch).float(), real=False)
    (mu1, s1), (mu2, s2) = _stats(real), _stats(fake.astype(np.float32).astype(np.float64))
    assert float(metric.compute()) == pytest.approx(frechet_distance(mu1, s1, mu2, s2), rel=1e-9)


def test_state_memory_does_not_grow_with_n(rng: np.random.Generator) -> None:
    def state_bytes(metric: FrechetDistance) -> int:
        return sum(getattr(metric, name).numel() * getattr(metric, name).element_size() for name in metric._defaults)

    small, large = FrechetDistance(64), FrechetDistance(64)
    for metric, n in ((small, 100), (large, 20_000)):
        tracemalloc.start()
        batch = min(n, 1000)
        for _ in range(n // batch):
            metric.update(rng.normal(size=(batch, 64)), real=True)
            metric.update(rng.normal(size=(batch, 64)), real=False)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert peak < 4 * 1024 * 1024  # numpy batches only; torch state lives outside tracemalloc
    assert state_bytes(small) == state_bytes(large) == 2 * 8 * (64 + 64 * 64) + 3 * 8
    assert int(large.fake_n) == 20_000


def test_npz_reference_stats_round_trip(tmp_path: Path, two_sets: tuple[np.ndarray, np.ndarray]) -> None:
    real, fake = two_sets
    metric = FrechetDistance(32)
    metric.update(real, real=True)
    save_stats(tmp_path / "ref.npz", metric.stats(real=True))
    stats = load_stats(tmp_path / "ref.npz")
    assert stats.n == len(real)
    from_stats = fd_from_features(None, fake, reference_stats=stats).value
    assert from_stats == pytest.approx(fd_from_features(real, fake).value, rel=1e-9)
    np.savez(tmp_path / "no_n.npz", mu=stats.mu, sigma=stats.sigma)  # pytorch-fid's --save-stats layout
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an unknown reference count must not trigger the rank warning
        unknown_n = fd_from_features(None, fake, reference_stats=load_stats(tmp_path / "no_n.npz"))
    assert unknown_n.value == pytest.approx(from_stats, rel=1e-9)
    assert unknown_n.details["n_reference"] == "unknown"


def test_bad_npz_names_the_missing_keys(tmp_path: Path) -> None:
    np.savez(tmp_path / "bad.npz", mean=np.zeros(3))
    with pytest.raises(ValueError, match="'mu' and 'sigma'.*mean"):
        load_stats(tmp_path / "bad.npz")
    np.savez(tmp_path / "shape.npz", mu=np.zeros(3), sigma=np.zeros((2, 2)))
    with pytest.raises(ValueError, match="not \\(D,\\) and \\(D, D\\)"):
        load_stats(tmp_path / "shape.npz")


def test_fewer_samples_than_dimensions_warns_with_rank(rng: np.random.Generator) -> None:
    with pytest.warns(UserWarning, match=r"rank <= 19 < 32"):
        fd_from_features(rng.normal(size=(100, 32)), rng.normal(size=(20, 32)))


def test_nan_rows_are_named_by_stream_position(rng: np.random.Generator) -> None:
    metric = FrechetDistance(4)
    metric.update(rng.normal(size=(10, 4)), real=False)
    batch = rng.normal(size=(5, 4))
    batch[2, 1] = np.nan
    batch[4, 0] = np.inf
    with pytest.raises(ValueError, match=r"rows \[12, 14\]"):
        metric.update(batch, real=False)
    bad = rng.normal(size=(6, 4))
    bad[3] = np.nan
    with pytest.raises(ValueError, match=r"rows \[3\]"):
        fd_from_features(bad, rng.normal(size=(6, 4)))


def test_dimension_mismatch_and_too_few_samples(rng: np.random.Generator) -> None:
    with pytest.raises(ValueError, match="dimension 4 but the other set has 5"):
        fd_from_features(rng.normal(size=(10, 4)), rng.normal(size=(10, 5)))
    metric = FrechetDistance(4)
    metric.update(rng.normal(size=(1, 4)), real=True)
    metric.update(rng.normal(size=(5, 4)), real=False)
    with pytest.raises(ValueError, match="at least 2 reference"):
        metric.compute()


def test_reset_can_keep_the_reference(two_sets: tuple[np.ndarray, np.ndarray]) -> None:
    real, fake = two_sets
    metric = FrechetDistance(32, reset_real_features=False)
    metric.update(real, real=True)
    metric.update(real, real=False)
    metric.reset()
    assert int(metric.real_n) == len(real) and int(metric.fake_n) == 0
    metric.update(fake, real=False)
    assert float(metric.compute()) == pytest.approx(fd_from_features(real, fake).value, rel=1e-9)
    plain = FrechetDistance(32)
    plain.update(real, real=True)
    plain.reset()
    assert int(plain.real_n) == 0


def test_pure_function_checks_inputs() -> None:
    with pytest.raises(ValueError, match="one D"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(2), np.eye(2))
    with pytest.raises(ValueError, match="NaN"):
        frechet_distance(np.array([np.nan, 0.0]), np.eye(2), np.zeros(2), np.eye(2))
    with pytest.raises(ValueError, match="square-root method"):
        frechet_distance(np.zeros(2), np.eye(2), np.zeros(2), np.eye(2), method="sqrtm")  # type: ignore[arg-type]
    assert frechet_distance(np.zeros(2), 4 * np.eye(2), np.ones(2), np.eye(2)) == pytest.approx(2 + 8 + 2 - 2 * 4)


def test_reference_stats_with_wrong_shape() -> None:
    with pytest.raises(ValueError, match="expected"):
        FrechetDistance(3).set_reference_stats(FeatureStats(np.zeros(2), np.eye(2), 10))


def test_singular_covariance_uses_the_psd_root_and_still_matches_sqrtm(rng: np.random.Generator) -> None:
    a = rng.normal(size=(32, 10))
    s1 = a @ a.T  # rank 10 of 32: no Cholesky factor
    assert int(torch.linalg.cholesky_ex(torch.from_numpy(s1)).info) != 0
    b = rng.normal(size=(32, 40))
    s2 = b @ b.T / 40
    mu1, mu2 = rng.normal(size=32), rng.normal(size=32)
    expected = _sqrtm_reference(mu1, s1, mu2, s2)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-6)
    assert frechet_distance(mu1, s1, mu2, s2, method="eig") == pytest.approx(expected, rel=1e-6)
