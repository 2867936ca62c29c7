"""Sampling loops over any :class:`~models.diffusion.gaussian.GaussianDiffusion` (respaced or not).

Each loop is a generator (``*_progressive``) yielding one :class:`SampleStep` dict per network call, and a
thin consumer returns the final tensor, so progress views, intermediate grids and early stops need no second
implementation (guided-diffusion's ``p_sample_loop_progressive``). The network is any
``model_fn(x, t, **cond)``; wrap it with :class:`~models.diffusion.guidance.ClassifierFreeGuidance` to guide.

* DDPM ancestral (Ho et al.): x_{t−1} = μ_θ(x_t, t) + σ_t z, σ_t² = Σ_θ (fixed or learned), no noise at t = 0.
* DDIM (Song et al. 2021, eq. 12): x_{t−1} = √ᾱ_{t−1} x̂_0 + √(1 − ᾱ_{t−1} − σ_t²) ε̂ + σ_t z,
  σ_t = η √((1 − ᾱ_{t−1})/(1 − ᾱ_t)) √(1 − ᾱ_t/ᾱ_{t−1}); η = 0 is deterministic, η = 1 matches DDPM's β̃.
* DDIM inversion (η = 0, run forwards): x_{t+1} = √ᾱ_{t+1} x̂_0 + √(1 − ᾱ_{t+1}) ε̂, giving the x_T of the
  unCLIP "bipartite latent" (z_i, x_T) for image variations (paper §3).

Per-sample randomness: see :mod:`models.diffusion.loop` (one generator, or one per image).

Choice: :func:`ddim_reverse_sample_loop` returns x at the *last kept step* (the state the samplers start
from, ᾱ = ᾱ_{T−1}), not guided-diffusion's one-step-further x with ᾱ = 0, and its first step puts the clean
input at step 0 directly (x_0 := √ᾱ_0 x + √(1 − ᾱ_0) ε̂), so inversion and sampling visit the same steps.
"""

from __future__ import annotations

import difflib
import enum
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from models.diffusion.dpm_solver import dpm_solver_sample_loop_progressive
from models.diffusion.gaussian import GaussianDiffusion, ModelFn, extract
from models.diffusion.karras_samplers import euler_ancestral_sample_loop_progressive, heun_sample_loop_progressive
from models.diffusion.loop import (
    GeneratorArg,
    ProgressFn,
    SampleStep,
    generator_for,
    initial_x,
    last_sample,
    randn,
    step_tensor,
)

__all__ = [
    "SAMPLER_NAMES",
    "GeneratorArg",
    "ProgressFn",
    "SampleStep",
    "Sampler",
    "ddim_reverse_sample_loop",
    "ddim_reverse_sample_loop_progressive",
    "ddim_sample",
    "ddim_sample_loop",
    "ddim_sample_loop_progressive",
    "generator_for",
    "network_evaluations",
    "p_sample",
    "p_sample_loop",
    "p_sample_loop_progressive",
    "parse_sampler",
    "randn",
    "sample",
    "sample_progressive",
]


class Sampler(enum.Enum):
    """The reverse-process sampler (its value is the name used in configs)."""

    DDPM = "ddpm"
    """Ancestral DDPM (Ho et al.): one call per step, noise every step."""
    DDIM = "ddim"
    """DDIM (Song et al.), deterministic at η = 0 (= first-order DPM-Solver++)."""
    DPMPP_2M = "dpm++2m"
    """DPM-Solver++ 2M, multistep 2nd order ODE (:mod:`models.diffusion.dpm_solver`)."""
    DPMPP_3M = "dpm++3m"
    """DPM-Solver++ 3M, multistep 3rd order ODE."""
    DPMPP_2M_SDE = "dpm++2m-sde"
    """DPM-Solver++ 2M for the reverse SDE: noise every step."""
    EULER_ANCESTRAL = "euler-a"
    """Euler ancestral in the Karras σ (:mod:`models.diffusion.karras_samplers`): noise every step."""
    HEUN = "heun"
    """Heun 2nd order in the Karras σ: two calls per step (2K − 1 in all)."""


SAMPLER_NAMES: tuple[str, ...] = tuple(s.value for s in Sampler)
"""Every sampler name :func:`sample` accepts."""

STOCHASTIC_SAMPLERS = frozenset({Sampler.DDPM, Sampler.DPMPP_2M_SDE, Sampler.EULER_ANCESTRAL})
"""Samplers that draw fresh noise at every step (they need a generator even when the start is given)."""


def parse_sampler(name: Sampler | str) -> Sampler:
    """The :class:`Sampler` named ``name``.

    Raises:
        ValueError: an unknown name; the message suggests the closest names and lists all of them.
    """
    if isinstance(name, Sampler):
        return name
    try:
        return Sampler(name)
    except ValueError:
        close = difflib.get_close_matches(str(name), SAMPLER_NAMES, n=3, cutoff=0.4)
        hint = f"did you mean {' or '.join(repr(c) for c in close)}? " if close else ""
        raise ValueError(f"unknown sampler {name!r}; {hint}use one of: {', '.join(SAMPLER_NAMES)}") from None


def network_evaluations(sampler: Sampler | str, steps: int) -> int:
    """Network calls (each on the guided batch when guiding) of ``sampler`` over ``steps`` kept steps.

    K for every sampler but Heun, which evaluates twice per step except the last (2K − 1).
    """
    kind = parse_sampler(sampler)
    return 2 * steps - 1 if kind is Sampler.HEUN else steps


# ---------------------------------------------------------------------- single steps


def p_sample(
    diffusion: GaussianDiffusion,
    model_fn: ModelFn,
    x: Tensor,
    t: Tensor,
    *,
    generator: GeneratorArg,
    cond: Mapping[str, Any] | None = None,
    clip_denoised: bool = True,
    denoised_fn: Callable[[Tensor], Tensor] | None = None,
) -> tuple[Tensor, Tensor]:
    """One DDPM ancestral step x_t → x_{t−1} = μ_θ + exp(½ log Σ_θ) z (z = 0 where t = 0).

    Args:
        diffusion: the (possibly spaced) process.
        model_fn: the network.
        x: x_t, shape (B, ...).
        t: step indices, shape (B,).
        generator: noise source(s); nothing is drawn when every t is 0.
        cond: keyword conditioning for ``model_fn``.
        clip_denoised: clamp x̂_0 to [−1, 1].
        denoised_fn: applied to x̂_0 before clipping.

    Returns:
        (x_{t−1}, x̂_0), both of x's shape.
    """
    out = diffusion.p_mean_variance(model_fn, x, t, cond, clip_denoised, denoised_fn)
    if not bool((t > 0).any()):
        return out.mean, out.pred_x0
    noise = randn(x.shape, generator, x.device, x.dtype)
    nonzero = (t > 0).to(x.dtype).reshape(-1, *([1] * (x.ndim - 1)))
    return out.mean + nonzero * out.variance.sqrt() * noise, out.pred_x0


def ddim_sample(
    diffusion: GaussianDiffusion,
    model_fn: ModelFn,
    x: Tensor,
    t: Tensor,
    *,
    generator: GeneratorArg | None = None,
    eta: float = 0.0,
    cond: Mapping[str, Any] | None = None,
    clip_denoised: bool = True,
    denoised_fn: Callable[[Tensor], Tensor] | None = None,
) -> tuple[Tensor, Tensor]:
    """One DDIM step x_t → x_{t−1} (Song et al. eq. 12; see the module docstring).

    Args:
        generator: noise source(s); required when ``eta`` > 0, unused at η = 0.
        eta: η ≥ 0; 0 = deterministic.
        (others as :func:`p_sample`)

    Returns:
        (x_{t−1}, x̂_0).

    Raises:
        ValueError: η < 0, or η > 0 without a generator.
    """
    if eta < 0:
        raise ValueError(f"eta must be ≥ 0, got {eta}")
    out = diffusion.p_mean_variance(model_fn, x, t, cond, clip_denoised, denoised_fn)
    alpha_bar = extract(diffusion.alphas_cumprod, t, x)
    alpha_bar_prev = extract(diffusion.alphas_cumprod_prev, t, x)
    sigma = eta * torch.sqrt((1 - alpha_bar_prev) / (1 - alpha_bar)) * torch.sqrt(1 - alpha_bar / alpha_bar_prev)
    mean = (
        out.pred_x0 * torch.sqrt(alpha_bar_prev)
        + torch.sqrt((1 - alpha_bar_prev - sigma**2).clamp(min=0)) * out.pred_eps
    )
    if eta == 0 or not bool((t > 0).any()):
        return mean, out.pred_x0
    if generator is None:
        raise ValueError("DDIM with eta > 0 draws noise; pass a generator (or one per sample)")
    return mean + sigma * randn(x.shape, generator, x.device, x.dtype), out.pred_x0


# ---------------------------------------------------------------------- loops


def p_sample_loop_progressive(
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
    """DDPM ancestral sampling from x_{T−1} ~ N(0, I) (or ``noise``) down to x̂_0, one yield per step.

    Args:
        diffusion: the process; ``diffusion.num_timesteps`` steps are taken.
        model_fn: the network (guided or not).
        shape: (B, ...) of the samples.
        generator: one generator, or B of them (per-sample determinism).
        cond: keyword conditioning, fixed over the loop.
        noise: the starting x_{T−1} (overrides the draw from ``generator``), shape ``shape``.
        clip_denoised, denoised_fn: see :meth:`GaussianDiffusion.p_mean_variance`.
        progress: callback ``progress(done, total)``.
        device, dtype: of the samples.

    Yields:
        :class:`SampleStep` after each step; the last ``sample`` is the result, in [−1, 1] for clipped images.
    """
    x = initial_x(shape, generator, noise, device, dtype)

    def step_fn(x: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        return p_sample(
            diffusion,
            model_fn,
            x,
            t,
            generator=generator,
            cond=cond,
            clip_denoised=clip_denoised,
            denoised_fn=denoised_fn,
        )

    yield from _reverse_steps(x, diffusion.num_timesteps, step_fn, progress)


def ddim_sample_loop_progressive(
    diffusion: GaussianDiffusion,
    model_fn: ModelFn,
    shape: Sequence[int],
    *,
    generator: GeneratorArg | None,
    eta: float = 0.0,
    cond: Mapping[str, Any] | None = None,
    noise: Tensor | None = None,
    clip_denoised: bool = True,
    denoised_fn: Callable[[Tensor], Tensor] | None = None,
    progress: ProgressFn | None = None,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> Iterator[SampleStep]:
    """DDIM sampling with η (see :func:`ddim_sample`); arguments as :func:`p_sample_loop_progressive`.

    ``generator`` may be ``None`` only when ``noise`` is given and η = 0 (fully deterministic decoding,
    e.g. from a DDIM-inverted x_T).
    """
    if generator is None and noise is None:
        raise ValueError("pass a generator (or one per sample) or the starting noise")
    x = initial_x(shape, generator, noise, device, dtype)

    def step_fn(x: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        return ddim_sample(
            diffusion,
            model_fn,
            x,
            t,
            generator=generator,
            eta=eta,
            cond=cond,
            clip_denoised=clip_denoised,
            denoised_fn=denoised_fn,
        )

    yield from _reverse_steps(x, diffusion.num_timesteps, step_fn, progress)


def _reverse_steps(
    x: Tensor,
    total: int,
    step_fn: Callable[[Tensor, Tensor], tuple[Tensor, Tensor]],
    progress: ProgressFn | None,
) -> Iterator[SampleStep]:
    """The loop every sampler shares: t = T−1 … 0, one ``step_fn(x_t, t) -> (x_{t−1}, x̂0)`` each, no gradients."""
    for step, index in enumerate(range(total - 1, -1, -1)):
        t = step_tensor(x, index)
        with torch.no_grad():
            x, pred_x0 = step_fn(x, t)
        if progress is not None:
            progress(step + 1, total)
        yield SampleStep(step=step, t=index, sample=x, pred_x0=pred_x0)


def ddim_reverse_sample_loop_progressive(
    diffusion: GaussianDiffusion,
    model_fn: ModelFn,
    x0: Tensor,
    *,
    cond: Mapping[str, Any] | None = None,
    clip_denoised: bool = False,
    denoised_fn: Callable[[Tensor], Tensor] | None = None,
    progress: ProgressFn | None = None,
) -> Iterator[SampleStep]:
    """DDIM inversion (η = 0) of clean data x0 towards x_{T−1}, one yield per network call.

    Step k = 0 puts x0 at step 0: x_(0) = √ᾱ_0 x0 + √(1 − ᾱ_0) ε̂(x0, 0); steps k ≥ 1 apply
    x_(k) = √ᾱ_k x̂_0 + √(1 − ᾱ_k) ε̂ with x̂_0, ε̂ from the network at x_(k−1), step k − 1.

    Args:
        diffusion: the (possibly spaced) process; use the same one for decoding.
        model_fn: the network, conditioned as for decoding (unCLIP: on the image's own z_i).
        x0: clean data, shape (B, ...), images in [−1, 1].
        cond: keyword conditioning.
        clip_denoised: clamp x̂_0 to [−1, 1] (off by default: clipping breaks invertibility).
        denoised_fn: applied to x̂_0 before clipping.
        progress: callback ``progress(done, total)``.

    Yields:
        :class:`SampleStep`; the last ``sample`` is x_{T−1}, the starting noise that
        :func:`ddim_sample_loop` with η = 0 maps back (approximately) to x0.
    """
    x = x0
    total = diffusion.num_timesteps
    for index in range(total):
        t = torch.full((x.shape[0],), max(index - 1, 0), device=x.device, dtype=torch.long)
        with torch.no_grad():
            out = diffusion.p_mean_variance(model_fn, x, t, cond, clip_denoised, denoised_fn)
        pred_x0 = x0 if index == 0 else out.pred_x0
        alpha_bar = extract(diffusion.alphas_cumprod, torch.full_like(t, index), x)
        x = pred_x0 * torch.sqrt(alpha_bar) + torch.sqrt(1 - alpha_bar) * out.pred_eps
        if progress is not None:
            progress(index + 1, total)
        yield SampleStep(step=index, t=index, sample=x, pred_x0=pred_x0)


def p_sample_loop(diffusion: GaussianDiffusion, model_fn: ModelFn, shape: Sequence[int], **kwargs: Any) -> Tensor:
    """Final sample of :func:`p_sample_loop_progressive` (same arguments)."""
    return last_sample(p_sample_loop_progressive(diffusion, model_fn, shape, **kwargs))


def ddim_sample_loop(diffusion: GaussianDiffusion, model_fn: ModelFn, shape: Sequence[int], **kwargs: Any) -> Tensor:
    """Final sample of :func:`ddim_sample_loop_progressive` (same arguments)."""
    return last_sample(ddim_sample_loop_progressive(diffusion, model_fn, shape, **kwargs))


def ddim_reverse_sample_loop(diffusion: GaussianDiffusion, model_fn: ModelFn, x0: Tensor, **kwargs: Any) -> Tensor:
    """x_{T−1} from :func:`ddim_reverse_sample_loop_progressive` (same arguments)."""
    return last_sample(ddim_reverse_sample_loop_progressive(diffusion, model_fn, x0, **kwargs))


def sample_progressive(
    model_fn: ModelFn,
    shape: Sequence[int],
    *,
    diffusion: GaussianDiffusion,
    generator: GeneratorArg | None,
    sampler: Sampler | str = Sampler.DDPM,
    eta: float = 0.0,
    cond: Mapping[str, Any] | None = None,
    noise: Tensor | None = None,
    clip_denoised: bool = True,
    denoised_fn: Callable[[Tensor], Tensor] | None = None,
    progress: ProgressFn | None = None,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> Iterator[SampleStep]:
    """The progressive loop of any :class:`Sampler` (one :class:`SampleStep` per step); see :func:`sample`."""
    kind = parse_sampler(sampler)
    if eta != 0.0 and kind is not Sampler.DDIM:
        raise ValueError(f"eta applies to DDIM only; use sampler='ddim' or leave eta at 0 for {kind.value!r}")
    if generator is None and (noise is None or kind in STOCHASTIC_SAMPLERS):
        raise ValueError(f"sampler {kind.value!r} draws noise; pass a generator (or one per sample)")
    common: dict[str, Any] = {
        "cond": cond,
        "noise": noise,
        "clip_denoised": clip_denoised,
        "denoised_fn": denoised_fn,
        "progress": progress,
        "device": device,
        "dtype": dtype,
    }
    if kind is Sampler.DDPM:
        assert generator is not None
        return p_sample_loop_progressive(diffusion, model_fn, shape, generator=generator, **common)
    if kind is Sampler.DDIM:
        return ddim_sample_loop_progressive(diffusion, model_fn, shape, generator=generator, eta=eta, **common)
    if kind is Sampler.EULER_ANCESTRAL:
        assert generator is not None
        return euler_ancestral_sample_loop_progressive(diffusion, model_fn, shape, generator=generator, **common)
    if kind is Sampler.HEUN:
        return heun_sample_loop_progressive(diffusion, model_fn, shape, generator=generator, **common)
    order = 3 if kind is Sampler.DPMPP_3M else 2
    stochastic = kind is Sampler.DPMPP_2M_SDE
    return dpm_solver_sample_loop_progressive(
        diffusion, model_fn, shape, order=order, stochastic=stochastic, generator=generator, **common
    )


def sample(
    model_fn: ModelFn,
    shape: Sequence[int],
    *,
    diffusion: GaussianDiffusion,
    generator: GeneratorArg | None,
    sampler: Sampler | str = Sampler.DDPM,
    eta: float = 0.0,
    cond: Mapping[str, Any] | None = None,
    noise: Tensor | None = None,
    clip_denoised: bool = True,
    denoised_fn: Callable[[Tensor], Tensor] | None = None,
    progress: ProgressFn | None = None,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Draw samples with any :class:`Sampler` over the kept steps of ``diffusion`` (respace it to change the step
    count or spacing, e.g. ``DiffusionConfig.build(respacing="karras10")``; truncate it with ``last_step`` and
    pass the start as ``noise``).

    Args:
        model_fn: the network ``model_fn(x, t, **cond)`` (wrap with classifier-free guidance to guide).
        shape: (B, ...) of the samples.
        diffusion: the (respaced) process; its ``model_mean_type`` says what the network predicts.
        generator: one generator, or B of them (per-sample determinism); None only for a deterministic sampler
            (DDIM η = 0, DPM-Solver++ 2M/3M, Heun) started from ``noise``.
        sampler: a name in :data:`SAMPLER_NAMES` (or :class:`Sampler`).
        eta: DDIM η (DDIM only).
        cond: keyword conditioning, fixed over the loop.
        noise: the start x at the chain's last kept step (default: N(0, I) from ``generator``).
        clip_denoised: clamp x̂_0 to [−1, 1] (pixels; False for embeddings).
        denoised_fn: applied to x̂_0 before clipping.
        progress: callback ``progress(done, total)`` after each step.
        device, dtype: of the samples.

    Returns:
        samples of ``shape``.

    Raises:
        ValueError: an unknown sampler name (with a did-you-mean), η ≠ 0 with a sampler other than DDIM, or
            no generator where noise must be drawn.
    """
    return last_sample(
        sample_progressive(
            model_fn,
            shape,
            diffusion=diffusion,
            generator=generator,
            sampler=sampler,
            eta=eta,
            cond=cond,
            noise=noise,
            clip_denoised=clip_denoised,
            denoised_fn=denoised_fn,
            progress=progress,
            device=device,
            dtype=dtype,
        )
    )
