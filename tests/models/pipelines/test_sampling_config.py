"""One place for sampling options: per-stage samplers and steps of `SamplingConfig`, their validation, their wiring
through every stage (diffusion prior, decoder / GLIDE base, upsampler with its truncated start), and the DDIM
settings that reproduce the images made before per-stage samplers existed, bit for bit."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from models.diffusion import SAMPLER_NAMES, ClassifierFreeGuidance
from models.factory import create_pipeline, list_models
from models.pipelines import stages
from models.pipelines.base import STAGES, SamplingConfig

DATA = Path(__file__).parent / "data"
PROMPTS = ["a red circle", "a blue square", "a small green star", "an orange cross above a pink diamond", "a red star"]
SEEDS = [0, 1, 2, 3, 4]


@pytest.mark.parametrize("name", list_models())
def test_ddim_settings_reproduce_the_images_recorded_before_per_stage_samplers(tiny_dir: Path, name: str) -> None:
    """``tests/models/pipelines/data/legacy_ddim_images.npz`` was written by the pipelines at commit 3d229c3 (DDIM
    only, sampler for the base model, DDIM hard-wired in the prior and upsampler) on this tiny random stack, with the
    settings in ``legacy_ddim_cases.json``: the demo's (decoder DDIM 20, upsampler DDIM 10 from start 0.4, prior 32)
    and a full-chain upsampler with prior guidance."""
    recorded = np.load(DATA / "legacy_ddim_images.npz")
    cases = json.loads((DATA / "legacy_ddim_cases.json").read_text())
    pipeline = create_pipeline(name, tiny_dir)
    for case, settings in cases.items():
        assert settings["sampler"] == "ddim"
        images = pipeline(PROMPTS, SEEDS, SamplingConfig(**settings)).images
        assert np.array_equal(images, recorded[f"{name}/{case}"]), case


@pytest.fixture
def sample_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict[str, Any]]]:
    """Every `models.diffusion.sample` call the stages make: sampler, kept steps, first step, guidance scale."""
    calls: list[dict[str, Any]] = []
    real_sample = stages.sample

    def recording(model_fn: Any, shape: Any, **kwargs: Any) -> Any:
        diffusion = kwargs["diffusion"]
        calls.append(
            {
                "sampler": kwargs["sampler"],
                "timesteps": list(getattr(diffusion, "timestep_map", range(diffusion.num_timesteps))),
                "scale": model_fn.scale if isinstance(model_fn, ClassifierFreeGuidance) else 1.0,
                "ndim": len(shape),
            }
        )
        return real_sample(model_fn, shape, **kwargs)

    monkeypatch.setattr(stages, "sample", recording)
    yield calls


def test_each_stage_samples_with_its_own_sampler_and_steps(tiny_dir: Path, sample_calls: list[dict[str, Any]]) -> None:
    pipeline = create_pipeline("unclip-diffusion-prior", tiny_dir)
    config = SamplingConfig(
        sampler="heun",
        prior_sampler="dpm++3m",
        upsampler_sampler="dpm++2m-sde",
        prior_steps="logsnr5",
        decoder_steps="4",
        upsampler_steps="karras3",
        upsampler_start=0.4,
        batch_size=8,
    )
    pipeline(PROMPTS[:2], SEEDS[:2], config)
    prior, decoder, upsampler = sample_calls
    assert (prior["sampler"], prior["ndim"]) == ("dpm++3m", 2)  # (B·candidates, D) embeddings
    assert len(prior["timesteps"]) <= 5 and prior["timesteps"][-1] == 999
    assert (decoder["sampler"], decoder["timesteps"]) == ("heun", [0, 333, 666, 999])
    assert upsampler["sampler"] == "dpm++2m-sde"
    assert upsampler["timesteps"][-1] == round(0.4 * 999)  # the truncated start
    assert upsampler["scale"] == 1.0


def test_glide_base_and_upsampler_follow_the_shared_sampler(tiny_dir: Path, sample_calls: list[dict[str, Any]]) -> None:
    pipeline = create_pipeline("glide", tiny_dir)
    pipeline(PROMPTS[:1], SEEDS[:1], SamplingConfig(sampler="dpm++3m", decoder_steps="3", upsampler_steps="2"))
    assert [c["sampler"] for c in sample_calls] == ["dpm++3m", "dpm++3m"]
    assert sample_calls[0]["scale"] == 3.0


def test_a_configured_zero_guidance_stays_zero(tiny_dir: Path, sample_calls: list[dict[str, Any]]) -> None:
    config = SamplingConfig(
        prior_guidance_scale=0.0, decoder_guidance_scale=0.0, prior_steps="3", decoder_steps="3", upsample=False
    )
    assert config.prior_guidance_scale == 0.0 and config.decoder_guidance_scale == 0.0
    create_pipeline("unclip-diffusion-prior", tiny_dir)(PROMPTS[:1], SEEDS[:1], config)
    assert [c["scale"] for c in sample_calls] == [0.0, 0.0]


@pytest.mark.parametrize("sampler", ["dpm++2m", "dpm++2m-sde", "heun", "euler-a"])
@pytest.mark.parametrize("name", list_models())
def test_every_sampler_keeps_images_independent_of_the_batch(tiny_dir: Path, name: str, sampler: str) -> None:
    pipeline = create_pipeline(name, tiny_dir)
    config = SamplingConfig(
        sampler=sampler,
        prior_steps="karras4",
        decoder_steps="4",
        upsampler_steps="3",
        upsampler_start=0.4,
        batch_size=2,
    )
    full = pipeline(PROMPTS, SEEDS, config).images
    assert np.array_equal(pipeline([PROMPTS[3], PROMPTS[0]], [SEEDS[3], SEEDS[0]], config).images, full[[3, 0]])
    assert np.array_equal(pipeline([PROMPTS[4]], [SEEDS[4]], config).images[0], full[4])


def test_defaults_and_stage_samplers() -> None:
    config = SamplingConfig()
    assert [config.stage_sampler(s) for s in STAGES] == [config.sampler] * 3
    mixed = SamplingConfig(sampler="ddim", upsampler_sampler="dpm++2m")
    assert [mixed.stage_sampler(s) for s in STAGES] == ["ddim", "ddim", "dpm++2m"]
    assert set(SAMPLER_NAMES) >= {config.sampler, "ddim", "ddpm", "dpm++2m", "dpm++3m"}
    with pytest.raises(ValueError, match="unknown stage 'base'"):
        config.stage_sampler("base")


def test_bad_sampling_options_raise_one_clear_error() -> None:
    with pytest.raises(ValueError, match=r"^sampler: unknown sampler 'dpm\+\+2'; did you mean 'dpm\+\+2m'"):
        SamplingConfig(sampler="dpm++2")
    with pytest.raises(ValueError, match=r"^upsampler_sampler: unknown sampler 'eulr-a'; did you mean 'euler-a'"):
        SamplingConfig(upsampler_sampler="eulr-a")
    with pytest.raises(ValueError, match="use one of: ddpm, ddim, dpm"):
        SamplingConfig(decoder_sampler="plms")
    with pytest.raises(ValueError, match=r"^decoder_steps: bad timestep respacing 'twenty'"):
        SamplingConfig(decoder_steps="twenty")
    with pytest.raises(ValueError, match=r"^prior_steps: step counts must be positive"):
        SamplingConfig(prior_steps="karras0")
    with pytest.raises(ValueError, match="eta applies to a DDIM decoder only"):
        SamplingConfig(sampler="dpm++2m", eta=0.5)
    assert SamplingConfig(sampler="dpm++2m", decoder_sampler="ddim", eta=0.5).eta == 0.5
