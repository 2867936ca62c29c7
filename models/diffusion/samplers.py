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

Per-sample randomness: ``generator`` is either one ``torch.Generator`` (one draw for the whole batch, fast,
batch-dependent) or a sequence of B generators, one per image (e.g. :func:`generator_for` of (prompt, seed)).
With a sequence, each image's initial noise and every step's noise are drawn from its own generator in float32
on the generator's device, so image i is bit-identical whatever batch it is generated in — provided the
network's own output for a sample does not depend on its batch-mates (true for eval-mode networks up to the
batch-size dependence of some CPU/GPU kernels, which the caller controls).

Choice: :func:`ddim_reverse_sample_loop` returns x at the *last kept step* (the state the samplers start
from, ᾱ = ᾱ_{T−1}), not guided-diffusion's one-step-further x with ᾱ = 0, and its first step puts the clean
input at step 0 directly (x_0 := √ᾱ_0 x + √(1 − ᾱ_0) ε̂), so inversion and sampling visit the same steps.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TypedDict

import torch
from torch import Tensor

from models.diffusion.gaussian import GaussianDiffusion, ModelFn, extract

GeneratorArg = torch.Generator | Sequence[torch.Generator]
ProgressFn = Callable[[int, int], None]
"""Called as ``progress(steps_done, steps_total)`` after each network call."""


class Sampler(enum.Enum):
    """The reverse-process sampler."""

    DDPM = "ddpm"
    DDIM = "ddim"


class SampleStep(TypedDict):
    """What the progressive loops yield after each step."""

    step: int
    """0-based count of network calls so far (0 = first step)."""
    t: int
    """The (spaced) step index just processed."""
    sample: Tensor
    """The new state: x_{t−1} when sampling, x_{t+1} when inverting; shape of x."""
    pred_x0: Tensor
    """x̂_0 predicted at this step."""


# ---------------------------------------------------------------------- randomness


def generator_for(prompt: str, seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A generator seeded from (prompt, seed): sha256 of ``f"{seed}\\0{prompt}"``, first 63 bits.

    Args:
        prompt: the caption (or any per-image key).
        seed: the user-facing seed.
        device: where the generator lives (noise is drawn there, then moved).

    Returns:
        a freshly seeded ``torch.Generator``.
    """
    digest = hashlib.sha256(f"{int(seed)}\0{prompt}".encode()).digest()
    generator = torch.Generator(device=device)
    generator.manual_seed(int.from_bytes(digest[:8], "little") & (2**63 - 1))
    return generator


def randn(
    shape: Sequence[int],
    generator: GeneratorArg,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Standard normal noise of ``shape`` (B, ...), per sample when given B generators.

    Noise is drawn in float32 on each generator's device and then moved to ``device``/``dtype``, so values
    do not depend on the target device or on the other samples in the batch.

    Raises:
        ValueError: a sequence of generators whose length is not B.
    """
    shape = tuple(int(s) for s in shape)
    if isinstance(generator, torch.Generator):
        noise = torch.randn(shape, generator=generator, device=generator.device, dtype=torch.float32)
    else:
        generators = list(generator)
        if len(generators) != shape[0]:
            raise ValueError(f"got {len(generators)} generators for a batch of {shape[0]}; pass one per sample")
        noise = torch.stack(
            [torch.randn(shape[1:], generator=g, device=g.device, dtype=torch.float32) for g in generators]
        )
    return noise.to(device=device if device is not None else noise.device, dtype=dtype)


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
    x = _initial_x(shape, generator, noise, device, dtype)

    def step_fn(x: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        return p_sample(
            diffusion, model_fn, x, t, generator=generator, cond=cond, clip_denoised=clip_denoised,
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
    x = _initial_x(shape, generator, noise, device, dtype)

    def step_fn(x: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        return ddim_sample(
            diffusion, model_fn, x, t, generator=generator, eta=eta, cond=cond, clip_denoised=clip_denoised,
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
        t = torch.full((x.shape[0],), index, device=x.device, dtype=torch.long)
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
    return _last(p_sample_loop_progressive(diffusion, model_fn, shape, **kwargs))


def ddim_sample_loop(diffusion: GaussianDiffusion, model_fn: ModelFn, shape: Sequence[int], **kwargs: Any) -> Tensor:
    """Final sample of :func:`ddim_sample_loop_progressive` (same arguments)."""
    return _last(ddim_sample_loop_progressive(diffusion, model_fn, shape, **kwargs))


def ddim_reverse_sample_loop(diffusion: GaussianDiffusion, model_fn: ModelFn, x0: Tensor, **kwargs: Any) -> Tensor:
    """x_{T−1} from :func:`ddim_reverse_sample_loop_progressive` (same arguments)."""
    return _last(ddim_reverse_sample_loop_progressive(diffusion, model_fn, x0, **kwargs))


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
    """Draw samples with DDPM or DDIM (the step count is ``diffusion.num_timesteps``: respace to change it).

    Args:
        sampler: ``"ddpm"`` or ``"ddim"`` (or :class:`Sampler`); ``eta`` applies to DDIM only.
        (others as :func:`p_sample_loop_progressive` / :func:`ddim_sample_loop_progressive`)

    Returns:
        samples of ``shape``.

    Raises:
        ValueError: an unknown sampler name, or η ≠ 0 with DDPM.
    """
    try:
        kind = Sampler(sampler)
    except ValueError:
        raise ValueError(f"unknown sampler {sampler!r}; use one of: {', '.join(s.value for s in Sampler)}") from None
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
        if eta != 0.0:
            raise ValueError("eta applies to DDIM only; use sampler='ddim' or leave eta at 0")
        if generator is None:
            raise ValueError("DDPM sampling draws noise at every step; pass a generator (or one per sample)")
        return p_sample_loop(diffusion, model_fn, shape, generator=generator, **common)
    return ddim_sample_loop(diffusion, model_fn, shape, generator=generator, eta=eta, **common)


def _initial_x(
    shape: Sequence[int],
    generator: GeneratorArg | None,
    noise: Tensor | None,
    device: torch.device | str,
    dtype: torch.dtype,
) -> Tensor:
    if noise is not None:
        if tuple(noise.shape) != tuple(shape):
            raise ValueError(f"noise shape {tuple(noise.shape)} must equal the sample shape {tuple(shape)}")
        return noise.to(device=device, dtype=dtype)
    assert generator is not None
    return randn(shape, generator, device, dtype)


def _last(steps: Iterator[SampleStep]) -> Tensor:
    final: Tensor | None = None
    for step in steps:
        final = step["sample"]
    assert final is not None, "a diffusion has at least one step"
    return final
