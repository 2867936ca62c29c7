"""Respacing: which steps are kept, the re-derived chain, and the timestep-mapping wrapper."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import Tensor

from models.diffusion.gaussian import GaussianDiffusion, ModelMeanType, ModelVarType
from models.diffusion.respace import SpacedDiffusion, TimestepMappedModel, space_timesteps
from models.diffusion.schedules import get_named_beta_schedule


@pytest.mark.parametrize("count", [2, 3, 10, 25, 27, 50, 250, 999, 1000])
def test_even_spacing_keeps_both_endpoints_and_the_count(count: int) -> None:
    for spec in (count, str(count), [count]):
        steps = space_timesteps(1000, spec)
        assert len(steps) == count
        assert min(steps) == 0 and max(steps) == 999


def test_segment_string_gives_the_expected_counts_per_segment() -> None:
    steps = np.array(sorted(space_timesteps(300, "10,10,3,2,2")))
    per_segment = np.histogram(steps, bins=[0, 60, 120, 180, 240, 300])[0]
    assert per_segment.tolist() == [10, 10, 3, 2, 2]
    assert len(steps) == 27 and steps[0] == 0 and steps[-1] == 299
    # Each segment with more than one step includes both of its ends.
    for start, count in zip(range(0, 300, 60), [10, 10, 3, 2, 2]):
        assert {start, start + 59} <= set(steps.tolist())


def test_segments_of_unequal_size_give_the_remainder_to_the_first_ones() -> None:
    steps = sorted(space_timesteps(1001, "2,2,2"))
    assert steps == [0, 333, 334, 667, 668, 1000]


def test_ddim_spacing_is_a_fixed_stride_from_zero() -> None:
    assert space_timesteps(1000, "ddim50") == set(range(0, 1000, 20))
    assert space_timesteps(1000, "ddim1000") == set(range(1000))


def test_fast27_swaps_the_last_step_as_glide() -> None:
    steps = space_timesteps(1000, "fast27")
    assert len(steps) == 27 and 999 not in steps and 997 in steps


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("abc", "bad timestep respacing"),
        ("ddimx", "bad timestep respacing"),
        ("ddim600", "integer stride"),
        ("0", "positive"),
        ("10,10", "segment of 8 steps"),
        ("1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1", "do not fit"),
    ],
)
def test_bad_spacings_raise_with_a_hint(spec: str, message: str) -> None:
    total = 15 if spec.startswith(("10,", "1,")) else 1000
    with pytest.raises(ValueError, match=message):
        space_timesteps(total, spec)


def test_spaced_chain_keeps_alpha_bar_at_the_kept_steps() -> None:
    betas = get_named_beta_schedule("cosine", 1000)
    base = GaussianDiffusion(betas)
    spaced = SpacedDiffusion.from_base(base, "10,10,3,2,2")
    assert spaced.num_timesteps == 27 and spaced.original_num_steps == 1000
    np.testing.assert_allclose(spaced.alphas_cumprod, base.alphas_cumprod[spaced.timestep_map], rtol=1e-8)
    full = SpacedDiffusion(range(1000), betas)
    np.testing.assert_allclose(full.betas, betas, rtol=1e-9)


@pytest.mark.parametrize("rescale", [False, True])
def test_spaced_diffusion_calls_the_network_with_original_steps(rescale: bool) -> None:
    base = GaussianDiffusion(get_named_beta_schedule("linear", 200), ModelMeanType.EPSILON, ModelVarType.FIXED_SMALL)
    spaced = SpacedDiffusion.from_base(base, 5, rescale_timesteps=rescale)
    seen: list[Tensor] = []

    def model_fn(x: Tensor, t: Tensor, **cond: Tensor) -> Tensor:
        seen.append(t)
        return torch.zeros_like(x)

    x = torch.zeros(3, 2)
    spaced.p_mean_variance(model_fn, x, torch.tensor([0, 2, 4]))
    spaced.training_losses(model_fn, x, torch.tensor([1, 3, 4]), torch.ones_like(x))
    expected = torch.tensor([[0, 100, 199], [50, 149, 199]])
    if rescale:
        torch.testing.assert_close(torch.stack(seen), expected.float() * 5.0)
    else:
        assert torch.equal(torch.stack(seen), expected)


def test_wrapper_is_not_applied_twice() -> None:
    spaced = SpacedDiffusion(range(0, 100, 10), get_named_beta_schedule("cosine", 100))
    wrapped = spaced.wrap_model(lambda x, t: x)
    assert isinstance(wrapped, TimestepMappedModel) and spaced.wrap_model(wrapped) is wrapped
    assert torch.equal(wrapped.map_timesteps(torch.tensor([0, 9])), torch.tensor([0, 90]))


def test_empty_or_out_of_range_timesteps_raise() -> None:
    betas = get_named_beta_schedule("cosine", 10)
    with pytest.raises(ValueError, match="non-empty subset"):
        SpacedDiffusion([], betas)
    with pytest.raises(ValueError, match="non-empty subset"):
        SpacedDiffusion([0, 10], betas)


def test_truncated_chain_spreads_the_steps_over_0_to_last_step() -> None:
    from models.diffusion import DiffusionConfig

    config = DiffusionConfig(schedule="cosine", num_timesteps=1000)
    full = config.build()
    truncated = config.build(respacing="5", last_step=399)
    assert isinstance(truncated, SpacedDiffusion)
    assert truncated.num_timesteps == 5
    assert list(truncated.timestep_map) == [0, 100, 200, 299, 399]
    # Same ᾱ as the full chain at the kept steps, so x_{399} of the full chain is the truncated chain's x_T.
    assert np.allclose(truncated.alphas_cumprod[-1], full.alphas_cumprod[399])
    for bad in (-1, 1000):
        with pytest.raises(ValueError, match="last_step must lie in"):
            config.build(respacing="5", last_step=bad)
    with pytest.raises(ValueError, match="needs a respacing"):
        config.build(last_step=10)


def test_karras_and_logsnr_spacings_follow_their_noise_levels() -> None:
    """Levels s = σ/α: Karras (ρ = 7) is dense at low noise, log-SNR uniform in log s; both keep both chain ends and
    map each level to the trained step whose log s is nearest by linear interpolation (checked independently)."""
    from models.diffusion import DiffusionConfig, space_timesteps

    alpha_bar = DiffusionConfig(schedule="linear").build().alphas_cumprod
    log_s = 0.5 * np.log((1 - alpha_bar) / alpha_bar)
    for spec in ("karras12", "logsnr12"):
        kept = sorted(space_timesteps(1000, spec, alphas_cumprod=alpha_bar))
        assert kept[0] == 0 and kept[-1] == 999 and len(kept) == 12
        ramp = np.linspace(0, 1, 12)
        if spec.startswith("karras"):
            hi, lo = np.exp(log_s[-1]) ** (1 / 7), np.exp(log_s[0]) ** (1 / 7)
            levels = 7 * np.log(hi + ramp * (lo - hi))
        else:
            levels = log_s[-1] + ramp * (log_s[0] - log_s[-1])
        fractional = np.interp(levels, log_s, np.arange(1000))  # log s increases with t
        assert kept == sorted({int(t) for t in np.round(fractional)})
    karras = sorted(space_timesteps(1000, "karras12", alphas_cumprod=alpha_bar))
    uniform = sorted(space_timesteps(1000, "12"))
    assert karras[1] < uniform[1]  # Karras spends more steps near the data
    # On the cosine chain the noise range is huge (s up to ~2e4 at T − 1): levels crowd there and some coincide.
    cosine = DiffusionConfig().build().alphas_cumprod
    assert len(space_timesteps(1000, "karras10", alphas_cumprod=cosine)) < 10


def test_level_spacings_need_the_chain_and_fit_in_it() -> None:
    from models.diffusion import check_respacing, space_timesteps

    alpha_bar = np.linspace(0.99, 0.01, 10)
    with pytest.raises(ValueError, match="needs the chain's alphas_cumprod"):
        space_timesteps(10, "karras5")
    with pytest.raises(ValueError, match="cannot take 11 steps from a chain of 10"):
        space_timesteps(10, "logsnr11", alphas_cumprod=alpha_bar)
    with pytest.raises(ValueError, match=r"must have shape \(10,\)"):
        space_timesteps(10, "karras5", alphas_cumprod=alpha_bar[:5])
    assert space_timesteps(10, "karras1", alphas_cumprod=alpha_bar) == {9}
    for good in ("20", 20, "ddim25", "trailing8", "karras8", "logsnr10", "fast27", "10,10,3,2,2", [3, 2]):
        check_respacing(good)
    for bad, message in (
        ("twenty", "bad timestep respacing"),
        ("karrasx", "bad timestep respacing"),
        ("0", "positive integers"),
        ("logsnr0", "positive integers"),
        ("", "bad timestep"),
    ):
        with pytest.raises(ValueError, match=message):
            check_respacing(bad)


def test_trailing_spacing_ends_a_stride_before_step_zero() -> None:
    from models.diffusion import space_timesteps

    assert sorted(space_timesteps(1000, "trailing8")) == [124, 249, 374, 499, 624, 749, 874, 999]
    assert sorted(space_timesteps(400, "trailing5")) == [79, 159, 239, 319, 399]  # a truncated chain (last step 399)
    assert space_timesteps(10, "trailing10") == set(range(10))
    with pytest.raises(ValueError, match="cannot take 11 steps"):
        space_timesteps(10, "trailing11")
