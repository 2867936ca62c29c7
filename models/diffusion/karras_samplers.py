"""Euler-ancestral and Heun samplers (Karras et al. 2022, "Elucidating the Design Space of Diffusion-Based
Generative Models", Alg. 1 and the ancestral Euler of k-diffusion), run in the variance-exploding variable.

A variance-preserving state x_t = α_t x_0 + σ_t ε is, divided by α_t, y = x_t / α_t = x_0 + s_t ε with
s_t = σ_t / α_t = e^{−λ_t} (the "Karras σ"). The probability-flow ODE is then dy/ds = (y − x̂_0(y, s)) / s, and

* **Heun** (2nd order, deterministic): d = (y − x̂_0(s))/s,  ŷ = y + (s' − s) d,
  d' = (ŷ − x̂_0(ŷ, s'))/s',  y' = y + (s' − s)(d + d')/2; the last step (s' = 0) is the Euler step y' = x̂_0.
  Two network calls per step except the last: 2K − 1 for K kept steps.
* **Euler ancestral** (stochastic, η = 1): s_up = min(s', √(s'² (s² − s'²) / s²)), s_down = √(s'² − s_up²),
  y' = y + (s_down − s) d + s_up z,  z ~ N(0, I) from each sample's generator. One call per step.

Like :mod:`models.diffusion.dpm_solver`, the nodes are the kept discrete steps of a (respaced, possibly
truncated) diffusion, index K−1 → 0, then the clean end s = 0; x̂_0 comes from
:meth:`~models.diffusion.gaussian.GaussianDiffusion.p_mean_variance` (ε, x_0 or v networks; ``clip_denoised``,
``denoised_fn``; learned variance ignored).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from models.diffusion.dpm_solver import LogSNRNode, log_snr_nodes
from models.diffusion.gaussian import GaussianDiffusion, ModelFn
from models.diffusion.loop import GeneratorArg, ProgressFn, SampleStep, initial_x, randn, step_tensor


def _ve_sigma(node: LogSNRNode) -> float:
    """s = σ/α (0 at the clean end)."""
    return node.sigma / node.alpha


def euler_ancestral_sample_loop_progressive(
    diffusion: GaussianDiffusion,
    model_fn: ModelFn,
    shape: Sequence[int],
    *,
    generator: GeneratorArg,
    cond: Mapping[str, Any] | None = None,
    noise: Tensor | None = None,
    clip_denoised: bool = True,
    denoised_fn: Callable[[Tensor], Tensor] | None = None,
    progress: ProgressFn | None = None,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> Iterator[SampleStep]:
    """Euler-ancestral sampling (module docstring); arguments as
    :func:`~models.diffusion.dpm_solver.dpm_solver_sample_loop_progressive`.

    Yields:
        :class:`SampleStep` after each step (one network call each).
    """
    x = initial_x(shape, generator, noise, device, dtype)
    nodes = log_snr_nodes(diffusion.alphas_cumprod)
    total = diffusion.num_timesteps
    for step, index in enumerate(range(total - 1, -1, -1)):
        source, target = nodes[index], nodes[index - 1]
        s, s_next = _ve_sigma(source), _ve_sigma(target)
        with torch.no_grad():
            out = diffusion.p_mean_variance(model_fn, x, step_tensor(x, index), cond, clip_denoised, denoised_fn)
            y = x / source.alpha
            s_up = min(s_next, math.sqrt(max(s_next**2 * (s**2 - s_next**2) / s**2, 0.0)))
            s_down = math.sqrt(max(s_next**2 - s_up**2, 0.0))
            y = out.pred_x0 + (s_down / s) * (y - out.pred_x0)  # y + (s_down − s)·(y − x̂_0)/s
            if s_up > 0:
                y = y + s_up * randn(x.shape, generator, x.device, x.dtype)
            x = target.alpha * y
        if progress is not None:
            progress(step + 1, total)
        yield SampleStep(step=step, t=index, sample=x, pred_x0=out.pred_x0)


def heun_sample_loop_progressive(
    diffusion: GaussianDiffusion,
    model_fn: ModelFn,
    shape: Sequence[int],
    *,
    generator: GeneratorArg | None,
    cond: Mapping[str, Any] | None = None,
    noise: Tensor | None = None,
    clip_denoised: bool = True,
    denoised_fn: Callable[[Tensor], Tensor] | None = None,
    progress: ProgressFn | None = None,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> Iterator[SampleStep]:
    """Heun's 2nd-order sampling (module docstring); deterministic given the start (``generator`` may be None when
    ``noise`` is given). Other arguments as :func:`euler_ancestral_sample_loop_progressive`.

    Yields:
        :class:`SampleStep` after each step (two network calls each but the last).
    """
    x = initial_x(shape, generator, noise, device, dtype)
    nodes = log_snr_nodes(diffusion.alphas_cumprod)
    total = diffusion.num_timesteps
    for step, index in enumerate(range(total - 1, -1, -1)):
        source, target = nodes[index], nodes[index - 1]
        s, s_next = _ve_sigma(source), _ve_sigma(target)
        with torch.no_grad():
            out = diffusion.p_mean_variance(model_fn, x, step_tensor(x, index), cond, clip_denoised, denoised_fn)
            y = x / source.alpha
            d = (y - out.pred_x0) / s
            y_euler = y + (s_next - s) * d
            if index == 0:
                y = y_euler
            else:
                x_euler = target.alpha * y_euler
                out_next = diffusion.p_mean_variance(
                    model_fn, x_euler, step_tensor(x, index - 1), cond, clip_denoised, denoised_fn
                )
                d_next = (y_euler - out_next.pred_x0) / s_next
                y = y + (0.5 * (s_next - s)) * (d + d_next)
            x = target.alpha * y
        if progress is not None:
            progress(step + 1, total)
        yield SampleStep(step=step, t=index, sample=x, pred_x0=out.pred_x0)
