"""Our DPM-Solver++ loop against diffusers' ``DPMSolverMultistepScheduler`` driving the same small network with the
same betas, timesteps and starting noise (an independent reference implementation); Karras / log-SNR spacings
against diffusers' timesteps.

diffusers is configured with ``trained_betas`` = our betas, ``algorithm_type="dpmsolver++"`` (or
``"sde-dpmsolver++"``), ``solver_order=2``, the matching ``prediction_type`` and ``final_sigmas_type="zero"``, and
given our kept steps as custom ``timesteps``. Its σ table is built from the float64 ᾱ of the betas (see
`make_scheduler`); its updates run in float32 like ours: outputs agree to float32 precision. With learned variance diffusers' ε branch drops the variance channels itself; for v and x_0 it
does not, so its loop here passes the first C channels (what our sampler uses).
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np
import pytest
import torch
from test_dpm_solver import MU, S, exact_model, ode_endpoint, uniform_log_snr_diffusion
from torch import Tensor, nn

from models.diffusion import DiffusionConfig, ModelMeanType, SpacedDiffusion, sample


def _diffusers() -> Any:
    """On CI the test extra installs diffusers, so a missing package fails there instead of skipping."""
    if os.environ.get("CI"):
        return __import__("diffusers")
    return pytest.importorskip("diffusers")


pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")  # numpy 2 in diffusers

PREDICTION_TYPES = {"epsilon": "epsilon", "start_x": "sample", "velocity": "v_prediction"}


class TinyDenoiser(nn.Module):
    """conv → (+ sinusoidal embedding of t) → SiLU → conv → 2·tanh(·/2): a random network whose output depends on x
    and t, bounded like a trained denoiser's (|ε̂|, |x̂_0|, |v̂| ≲ 2)."""

    def __init__(self, channels: int, out_channels: int, seed: int) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.conv_in = nn.Conv2d(channels, 16, 3, padding=1)
        self.time = nn.Linear(8, 16)
        self.conv_out = nn.Conv2d(16, out_channels, 3, padding=1)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=generator) * 0.3)

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        freqs = torch.exp(-math.log(1000.0) * torch.arange(4, dtype=torch.float32) / 4)
        angles = t.to(x.dtype)[:, None] * freqs.to(x.dtype)[None]
        emb = self.time(torch.cat([angles.sin(), angles.cos()], dim=1))
        return 2.0 * torch.tanh(0.5 * self.conv_out(nn.functional.silu(self.conv_in(x) + emb[:, :, None, None])))


def diffusers_loop(
    scheduler: Any, network: nn.Module, x: Tensor, channels: int, generators: list[torch.Generator] | None = None
) -> Tensor:
    """The unrolled diffusers loop: timesteps → network → ``scheduler.step``."""
    with torch.no_grad():
        for t in scheduler.timesteps:
            out = network(x, t.expand(x.shape[0]))[:, :channels]
            x = scheduler.step(out, t, x, generator=generators).prev_sample
    return x


def make_scheduler(config: DiffusionConfig, timesteps: list[int] | None = None, **options: Any) -> Any:
    diffusers = _diffusers()
    betas = config.build().betas
    scheduler = diffusers.DPMSolverMultistepScheduler(
        num_train_timesteps=config.num_timesteps,
        trained_betas=betas,
        solver_order=options.pop("solver_order", 2),
        prediction_type=PREDICTION_TYPES[config.mean_type],
        algorithm_type=options.pop("algorithm_type", "dpmsolver++"),
        final_sigmas_type="zero",
        lower_order_final=True,
        **options,
    )
    # diffusers keeps ᾱ in float32, where 1 − ᾱ_0 ≈ 4e-5 (cosine) keeps ~3 significant digits and σ_0 is off by
    # ~1e-3; its σ table is then computed from the float64 ᾱ of the same betas (its update math stays its own).
    scheduler.alphas_cumprod = torch.from_numpy(np.cumprod(1.0 - betas))
    if timesteps is not None:
        scheduler.set_timesteps(timesteps=timesteps)
    return scheduler


CASES = [  # ε cases avoid step T − 1 of the cosine chain (ᾱ ≈ 2e-9, x̂_0 = (x − σε)/α ~ 1e4·ε: float32 noise)
    ("epsilon", "fixed_small", "ddim20", None),
    ("epsilon", "learned_range", "ddim25", None),
    ("velocity", "learned_range", "20", None),
    ("velocity", "fixed_small", "logsnr12", None),
    ("start_x", "fixed_small", "10", None),
    ("epsilon", "fixed_small", "karras8", 399),  # the upsampler's truncated start: from x_399
    ("velocity", "learned_range", "6", 399),
]


@pytest.mark.parametrize(("mean_type", "var_type", "respacing", "last_step"), CASES)
def test_dpm_solver_2m_equals_diffusers(mean_type: str, var_type: str, respacing: str, last_step: int | None) -> None:
    config = DiffusionConfig(mean_type=mean_type, var_type=var_type)
    diffusion = config.build(respacing=respacing, last_step=last_step)
    out_channels = 6 if var_type == "learned_range" else 3
    network = TinyDenoiser(3, out_channels, seed=len(respacing)).eval()
    noise = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    ours = sample(
        network, noise.shape, diffusion=diffusion, generator=None, sampler="dpm++2m", noise=noise, clip_denoised=False
    )
    scheduler = make_scheduler(config, list(reversed(diffusion.timestep_map)))
    theirs = diffusers_loop(scheduler, network, noise.clone(), 3)
    assert theirs.abs().max() > 0.1  # the comparison is not between two zeros
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("count", [5, 8, 13])
def test_trailing_spacing_is_diffusers_trailing_and_samples_alike(count: int) -> None:
    """``"trailingN"`` keeps diffusers' ``timestep_spacing="trailing"`` steps, so here diffusers picks the timesteps."""
    config = DiffusionConfig(mean_type="velocity", var_type="learned_range")
    diffusion = config.build(respacing=f"trailing{count}")
    scheduler = make_scheduler(config, timestep_spacing="trailing")
    scheduler.set_timesteps(num_inference_steps=count)
    assert list(reversed(diffusion.timestep_map)) == [int(t) for t in scheduler.timesteps]
    network = TinyDenoiser(3, 6, seed=count).eval()
    noise = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(count))
    ours = sample(
        network, noise.shape, diffusion=diffusion, generator=None, sampler="dpm++2m", noise=noise, clip_denoised=False
    )
    torch.testing.assert_close(ours, diffusers_loop(scheduler, network, noise.clone(), 3), rtol=1e-4, atol=1e-4)


def test_dpm_solver_2m_sde_equals_diffusers_with_the_same_per_sample_generators() -> None:
    config = DiffusionConfig(mean_type="velocity", var_type="learned_range")
    diffusion = config.build(respacing="12")
    network = TinyDenoiser(3, 6, seed=7).eval()
    noise = torch.randn(3, 3, 8, 8, generator=torch.Generator().manual_seed(1))

    def generators() -> list[torch.Generator]:
        return [torch.Generator().manual_seed(50 + k) for k in range(3)]

    ours = sample(
        network,
        noise.shape,
        diffusion=diffusion,
        generator=generators(),
        sampler="dpm++2m-sde",
        noise=noise,
        clip_denoised=False,
    )
    scheduler = make_scheduler(config, list(reversed(diffusion.timestep_map)), algorithm_type="sde-dpmsolver++")
    theirs = diffusers_loop(scheduler, network, noise.clone(), 3, generators())
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
@pytest.mark.parametrize(("spacing", "option"), [("karras", "use_karras_sigmas"), ("logsnr", "use_lu_lambdas")])
@pytest.mark.parametrize("count", [5, 12, 25])
def test_karras_and_logsnr_steps_are_diffusers_timesteps(schedule: str, spacing: str, option: str, count: int) -> None:
    """Our kept steps are the distinct timesteps diffusers picks for the same spacing (it keeps duplicates)."""
    config = DiffusionConfig(schedule=schedule)
    scheduler = make_scheduler(config, **{option: True})
    scheduler.set_timesteps(num_inference_steps=count)
    kept = config.build(respacing=f"{spacing}{count}").timestep_map
    assert kept == sorted({int(t) for t in scheduler.timesteps})


def test_karras_run_equals_diffusers_on_its_rounded_timesteps() -> None:
    """On a schedule where no two Karras levels share a step, the Karras run is diffusers' loop over the same
    (rounded) timesteps; diffusers' own Karras mode would keep the unrounded σ in the update (module docstring of
    `models.diffusion.dpm_solver`)."""
    config = DiffusionConfig(schedule="linear", mean_type="velocity")
    diffusion = config.build(respacing="karras12")
    scheduler = make_scheduler(config, use_karras_sigmas=True)
    scheduler.set_timesteps(num_inference_steps=12)
    assert list(reversed(diffusion.timestep_map)) == [int(t) for t in scheduler.timesteps]
    network = TinyDenoiser(3, 3, seed=3).eval()
    noise = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    ours = sample(
        network, noise.shape, diffusion=diffusion, generator=None, sampler="dpm++2m", noise=noise, clip_denoised=False
    )
    theirs = diffusers_loop(make_scheduler(config, list(reversed(diffusion.timestep_map))), network, noise.clone(), 3)
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)


def test_diffusers_third_order_converges_at_order_two_and_ours_at_three() -> None:
    """The documented difference (`models.diffusion.dpm_solver`): diffusers' 3M halves the second-derivative term.
    Same exact x_0-denoiser of the Gaussian toy, same even log-SNR steps, error against the exact ODE solution."""
    base = uniform_log_snr_diffusion(3.0, -8.0, 4097, ModelMeanType.START_X)
    model_fn = exact_model(base, ModelMeanType.START_X)
    x_start = torch.randn(32, 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    exact = ode_endpoint(x_start, base.alphas_cumprod[-1], base.alphas_cumprod[0])
    config = DiffusionConfig(mean_type="start_x", num_timesteps=4097)
    errors: dict[str, list[float]] = {"ours": [], "diffusers": []}
    for intervals in (64, 128):
        diffusion = SpacedDiffusion.from_base(base, intervals + 1)
        ours = sample(
            model_fn,
            x_start.shape,
            diffusion=diffusion,
            generator=None,
            sampler="dpm++3m",
            noise=x_start,
            clip_denoised=False,
            dtype=torch.float64,
        )
        errors["ours"].append((ours - exact).abs().max().item())
        diffusers = _diffusers()
        scheduler = diffusers.DPMSolverMultistepScheduler(
            num_train_timesteps=4097,
            trained_betas=base.betas,
            solver_order=3,
            prediction_type="sample",
            algorithm_type="dpmsolver++",
            final_sigmas_type="zero",
        )
        scheduler.set_timesteps(timesteps=list(reversed(diffusion.timestep_map)))
        x = x_start.clone()
        for t in scheduler.timesteps:
            x = scheduler.step(model_fn(x, t.expand(len(x))), t, x).prev_sample
        errors["diffusers"].append((x - exact).abs().max().item())
    slope = {name: math.log2(errs[0] / errs[1]) for name, errs in errors.items()}
    assert slope["ours"] > 3.0 and slope["diffusers"] < 2.5, (errors, slope)
    assert errors["ours"][1] < errors["diffusers"][1] / 5
    assert config.num_timesteps == len(base.betas) and MU != S  # the toy of test_dpm_solver


def test_loop_equals_itself_for_first_order_with_diffusers_order_one() -> None:
    """Order 1 (DDIM η = 0) through diffusers' first-order update, as a sanity anchor of the parameterisation."""
    config = DiffusionConfig(mean_type="epsilon")
    diffusion = config.build(respacing="ddim10")
    network = TinyDenoiser(3, 3, seed=11).eval()
    noise = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(5))
    ours = sample(
        network, noise.shape, diffusion=diffusion, generator=None, sampler="ddim", noise=noise, clip_denoised=False
    )
    theirs = diffusers_loop(
        make_scheduler(config, list(reversed(diffusion.timestep_map)), solver_order=1), network, noise.clone(), 3
    )
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)
    assert np.isfinite(ours.numpy()).all()
