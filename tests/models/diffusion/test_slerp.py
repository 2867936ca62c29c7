"""slerp: endpoints, norm, agreement with a brute-force rotation in the plane of a and b, batching, edge cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from models.diffusion.slerp import slerp, text_diff_direction


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def _brute_force_rotation(a: np.ndarray, b: np.ndarray, theta: float) -> np.ndarray:
    """Rotate â by θΩ towards b̂ inside span(a, b) (Gram–Schmidt basis), for unit a, b."""
    u = _unit(a)
    w = _unit(b - (b @ u) * u)
    omega = math.acos(float(np.clip(u @ _unit(b), -1, 1)))
    return math.cos(theta * omega) * u + math.sin(theta * omega) * w


@pytest.fixture
def pair(rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.tensor(_unit(rng.normal(size=16))), torch.tensor(_unit(rng.normal(size=16)))


def test_endpoints(pair: tuple[torch.Tensor, torch.Tensor]) -> None:
    a, b = pair
    torch.testing.assert_close(slerp(a, b, 0.0), a)
    torch.testing.assert_close(slerp(a, b, 1.0), b)
    scaled = slerp(3 * a, 0.5 * b, 1.0)  # endpoints hold for non-unit vectors too
    torch.testing.assert_close(scaled, 0.5 * b)


def test_unit_vectors_stay_on_the_sphere_and_match_the_rotation(pair: tuple[torch.Tensor, torch.Tensor]) -> None:
    a, b = pair
    for theta in np.linspace(0, 1, 11):
        out = slerp(a, b, float(theta))
        assert out.norm().item() == pytest.approx(1.0, abs=1e-12)
        np.testing.assert_allclose(out.numpy(), _brute_force_rotation(a.numpy(), b.numpy(), float(theta)), atol=1e-12)


def test_angles_to_the_endpoints_split_omega(pair: tuple[torch.Tensor, torch.Tensor]) -> None:
    a, b = pair
    omega = math.acos(float(a @ b))
    out = slerp(a, b, 0.3)
    assert math.acos(float(out @ a)) == pytest.approx(0.3 * omega, abs=1e-9)
    assert math.acos(float(out @ b)) == pytest.approx(0.7 * omega, abs=1e-9)


def test_is_not_elementwise(pair: tuple[torch.Tensor, torch.Tensor]) -> None:
    a, b = pair
    omega = torch.acos((a * b).clamp(-1, 1))  # the community-pipeline bug: no sum over the vector
    elementwise = (torch.sin(0.5 * omega) * a + torch.sin(0.5 * omega) * b) / torch.sin(omega)
    assert not torch.allclose(slerp(a, b, 0.5), elementwise)


def test_batched_rows_with_per_row_theta_match_single_calls(rng: np.random.Generator) -> None:
    a = torch.tensor(rng.normal(size=(4, 3, 2, 2)), dtype=torch.float32)
    b = torch.tensor(rng.normal(size=(4, 3, 2, 2)), dtype=torch.float32)
    theta = torch.tensor([0.0, 0.25, 0.5, 1.0])
    out = slerp(a, b, theta, start_dim=1)
    assert out.shape == a.shape and out.dtype == torch.float32
    for i in range(4):
        torch.testing.assert_close(out[i], slerp(a[i], b[i], float(theta[i])))


def test_near_parallel_and_identical_inputs_fall_back_to_lerp(pair: tuple[torch.Tensor, torch.Tensor]) -> None:
    a, _ = pair
    torch.testing.assert_close(slerp(a, a.clone(), 0.4), a)
    nearly = a + 1e-12 * torch.roll(a, 1)
    out = slerp(a, nearly, 0.5)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, 0.5 * (a + nearly))
    opposite = slerp(a, -a, 0.5)
    assert torch.isfinite(opposite).all()


def test_text_diff_direction_is_unit_and_rejects_equal_captions(pair: tuple[torch.Tensor, torch.Tensor]) -> None:
    a, b = pair
    z_d = text_diff_direction(torch.stack([a, b]), torch.stack([b, a]))
    torch.testing.assert_close(z_d.norm(dim=-1), torch.ones(2, dtype=z_d.dtype))
    torch.testing.assert_close(z_d[0], (a - b) / (a - b).norm())
    with pytest.raises(ValueError, match="identical"):
        text_diff_direction(a, a)


def test_shape_and_start_dim_errors(pair: tuple[torch.Tensor, torch.Tensor]) -> None:
    a, b = pair
    with pytest.raises(ValueError, match="equal shapes"):
        slerp(a, b[:3], 0.5)
    with pytest.raises(ValueError, match="start_dim"):
        slerp(a, b, 0.5, start_dim=1)
