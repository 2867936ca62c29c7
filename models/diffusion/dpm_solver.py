"""DPM-Solver++ (Lu et al. 2022, "DPM-Solver++: Fast Solver for Guided Sampling of Diffusion Probabilistic Models"):
multistep solvers of the diffusion ODE (and its SDE variant) in log-SNR time, on the data prediction x̂_0.

Time variable. With α_t = √ᾱ_t and σ_t = √(1 − ᾱ_t), λ_t = log(α_t / σ_t) is half the log signal-to-noise ratio; it
increases as the sampler moves towards the data. The probability-flow ODE, written for the data prediction
x̂_0(x, λ), has the exact solution (variation of constants, Lu et al. eq. 8)

    x_t = (σ_t / σ_s) x_s + σ_t ∫_{λ_s}^{λ_t} e^{λ} x̂_0(x_λ, λ) dλ.

Expanding x̂_0 in λ around λ_s and integrating term by term gives, with h = λ_t − λ_s > 0 and the previous nodes
s_1, s_2 (h_0 = λ_s − λ_{s_1}, h_1 = λ_{s_1} − λ_{s_2}, r_i = h_i / h, m_i = x̂_0 at s, s_1, s_2):

* order 1 (= DDIM with η = 0):  x_t = (σ_t/σ_s) x_s + α_t (1 − e^{−h}) D_0,  D_0 = m_0;
* order 2 ("2M", midpoint form):  x_t = (σ_t/σ_s) x_s + α_t (1 − e^{−h}) (D_0 + ½ D_1),  D_1 = (m_0 − m_1)/r_0;
* order 3 ("3M"):  D_1⁰ = (m_0 − m_1)/r_0,  D_1¹ = (m_1 − m_2)/r_1,  D_1 = D_1⁰ + r_0/(r_0 + r_1) (D_1⁰ − D_1¹),
  D_2 = 2 (D_1⁰ − D_1¹)/(r_0 + r_1),
  x_t = (σ_t/σ_s) x_s + α_t (1 − e^{−h}) D_0 + α_t ((e^{−h} − 1)/h + 1) D_1 − α_t ((e^{−h} − 1 + h)/h² − ½) D_2.

  D_1 ≈ h x̂_0' and D_2 ≈ h² x̂_0'' (Taylor: D_1⁰ − D_1¹ = ½ h (h_0 + h_1) x̂_0'' + O(h³)), the coefficients of the
  exact integrals ∫ e^{λ}(λ − λ_s)^n/n! dλ. **Note:** the reference implementations (the DPM-Solver repository,
  k-diffusion's ``dpmpp_3m_sde``, diffusers' ``multistep_dpm_solver_third_order_update``) use D_2 without the
  factor 2, i.e. half the second-derivative term; their "3M" then has a local error O(h³) and converges at order 2.
  With the factor the local error is O(h⁴) and the global order 3 (``tests/models/diffusion/test_dpm_solver.py``).

The SDE variant ("2M SDE", Lu et al. App. / diffusers' ``sde-dpmsolver++``) integrates the reverse SDE with the
same expansion: x_t = (σ_t/σ_s) e^{−h} x_s + α_t (1 − e^{−2h}) (D_0 + ½ D_1) + σ_t √(1 − e^{−2h}) z, z ~ N(0, I)
drawn from each sample's own generator at every step.

Steps. The solver visits the kept steps of a (respaced) :class:`~models.diffusion.gaussian.GaussianDiffusion`,
index K−1 (the noisiest, e.g. T − 1, or ``last_step`` for a truncated chain) down to 0, evaluating the network once
per step; after step 0 it moves to the clean end (α = 1, σ = 0, λ = ∞), where every order reduces to x = x̂_0 of
the last evaluation, as DDIM's last step does. **Choice: time is restricted to the trained discrete steps** — every
node is a step the network was trained at, and λ of a node is the exact λ of its trained ᾱ; Karras and uniform-λ
spacings choose which discrete steps to keep (:func:`~models.diffusion.respace.space_timesteps`), so they apply to
every sampler, DDIM included. With few steps prefer ``"trailingN"`` to ``"N"``: ``"N"`` keeps step 0 (σ/α ≈ 0.006 on
the cosine chain), so the step before it is long in λ and its 2nd-order extrapolation ½·D_1 = ½ (h/h_0)(m_0 − m_1)
amplifies the difference of the last two x̂_0 (h/h_0 ≈ 4.8 at 5 steps), which shows as speckle. (diffusers instead keeps the continuous Karras σ for the update and rounds only the
network's timestep, so the network sees a slightly different noise level than the state carries.)

Order schedule: step k of K uses order min(order, k + 1, K − k): the first steps have no history yet, and the last
steps drop to lower order as in the paper's "lower order final" (§3.3, stabler at < 15 steps); the final step to
λ = ∞ is first order. With order 2 this is exactly diffusers' ``DPMSolverMultistepScheduler`` with
``final_sigmas_type="zero"`` (tested against it).

x̂_0 comes from :meth:`GaussianDiffusion.p_mean_variance`, so every ``ModelMeanType`` (ε, x_0, v) works, learned
variance channels are ignored, and ``clip_denoised`` / ``denoised_fn`` act on x̂_0 exactly as in DDIM.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from models.diffusion.gaussian import GaussianDiffusion, ModelFn
from models.diffusion.loop import GeneratorArg, ProgressFn, SampleStep, initial_x, randn, step_tensor

MAX_ORDER = 3


@dataclass(frozen=True)
class LogSNRNode:
    """One node of the solver's time grid: α = √ᾱ, σ = √(1 − ᾱ), λ = log(α/σ) (λ = ∞ at the clean end)."""

    alpha: float
    sigma: float
    lam: float


def log_snr_nodes(alphas_cumprod: np.ndarray) -> list[LogSNRNode]:
    """The nodes of a chain's kept steps, index 0..K−1, plus the clean end (ᾱ = 1) at index −1 of the list.

    Args:
        alphas_cumprod: ᾱ of the kept steps, shape (K,), in (0, 1).

    Returns:
        K + 1 nodes: node k is step k, the last one is the clean end (α 1, σ 0, λ ∞).
    """
    nodes = []
    for alpha_bar in np.asarray(alphas_cumprod, dtype=np.float64):
        alpha, sigma = math.sqrt(alpha_bar), math.sqrt(1.0 - alpha_bar)
        nodes.append(LogSNRNode(alpha, sigma, math.log(alpha) - math.log(sigma)))
    nodes.append(LogSNRNode(1.0, 0.0, math.inf))
    return nodes


def dpm_solver_update(
    x: Tensor,
    history: Sequence[tuple[LogSNRNode, Tensor]],
    target: LogSNRNode,
    noise: Tensor | None = None,
) -> Tensor:
    """One DPM-Solver++ step from the newest history node s to ``target`` t (module docstring).

    Args:
        x: x_s, shape (B, ...).
        history: the last 1–3 (node, x̂_0) pairs, oldest first; its length is the order of this step.
        target: the node t to step to (λ_t > λ_s; λ_t = ∞ returns x̂_0 of s).
        noise: z ~ N(0, I) of x's shape for the SDE variant; None for the ODE.

    Returns:
        x_t, shape of x.
    """
    order = len(history)
    if not 1 <= order <= MAX_ORDER:
        raise ValueError(f"DPM-Solver++ order must be 1..{MAX_ORDER}, got {order}")
    source, m0 = history[-1]
    if math.isinf(target.lam):
        return m0
    h = target.lam - source.lam
    if noise is None:
        decay = target.sigma / source.sigma
        phi = -math.expm1(-h)  # 1 − e^{−h}
    else:
        decay = target.sigma / source.sigma * math.exp(-h)
        phi = -math.expm1(-2.0 * h)  # 1 − e^{−2h}
    if order == 1:
        out = decay * x + (target.alpha * phi) * m0
    elif order == 2:
        node1, m1 = history[-2]
        r0 = (source.lam - node1.lam) / h
        d1 = (m0 - m1) * (1.0 / r0)
        out = decay * x + (target.alpha * phi) * (m0 + 0.5 * d1)
    else:
        if noise is not None:
            raise ValueError("the SDE variant is implemented up to order 2; use order 2 (dpm++2m-sde)")
        (node2, m2), (node1, m1) = history[-3], history[-2]
        r0, r1 = (source.lam - node1.lam) / h, (node1.lam - node2.lam) / h
        d1_0, d1_1 = (m0 - m1) * (1.0 / r0), (m1 - m2) * (1.0 / r1)
        d1 = d1_0 + (d1_0 - d1_1) * (r0 / (r0 + r1))
        d2 = (d1_0 - d1_1) * (2.0 / (r0 + r1))
        em1 = math.expm1(-h)  # e^{−h} − 1
        out = (
            decay * x
            + (target.alpha * phi) * m0
            + (target.alpha * (em1 / h + 1.0)) * d1
            - (target.alpha * ((em1 + h) / h**2 - 0.5)) * d2
        )
    if noise is not None:
        out = out + (target.sigma * math.sqrt(phi)) * noise
    return out


def dpm_solver_sample_loop_progressive(
    diffusion: GaussianDiffusion,
    model_fn: ModelFn,
    shape: Sequence[int],
    *,
    order: int = 2,
    stochastic: bool = False,
    generator: GeneratorArg | None,
    cond: Mapping[str, Any] | None = None,
    noise: Tensor | None = None,
    clip_denoised: bool = True,
    denoised_fn: Callable[[Tensor], Tensor] | None = None,
    progress: ProgressFn | None = None,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> Iterator[SampleStep]:
    """DPM-Solver++ multistep sampling over the kept steps of ``diffusion``, one network call per step.

    Args:
        diffusion: the (respaced, possibly truncated) process; its K steps are the solver's nodes.
        model_fn: the network (guided or not; any ``ModelMeanType``).
        shape: (B, ...) of the samples.
        order: 1, 2 or 3 (2 = "dpm++2m", 3 = "dpm++3m"; 1 equals DDIM η = 0).
        stochastic: the SDE variant (order ≤ 2); draws z from ``generator`` at every step.
        generator: one generator or B of them; may be None for the ODE when ``noise`` is given.
        cond: keyword conditioning, fixed over the loop.
        noise: the starting x at the chain's last kept step (overrides the draw from ``generator``).
        clip_denoised, denoised_fn: applied to x̂_0 (see :meth:`GaussianDiffusion.p_mean_variance`).
        progress: callback ``progress(done, total)``.
        device, dtype: of the samples.

    Yields:
        :class:`SampleStep` after each step; the last ``sample`` is x̂_0 of the last step.

    Raises:
        ValueError: an order outside 1..3, the SDE at order 3, or a stochastic run without a generator.
    """
    if not 1 <= order <= MAX_ORDER:
        raise ValueError(f"DPM-Solver++ order must be 1..{MAX_ORDER}, got {order}")
    if stochastic and order > 2:
        raise ValueError("the SDE variant is implemented up to order 2; use order 2 (dpm++2m-sde)")
    if stochastic and generator is None:
        raise ValueError("the SDE variant draws noise at every step; pass a generator (or one per sample)")
    x = initial_x(shape, generator, noise, device, dtype)
    nodes = log_snr_nodes(diffusion.alphas_cumprod)
    total = diffusion.num_timesteps
    history: list[tuple[LogSNRNode, Tensor]] = []
    for step, index in enumerate(range(total - 1, -1, -1)):
        with torch.no_grad():
            out = diffusion.p_mean_variance(model_fn, x, step_tensor(x, index), cond, clip_denoised, denoised_fn)
            history = [*history, (nodes[index], out.pred_x0)][-order:]
            step_order = min(order, step + 1, total - step)
            z = None
            if stochastic and index > 0:
                assert generator is not None
                z = randn(x.shape, generator, x.device, x.dtype)
            x = dpm_solver_update(x, history[-step_order:], nodes[index - 1], z)
        if progress is not None:
            progress(step + 1, total)
        yield SampleStep(step=step, t=index, sample=x, pred_x0=out.pred_x0)
