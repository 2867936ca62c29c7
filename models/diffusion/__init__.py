"""The diffusion process, apart from the networks: schedules, Gaussian diffusion, respacing, guidance, samplers
(DDPM, DDIM, DPM-Solver++ 2M/3M/2M-SDE, Euler ancestral, Heun).

Everything here takes the network as a callable ``model_fn(x_t, t, **cond) -> Tensor`` and never imports
``models.networks`` (DESIGN.md, dependency rule 2).
"""

from __future__ import annotations

from models.diffusion.config import DiffusionConfig
from models.diffusion.gaussian import (
    GaussianDiffusion,
    ModelFn,
    ModelMeanType,
    ModelVarType,
    PMeanVariance,
    discretized_gaussian_log_likelihood,
    normal_kl,
)
from models.diffusion.guidance import ClassifierFreeGuidance, classifier_free_guidance, guided_combine
from models.diffusion.respace import SpacedDiffusion, TimestepMappedModel, check_respacing, space_timesteps
from models.diffusion.samplers import (
    SAMPLER_NAMES,
    Sampler,
    SampleStep,
    ddim_reverse_sample_loop,
    ddim_sample_loop,
    generator_for,
    network_evaluations,
    p_sample_loop,
    parse_sampler,
    randn,
    sample,
    sample_progressive,
)
from models.diffusion.schedules import SCHEDULE_NAMES, betas_for_alpha_bar, get_named_beta_schedule
from models.diffusion.slerp import slerp, text_diff_direction

__all__ = [
    "SAMPLER_NAMES",
    "SCHEDULE_NAMES",
    "ClassifierFreeGuidance",
    "DiffusionConfig",
    "GaussianDiffusion",
    "ModelFn",
    "ModelMeanType",
    "ModelVarType",
    "PMeanVariance",
    "SampleStep",
    "Sampler",
    "SpacedDiffusion",
    "TimestepMappedModel",
    "betas_for_alpha_bar",
    "check_respacing",
    "classifier_free_guidance",
    "ddim_reverse_sample_loop",
    "ddim_sample_loop",
    "discretized_gaussian_log_likelihood",
    "generator_for",
    "get_named_beta_schedule",
    "guided_combine",
    "network_evaluations",
    "normal_kl",
    "p_sample_loop",
    "parse_sampler",
    "randn",
    "sample",
    "sample_progressive",
    "slerp",
    "space_timesteps",
    "text_diff_direction",
]
