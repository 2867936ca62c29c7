"""Noise schedules against their closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest

from models.diffusion.gaussian import GaussianDiffusion
from models.diffusion.schedules import (
    SCHEDULE_NAMES,
    betas_for_alpha_bar,
    cosine_betas,
    get_named_beta_schedule,
    linear_betas,
)


def _cosine_f(tau: float, s: float = 0.008) -> float:
    return math.cos((tau + s) / (1 + s) * math.pi / 2) ** 2


@pytest.mark.parametrize("num_timesteps", [21, 100, 1000])
def test_linear_alphas_cumprod_matches_product_of_the_linear_formula(num_timesteps: int) -> None:
    scale = 1000 / num_timesteps
    start, end = 1e-4 * scale, 0.02 * scale
    betas_ref = [start + i * (end - start) / (num_timesteps - 1) for i in range(num_timesteps)]
    alpha_bar_ref = np.cumprod([1 - b for b in betas_ref])
    diffusion = GaussianDiffusion(get_named_beta_schedule("linear", num_timesteps))
    np.testing.assert_allclose(diffusion.betas, betas_ref, rtol=1e-12)
    np.testing.assert_allclose(diffusion.alphas_cumprod, alpha_bar_ref, rtol=1e-10)


def test_linear_schedule_has_ho_et_al_endpoints_at_1000_steps() -> None:
    betas = linear_betas(1000)
    assert betas[0] == pytest.approx(1e-4) and betas[-1] == pytest.approx(0.02)
    assert betas.dtype == np.float64 and betas.shape == (1000,)


@pytest.mark.parametrize("num_timesteps", [50, 1000])
def test_cosine_alphas_cumprod_matches_closed_form_until_the_cap(num_timesteps: int) -> None:
    betas = cosine_betas(num_timesteps)
    alpha_bar = np.cumprod(1 - betas)
    expected = np.array([_cosine_f((t + 1) / num_timesteps) / _cosine_f(0.0) for t in range(num_timesteps)])
    uncapped = betas < 0.999
    # Every beta before the first capped one reproduces f(t/T)/f(0) exactly.
    first_capped = int(np.argmin(uncapped)) if not uncapped.all() else num_timesteps
    np.testing.assert_allclose(alpha_bar[:first_capped], expected[:first_capped], rtol=1e-9, atol=1e-15)
    assert alpha_bar[-1] < 1e-6


def test_cosine_alpha_bar_starts_near_one() -> None:
    alpha_bar = np.cumprod(1 - cosine_betas(1000))
    assert 1 - 1e-4 < alpha_bar[0] < 1.0


def test_linear_schedule_refuses_too_few_steps() -> None:
    with pytest.raises(ValueError, match="more than 20 steps"):
        linear_betas(20)


def test_cosine_betas_are_capped_at_0999() -> None:
    betas = cosine_betas(1000)
    assert betas.max() == pytest.approx(0.999)
    assert betas[-1] == pytest.approx(0.999)
    assert np.all(np.diff(betas) >= 0)


def test_betas_for_alpha_bar_reproduces_a_custom_alpha_bar() -> None:
    def alpha_bar(tau: float) -> float:
        return 1.0 - 0.9 * tau

    betas = betas_for_alpha_bar(20, alpha_bar)
    np.testing.assert_allclose(np.cumprod(1 - betas), [alpha_bar((i + 1) / 20) for i in range(20)], rtol=1e-12)


def test_unknown_schedule_name_lists_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="linear, cosine") as info:
        get_named_beta_schedule("sigmoid", 10)
    assert all(name in str(info.value) for name in SCHEDULE_NAMES)


@pytest.mark.parametrize("bad", [0, -3, 2.5])
def test_bad_num_timesteps_raises(bad: float) -> None:
    with pytest.raises(ValueError, match="num_timesteps"):
        get_named_beta_schedule("cosine", bad)  # type: ignore[arg-type]


def test_bad_max_beta_raises() -> None:
    with pytest.raises(ValueError, match="max_beta"):
        betas_for_alpha_bar(10, _cosine_f, max_beta=1.5)
