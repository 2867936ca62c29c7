"""DPM-Solver++, Euler ancestral and Heun on a Gaussian toy with the exact denoiser: convergence order, prediction
types, guidance, per-sample generators, truncated starts; and the sampler registry's errors.

The toy: x_0 ~ N(MU, S²) per coordinate, so E[x_0 | x_t] = MU + √ᾱ S² (x_t − √ᾱ MU) / (ᾱ S² + 1 − ᾱ) in closed form
and the probability-flow ODE maps x_t = √ᾱ MU + √(ᾱ S² + 1 − ᾱ) z along the exact trajectory (z fixed).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
import torch
from torch import Tensor

from models.diffusion import (
    SAMPLER_NAMES,
    DiffusionConfig,
    GaussianDiffusion,
    ModelMeanType,
    ModelVarType,
    SpacedDiffusion,
    classifier_free_guidance,
    network_evaluations,
    parse_sampler,
    sample,
)
from models.diffusion.dpm_solver import LogSNRNode, dpm_solver_update

MU, S = 0.3, 0.5
DETERMINISTIC = ("ddim", "dpm++2m", "dpm++3m", "heun")
STOCHASTIC = ("ddpm", "dpm++2m-sde", "euler-a")


def uniform_log_snr_diffusion(
    lam_max: float, lam_min: float, steps: int, mean_type: ModelMeanType
) -> GaussianDiffusion:
    """A chain whose λ = log(α/σ) falls linearly from ``lam_max`` (step 0) to ``lam_min`` (step T − 1), so evenly
    respaced steps are evenly spaced in λ (the solvers' step h is then constant)."""
    lam = np.linspace(lam_max, lam_min, steps)
    alpha_bar = 1.0 / (1.0 + np.exp(-2.0 * lam))
    return GaussianDiffusion(1.0 - alpha_bar / np.append(1.0, alpha_bar[:-1]), mean_type)


def exact_x0(x: Tensor, alpha_bar: Tensor | float) -> Tensor:
    """E[x_0 | x_t] for the Gaussian toy."""
    ab = torch.as_tensor(alpha_bar, dtype=x.dtype)
    return MU + ab.sqrt() * S**2 / (ab * S**2 + 1 - ab) * (x - ab.sqrt() * MU)


def exact_model(
    diffusion: GaussianDiffusion, mean_type: ModelMeanType, var_channels: bool = False
) -> Callable[..., Tensor]:
    """The exact denoiser of the toy, output as ε, x_0 or v (plus constant variance channels if asked)."""
    alpha_bar = torch.tensor(diffusion.alphas_cumprod)

    def model_fn(x: Tensor, t: Tensor, **cond: Tensor) -> Tensor:
        ab = alpha_bar[t].to(x.dtype).reshape(-1, *([1] * (x.ndim - 1)))
        x0 = exact_x0(x, ab)
        eps = (x - ab.sqrt() * x0) / (1 - ab).sqrt()
        if mean_type is ModelMeanType.EPSILON:
            out = eps
        elif mean_type is ModelMeanType.START_X:
            out = x0
        else:
            out = ab.sqrt() * eps - (1 - ab).sqrt() * x0
        return torch.cat([out, torch.full_like(out, 0.3)], dim=1) if var_channels else out

    return model_fn


def ode_endpoint(x_start: Tensor, alpha_bar_start: float, alpha_bar_end: float) -> Tensor:
    """x̂_0 at the chain's last node of the exact ODE trajectory through x_start (what every sampler returns)."""
    z = (x_start - math.sqrt(alpha_bar_start) * MU) / math.sqrt(alpha_bar_start * S**2 + 1 - alpha_bar_start)
    x_end = math.sqrt(alpha_bar_end) * MU + math.sqrt(alpha_bar_end * S**2 + 1 - alpha_bar_end) * z
    return exact_x0(x_end, alpha_bar_end)


@pytest.mark.parametrize(("sampler", "order"), [("ddim", 1), ("dpm++2m", 2), ("dpm++3m", 3), ("heun", 2)])
def test_error_falls_at_the_samplers_order_as_steps_double(sampler: str, order: int) -> None:
    """Final-sample error against the exact ODE solution, fitted on a log-log plot over 64…512 steps in λ ∈ [−8, 3]."""
    base = uniform_log_snr_diffusion(3.0, -8.0, 4097, ModelMeanType.EPSILON)
    model_fn = exact_model(base, ModelMeanType.EPSILON)
    x_start = torch.randn(32, 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    exact = ode_endpoint(x_start, base.alphas_cumprod[-1], base.alphas_cumprod[0])
    intervals = np.array([64, 128, 256, 512])
    errors = []
    for n in intervals:
        diffusion = SpacedDiffusion.from_base(base, int(n) + 1)
        out = sample(
            model_fn,
            x_start.shape,
            diffusion=diffusion,
            generator=None,
            sampler=sampler,
            noise=x_start,
            clip_denoised=False,
            dtype=torch.float64,
        )
        errors.append((out - exact).abs().max().item())
    slope = -np.polyfit(np.log(intervals), np.log(errors), 1)[0]
    assert slope == pytest.approx(order, abs=0.45), (errors, slope)
    assert errors[-1] < 0.02


@pytest.mark.parametrize("order", [1, 2, 3])
def test_one_multistep_update_has_local_error_of_order_plus_one(order: int) -> None:
    """From the exact state with exact history on an even λ grid, one step's error is O(h^{order+1})."""
    z = torch.tensor([1.3, -0.7], dtype=torch.float64)

    def node(lam: float) -> LogSNRNode:
        alpha = 1.0 / math.sqrt(1.0 + math.exp(-2.0 * lam))
        return LogSNRNode(alpha, math.sqrt(1.0 - alpha**2), lam)

    def state(lam: float) -> Tensor:
        ab = node(lam).alpha ** 2
        return math.sqrt(ab) * MU + math.sqrt(ab * S**2 + 1 - ab) * z

    steps = np.array([0.4, 0.2, 0.1, 0.05, 0.025])
    errors = []
    for h in steps:
        history = [
            (node(-(order - 1 - i) * h), exact_x0(state(-(order - 1 - i) * h), node(-(order - 1 - i) * h).alpha ** 2))
            for i in range(order)
        ]
        out = dpm_solver_update(state(0.0), history, node(float(h)))
        errors.append((out - state(float(h))).abs().max().item())
    slope = np.polyfit(np.log(steps), np.log(errors), 1)[0]
    assert slope == pytest.approx(order + 1, abs=0.3), (errors, slope)


@pytest.mark.parametrize("sampler", DETERMINISTIC)
def test_every_prediction_type_gives_the_same_sample(sampler: str) -> None:
    """The same exact denoiser as ε, x_0 or v (with ignored learned-variance channels) samples identically."""
    outputs = {}
    for mean_type in ModelMeanType:
        for learned in (False, True):
            var_type = ModelVarType.LEARNED_RANGE if learned else ModelVarType.FIXED_SMALL
            base = GaussianDiffusion(DiffusionConfig().build().betas, mean_type, var_type)
            diffusion = SpacedDiffusion.from_base(base, 12)
            noise = torch.randn(4, 2, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
            outputs[(mean_type, learned)] = sample(
                exact_model(base, mean_type, var_channels=learned),
                noise.shape,
                diffusion=diffusion,
                generator=None,
                sampler=sampler,
                noise=noise,
                clip_denoised=False,
                dtype=torch.float64,
            )
    reference = outputs[(ModelMeanType.EPSILON, False)]
    for key, out in outputs.items():
        torch.testing.assert_close(out, reference, rtol=0, atol=1e-8, msg=f"{key}")


def test_first_order_dpm_solver_is_ddim() -> None:
    base = GaussianDiffusion(DiffusionConfig().build().betas, ModelMeanType.VELOCITY)
    diffusion = SpacedDiffusion.from_base(base, 9)
    noise = torch.randn(3, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    model_fn = exact_model(base, ModelMeanType.VELOCITY)
    from models.diffusion.dpm_solver import dpm_solver_sample_loop_progressive
    from models.diffusion.loop import last_sample

    first = last_sample(
        dpm_solver_sample_loop_progressive(
            diffusion,
            model_fn,
            noise.shape,
            order=1,
            generator=None,
            noise=noise,
            clip_denoised=True,
            dtype=torch.float64,
        )
    )
    ddim = sample(
        model_fn, noise.shape, diffusion=diffusion, generator=None, sampler="ddim", noise=noise, dtype=torch.float64
    )
    torch.testing.assert_close(first, ddim, rtol=0, atol=1e-12)


@pytest.mark.parametrize("sampler", STOCHASTIC)
def test_stochastic_samplers_draw_the_data_distribution(sampler: str) -> None:
    """With the exact denoiser, samples from N(0, I) noise have the toy's mean and standard deviation."""
    base = GaussianDiffusion(DiffusionConfig().build().betas, ModelMeanType.EPSILON)
    diffusion = SpacedDiffusion.from_base(base, 250)
    n = 20_000
    x = sample(
        exact_model(base, ModelMeanType.EPSILON),
        (n, 1),
        diffusion=diffusion,
        generator=torch.Generator().manual_seed(0),
        sampler=sampler,
        clip_denoised=False,
        dtype=torch.float64,
    )
    assert x.mean().item() == pytest.approx(MU, abs=4 * S / math.sqrt(n))
    assert x.std().item() == pytest.approx(S, rel=0.03)


def test_euler_ancestral_is_ddpm_with_the_posterior_variance() -> None:
    """Ancestral Euler in s = σ/α draws from q(x_{t−1} | x_t, x̂_0) = N(μ̃, β̃): DDPM with Σ = β̃, draw for draw."""
    base = GaussianDiffusion(DiffusionConfig().build().betas, ModelMeanType.VELOCITY, ModelVarType.FIXED_SMALL)
    diffusion = SpacedDiffusion.from_base(base, 8)
    model_fn = exact_model(base, ModelMeanType.VELOCITY)
    runs = [
        sample(
            model_fn,
            (3, 2),
            diffusion=diffusion,
            generator=[torch.Generator().manual_seed(k) for k in range(3)],
            sampler=sampler,
            dtype=torch.float64,
        )
        for sampler in ("euler-a", "ddpm")
    ]
    torch.testing.assert_close(runs[0], runs[1], rtol=0, atol=1e-6)


class _BatchInvariantNet:
    """A v-network with learned-variance channels whose output for a sample depends only on that sample."""

    def __call__(self, x: Tensor, t: Tensor, *, label: Tensor, cond_mask: Tensor | None = None) -> Tensor:
        emb = label.float().reshape(-1, 1, 1, 1) / 10
        if cond_mask is not None:
            emb = torch.where(cond_mask.reshape(-1, 1, 1, 1), emb, torch.zeros_like(emb))
        v = 0.5 * torch.tanh(x + emb) + 0.001 * t.float().reshape(-1, 1, 1, 1)
        return torch.cat([v, torch.zeros_like(v)], dim=1)


@pytest.mark.parametrize("sampler", SAMPLER_NAMES)
def test_a_sample_is_bit_identical_whatever_its_batch(sampler: str) -> None:
    config = DiffusionConfig(mean_type="velocity", var_type="learned_range", num_timesteps=200)
    diffusion = config.build(respacing="6")
    labels = torch.tensor([3, 1, 3, 7, 3])
    seeds = [0, 0, 1, 5, 2]
    model_fn = classifier_free_guidance(_BatchInvariantNet(), 3.0)

    def run(rows: list[int]) -> Tensor:
        return sample(
            model_fn,
            (len(rows), 3, 4, 4),
            diffusion=diffusion,
            sampler=sampler,
            generator=[torch.Generator().manual_seed(100 + seeds[r]) for r in rows],
            cond={"label": labels[rows]},
        )

    full = run([0, 1, 2, 3, 4])
    assert torch.equal(run([3, 0])[0], full[3]) and torch.equal(run([3, 0])[1], full[0])
    assert torch.equal(run([4])[0], full[4])
    assert not torch.equal(full[0], full[4])  # another seed is another sample


@pytest.mark.parametrize("sampler", ["dpm++2m", "dpm++3m", "dpm++2m-sde", "euler-a", "heun"])
def test_guidance_passes_through_the_solver(sampler: str) -> None:
    """Sampling the CFG wrapper equals sampling a network that returns u + s(c − u) itself (variance channels kept
    from the conditional branch and ignored)."""
    config = DiffusionConfig(mean_type="velocity", var_type="learned_range", num_timesteps=100)
    diffusion = config.build(respacing="7")
    net = _BatchInvariantNet()
    labels = torch.tensor([2, 5])
    scale = 4.0

    def combined(x: Tensor, t: Tensor, *, label: Tensor) -> Tensor:
        c = net(x, t, label=label, cond_mask=torch.ones(len(x), dtype=torch.bool))
        u = net(x, t, label=label, cond_mask=torch.zeros(len(x), dtype=torch.bool))
        return torch.cat([u[:, :3] + scale * (c[:, :3] - u[:, :3]), c[:, 3:]], dim=1)

    def run(model_fn: Callable[..., Tensor]) -> Tensor:
        gens = [torch.Generator().manual_seed(k) for k in (4, 9)]
        return sample(
            model_fn, (2, 3, 4, 4), diffusion=diffusion, sampler=sampler, generator=gens, cond={"label": labels}
        )

    guided = run(classifier_free_guidance(net, scale))
    torch.testing.assert_close(guided, run(combined), rtol=0, atol=1e-6)
    assert (guided - run(classifier_free_guidance(net, 1.0))).abs().max() > 1e-3


@pytest.mark.parametrize("sampler", SAMPLER_NAMES)
def test_truncated_start_begins_at_the_last_step_from_the_given_state(sampler: str) -> None:
    """With ``last_step`` the first network call is at that original step, on the state passed as ``noise``."""
    config = DiffusionConfig(mean_type="epsilon", num_timesteps=1000)
    base = config.build()
    last_step = 399
    diffusion = config.build(respacing="karras6", last_step=last_step)
    seen: list[tuple[int, Tensor]] = []
    exact = exact_model(base, ModelMeanType.EPSILON)

    def model_fn(x: Tensor, t: Tensor) -> Tensor:
        seen.append((int(t[0]), x.clone()))
        return exact(x, t)

    x0 = torch.full((2, 1), 0.25, dtype=torch.float64)
    ab = base.alphas_cumprod[last_step]
    start = math.sqrt(ab) * x0 + math.sqrt(1 - ab) * torch.randn(2, 1, generator=torch.Generator().manual_seed(3))
    out = sample(
        model_fn,
        (2, 1),
        diffusion=diffusion,
        sampler=sampler,
        generator=torch.Generator().manual_seed(4),
        noise=start,
        clip_denoised=False,
        dtype=torch.float64,
    )
    assert seen[0][0] == last_step and torch.equal(seen[0][1], start)
    assert max(t for t, _ in seen) == last_step and seen[-1][0] == 0
    assert len(seen) == network_evaluations(sampler, diffusion.num_timesteps)
    assert torch.isfinite(out).all()


def test_network_evaluations_count_every_call() -> None:
    config = DiffusionConfig(num_timesteps=100)
    for sampler in SAMPLER_NAMES:
        calls = []
        base_fn = exact_model(config.build(), ModelMeanType.EPSILON)

        def model_fn(x: Tensor, t: Tensor, _calls: list[int] = calls, _fn: Callable[..., Tensor] = base_fn) -> Tensor:
            _calls.append(1)
            return _fn(x, t)

        sample(model_fn, (1, 1), diffusion=config.build(respacing="5"), generator=torch.Generator(), sampler=sampler)
        assert len(calls) == network_evaluations(sampler, 5), sampler


def test_unknown_samplers_and_misuse_raise_one_clear_error() -> None:
    with pytest.raises(ValueError, match=r"unknown sampler 'dpm\+\+2'; did you mean 'dpm\+\+2m'"):
        parse_sampler("dpm++2")
    with pytest.raises(ValueError, match="use one of: ddpm, ddim, dpm\\+\\+2m"):
        parse_sampler("plms")
    diffusion = DiffusionConfig(num_timesteps=10).build()
    model_fn = exact_model(diffusion, ModelMeanType.EPSILON)
    with pytest.raises(ValueError, match="DDIM only"):
        sample(model_fn, (1, 1), diffusion=diffusion, generator=torch.Generator(), sampler="dpm++2m", eta=0.5)
    for sampler in STOCHASTIC:
        with pytest.raises(ValueError, match="pass a generator"):
            sample(model_fn, (1, 1), diffusion=diffusion, generator=None, sampler=sampler, noise=torch.zeros(1, 1))
    with pytest.raises(ValueError, match="order must be 1..3"):
        dpm_solver_update(torch.zeros(1), [], LogSNRNode(1.0, 0.0, math.inf))
