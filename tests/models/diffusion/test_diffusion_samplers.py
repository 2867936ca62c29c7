"""DDPM / DDIM loops with analytic denoisers, DDIM inversion, per-sample determinism, progress and errors."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

from models.diffusion.gaussian import GaussianDiffusion, ModelMeanType, ModelVarType
from models.diffusion.guidance import classifier_free_guidance
from models.diffusion.respace import SpacedDiffusion
from models.diffusion.samplers import (
    ddim_reverse_sample_loop,
    ddim_sample_loop,
    ddim_sample_loop_progressive,
    generator_for,
    p_sample_loop,
    p_sample_loop_progressive,
    randn,
    sample,
)
from models.diffusion.schedules import get_named_beta_schedule

MU, S = 0.3, 0.5  # the toy data distribution: x0 ~ N(MU, S²) independently per coordinate


def _gaussian_data_eps_model(diffusion: GaussianDiffusion):
    """The exact optimal ε-predictor E[ε | x_t] for x0 ~ N(MU, S²): √(1−ᾱ)(x_t − √ᾱ MU)/(ᾱ S² + 1 − ᾱ)."""
    alpha_bar = torch.tensor(diffusion.alphas_cumprod)

    def model_fn(x: Tensor, t: Tensor, **cond: Tensor) -> Tensor:
        ab = alpha_bar[t].to(x.dtype).reshape(-1, *([1] * (x.ndim - 1)))
        return (1 - ab).sqrt() * (x - ab.sqrt() * MU) / (ab * S**2 + 1 - ab)

    return model_fn


@pytest.fixture(scope="module")
def cosine_1000() -> GaussianDiffusion:
    return GaussianDiffusion(get_named_beta_schedule("cosine", 1000))


def test_ddpm_with_the_exact_denoiser_recovers_the_data_mean_and_variance(cosine_1000: GaussianDiffusion) -> None:
    n = 20_000
    x = p_sample_loop(
        cosine_1000,
        _gaussian_data_eps_model(cosine_1000),
        (n, 1),
        generator=torch.Generator().manual_seed(0),
        clip_denoised=False,
        dtype=torch.float64,
    )
    assert x.mean().item() == pytest.approx(MU, abs=4 * S / math.sqrt(n))
    assert x.std().item() == pytest.approx(S, rel=0.02)


def test_ddim_inversion_reconstructs_x0_and_finds_the_analytic_latent(cosine_1000: GaussianDiffusion) -> None:
    """For Gaussian data the DDIM ODE maps x0 to √ᾱ MU + √(ᾱS² + 1 − ᾱ) z with z = (x0 − MU)/S."""
    model_fn = _gaussian_data_eps_model(cosine_1000)
    x0 = MU + S * torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    errors = {}
    for steps in (100, 1000):
        spaced = SpacedDiffusion.from_base(cosine_1000, steps)
        x_t = ddim_reverse_sample_loop(spaced, model_fn, x0)
        ab = spaced.alphas_cumprod[-1]
        latent = math.sqrt(ab) * MU + math.sqrt(ab * S**2 + 1 - ab) * (x0 - MU) / S
        torch.testing.assert_close(x_t, latent, atol=0.1 * 100 / steps, rtol=0)
        rec = ddim_sample_loop(
            spaced, model_fn, x0.shape, generator=None, noise=x_t, clip_denoised=False, dtype=torch.float64
        )
        errors[steps] = (rec - x0).abs().max().item()
    assert errors[1000] < 0.01
    assert errors[100] > 5 * errors[1000]  # first-order convergence: the error is discretisation, not a bias


class _BatchInvariantNet:
    """An ε-network whose output for a sample depends only on that sample (and honours cond_mask)."""

    def __call__(self, x: Tensor, t: Tensor, *, label: Tensor, cond_mask: Tensor | None = None) -> Tensor:
        emb = label.float().reshape(-1, 1, 1, 1) / 10
        if cond_mask is not None:
            emb = torch.where(cond_mask.reshape(-1, 1, 1, 1), emb, torch.zeros_like(emb))
        return 0.5 * torch.tanh(x + emb) + 0.001 * t.float().reshape(-1, 1, 1, 1)


@pytest.mark.parametrize(("sampler", "eta", "guidance"), [("ddpm", 0.0, 1.0), ("ddim", 0.7, 3.0), ("ddim", 0.0, 3.0)])
def test_a_sample_is_bit_identical_whatever_its_batch(sampler: str, eta: float, guidance: float) -> None:
    diffusion = SpacedDiffusion.from_base(
        GaussianDiffusion(get_named_beta_schedule("cosine", 200), ModelMeanType.EPSILON, ModelVarType.FIXED_LARGE), 8
    )
    prompts = ["a red cube", "a blue ball", "a red cube", "two green cones", "a red cube"]
    seeds = [0, 0, 1, 5, 2]
    labels = torch.tensor([3, 1, 3, 7, 3])
    model_fn = classifier_free_guidance(_BatchInvariantNet(), guidance)

    def run(indices: list[int]) -> Tensor:
        return sample(
            model_fn,
            (len(indices), 3, 4, 4),
            diffusion=diffusion,
            sampler=sampler,
            eta=eta,
            generator=[generator_for(prompts[i], seeds[i]) for i in indices],
            cond={"label": labels[indices]},
        )

    batch = run([0, 1, 2, 3, 4])
    for i in range(5):
        assert torch.equal(run([i])[0], batch[i])
    assert torch.equal(run([3, 1])[0], batch[3])
    assert not torch.equal(batch[0], batch[2])  # same prompt, different seed → different image


def test_generator_for_depends_on_prompt_and_seed() -> None:
    def draw(prompt: str, seed: int) -> Tensor:
        return torch.randn(4, generator=generator_for(prompt, seed))

    assert torch.equal(draw("a cat", 3), draw("a cat", 3))
    assert not torch.equal(draw("a cat", 3), draw("a cat", 4))
    assert not torch.equal(draw("a cat", 3), draw("a dog", 3))


def test_per_sample_noise_rows_come_from_their_own_generators() -> None:
    noise = randn((3, 2, 2), [torch.Generator().manual_seed(s) for s in (5, 6, 7)], dtype=torch.float64)
    for row, seed in zip(noise, (5, 6, 7)):
        assert torch.equal(row, torch.randn(2, 2, generator=torch.Generator().manual_seed(seed)).double())
    with pytest.raises(ValueError, match="one per sample"):
        randn((2, 2), [torch.Generator()])


def test_progressive_loops_yield_every_step_and_report_progress() -> None:
    diffusion = SpacedDiffusion.from_base(GaussianDiffusion(get_named_beta_schedule("linear", 100)), 6)
    model_fn = _gaussian_data_eps_model(GaussianDiffusion(get_named_beta_schedule("linear", 100)))
    calls: list[tuple[int, int]] = []
    steps = list(
        p_sample_loop_progressive(
            diffusion,
            model_fn,
            (2, 1),
            generator=torch.Generator().manual_seed(0),
            progress=lambda done, total: calls.append((done, total)),
        )
    )
    assert [s["t"] for s in steps] == [5, 4, 3, 2, 1, 0] and [s["step"] for s in steps] == list(range(6))
    assert calls == [(i, 6) for i in range(1, 7)]
    assert all(s["sample"].shape == (2, 1) and s["pred_x0"].shape == (2, 1) for s in steps)
    ddim_steps = list(ddim_sample_loop_progressive(diffusion, model_fn, (2, 1), generator=torch.Generator()))
    assert len(ddim_steps) == 6


def test_ddim_eta_zero_is_deterministic_given_the_start() -> None:
    base = GaussianDiffusion(get_named_beta_schedule("cosine", 100))
    diffusion = SpacedDiffusion.from_base(base, 10)
    model_fn = _gaussian_data_eps_model(base)
    noise = torch.randn(3, 2, generator=torch.Generator().manual_seed(0))
    a = ddim_sample_loop(diffusion, model_fn, (3, 2), generator=torch.Generator().manual_seed(1), noise=noise)
    b = ddim_sample_loop(diffusion, model_fn, (3, 2), generator=None, noise=noise)
    assert torch.equal(a, b)


def test_sampler_misuse_raises() -> None:
    diffusion = GaussianDiffusion(get_named_beta_schedule("cosine", 10))
    model_fn = _gaussian_data_eps_model(diffusion)
    g = torch.Generator()
    with pytest.raises(ValueError, match="unknown sampler"):
        sample(model_fn, (1, 1), diffusion=diffusion, generator=g, sampler="euler")
    with pytest.raises(ValueError, match="DDIM only"):
        sample(model_fn, (1, 1), diffusion=diffusion, generator=g, eta=0.5)
    with pytest.raises(ValueError, match="pass a generator"):
        sample(model_fn, (1, 1), diffusion=diffusion, generator=None)
    with pytest.raises(ValueError, match="pass a generator"):
        sample(model_fn, (1, 1), diffusion=diffusion, generator=None, sampler="ddim")
    with pytest.raises(ValueError, match="pass a generator"):
        sample(model_fn, (1, 1), diffusion=diffusion, generator=None, sampler="ddim", eta=1.0, noise=torch.zeros(1, 1))
    with pytest.raises(ValueError, match="eta must be"):
        sample(model_fn, (1, 1), diffusion=diffusion, generator=g, sampler="ddim", eta=-1.0)
    with pytest.raises(ValueError, match="noise shape"):
        sample(model_fn, (2, 1), diffusion=diffusion, generator=g, noise=torch.zeros(1, 1))
