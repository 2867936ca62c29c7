"""Noise schedules β_1..β_T for Gaussian diffusion.

A schedule is a float64 array ``betas`` of shape (T,) with 0 < β_t < 1; everything else
(α_t = 1 − β_t, ᾱ_t = Π_{s≤t} α_s, posterior coefficients) is derived from it in
:class:`models.diffusion.gaussian.GaussianDiffusion`.

Two named schedules are provided, as in guided-diffusion's ``get_named_beta_schedule``:

* ``"linear"`` (Ho et al. 2020): β_t linear from 1e-4·(1000/T) to 0.02·(1000/T), so that any T
  approximates the original 1000-step chain. Used by the paper's 256→1024 upsampler (Table 3) and
  GLIDE's released upsampler.
* ``"cosine"`` (Nichol & Dhariwal 2021): ᾱ(t) = f(t)/f(0) with f(t) = cos²(((t/T) + s)/(1 + s) · π/2),
  s = 0.008, and β_t = min(1 − ᾱ(t)/ᾱ(t−1), 0.999). Used by the unCLIP prior, decoder and 64→256
  upsampler (Table 3), and GLIDE (``squaredcos_cap_v2`` in diffusers).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

SCHEDULE_NAMES: tuple[str, ...] = ("linear", "cosine")

COSINE_OFFSET = 0.008
"""Nichol & Dhariwal's small offset s, which keeps β_1 from being vanishingly small near t = 0."""

MAX_BETA = 0.999
"""Cap on β_t for the cosine schedule: prevents the singularity of ᾱ(T) = 0 at the end of the chain."""


def betas_for_alpha_bar(
    num_timesteps: int,
    alpha_bar: Callable[[float], float],
    max_beta: float = MAX_BETA,
) -> np.ndarray:
    """Discretise a continuous cumulative-signal function ᾱ(τ), τ ∈ [0, 1], into betas.

    β_i = min(1 − ᾱ((i + 1)/T) / ᾱ(i/T), max_beta), for i = 0..T−1, so that, before capping,
    Π_{j≤i}(1 − β_j) = ᾱ((i + 1)/T) / ᾱ(0).

    Args:
        num_timesteps: T, the number of diffusion steps (≥ 1).
        alpha_bar: ᾱ(τ), non-increasing on [0, 1] with ᾱ(0) > 0.
        max_beta: upper bound on each β (< 1).

    Returns:
        float64 array of shape (T,) with values in (0, max_beta].

    Raises:
        ValueError: if ``num_timesteps`` < 1 or ``max_beta`` is not in (0, 1).
    """
    _check_num_timesteps(num_timesteps)
    if not 0.0 < max_beta < 1.0:
        raise ValueError(f"max_beta must be in (0, 1), got {max_beta}; use e.g. {MAX_BETA}")
    betas = []
    for i in range(num_timesteps):
        t1 = i / num_timesteps
        t2 = (i + 1) / num_timesteps
        betas.append(min(1.0 - alpha_bar(t2) / alpha_bar(t1), max_beta))
    return np.asarray(betas, dtype=np.float64)


def cosine_alpha_bar(tau: float) -> float:
    """The unnormalised cosine schedule f(τ) = cos²((τ + s)/(1 + s) · π/2), s = 0.008, τ ∈ [0, 1]."""
    return math.cos((tau + COSINE_OFFSET) / (1.0 + COSINE_OFFSET) * math.pi / 2) ** 2


def linear_betas(num_timesteps: int) -> np.ndarray:
    """Ho et al.'s linear schedule, rescaled so that any T mimics the 1000-step chain.

    β_t = linspace(1e-4 · 1000/T, 0.02 · 1000/T, T).

    Args:
        num_timesteps: T (> 20, since β_T = 20/T must stay below 1).

    Returns:
        float64 array of shape (T,).

    Raises:
        ValueError: T ≤ 20.
    """
    _check_num_timesteps(num_timesteps)
    if num_timesteps <= 20:
        raise ValueError(
            f"the linear schedule needs more than 20 steps (β_T = 20/T < 1), got {num_timesteps}; use cosine"
        )
    scale = 1000.0 / num_timesteps
    return np.linspace(scale * 1e-4, scale * 0.02, num_timesteps, dtype=np.float64)


def cosine_betas(num_timesteps: int) -> np.ndarray:
    """Nichol & Dhariwal's cosine schedule: :func:`betas_for_alpha_bar` of :func:`cosine_alpha_bar`, capped at 0.999.

    Args:
        num_timesteps: T (≥ 1).

    Returns:
        float64 array of shape (T,); ᾱ_t = Π(1 − β) equals f(t/T)/f(0) wherever no cap applied.
    """
    return betas_for_alpha_bar(num_timesteps, cosine_alpha_bar, MAX_BETA)


def get_named_beta_schedule(name: str, num_timesteps: int) -> np.ndarray:
    """Betas of a named schedule.

    Args:
        name: one of :data:`SCHEDULE_NAMES` (``"linear"``, ``"cosine"``).
        num_timesteps: T (≥ 1).

    Returns:
        float64 array of shape (T,).

    Raises:
        ValueError: unknown ``name`` (the message lists the valid ones) or T < 1.
    """
    if name == "linear":
        return linear_betas(num_timesteps)
    if name == "cosine":
        return cosine_betas(num_timesteps)
    raise ValueError(f"unknown noise schedule {name!r}; use one of: {', '.join(SCHEDULE_NAMES)}")


def _check_num_timesteps(num_timesteps: int) -> None:
    if int(num_timesteps) != num_timesteps or num_timesteps < 1:
        raise ValueError(f"num_timesteps must be a positive integer, got {num_timesteps!r}")
