"""Training of the 32→64 upsampler on the toy world (unCLIP §2.1, scaled down).

Data: the same scene rendered at 64×64 (target x_0) and at 32×32 (the low-resolution input, exactly the kind of
image the base models learn to produce). Conditioning augmentation: the low-resolution input is blurred with a
Gaussian (kernel 3, σ 0.6) in half of the examples — the paper corrupts the first upsampler's input with blur so
it tolerates the base model's imperfections; keeping half of them sharp keeps it faithful to clean inputs (choice:
the paper does not state a rate). No text, no CLIP, no attention (`unclip_upsampler_toy.json`).

Process (choice): cosine schedule, T = 1000, ε-prediction with fixed variance, sampled with few DDIM steps.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from harness.data import toyworld
from harness.train.diffusion import (
    GRID_CAPTIONS,
    ImageDataSpec,
    grid_generators,
    images_to_tensor,
    pick_device,
    step_generator,
)
from harness.train.glide import StageRunSpec, _spec_json
from harness.train.loop import OptimSpec
from harness.train.stream import ReplayStream
from harness.train.unet_stage import BatchFn, run_stage_training
from models.diffusion import DiffusionConfig
from models.networks import UNetConfig, build_network, load_config
from models.networks.config import config_to_dict
from models.pipelines.stages import Stage, gaussian_blur, to_uint8, upsample_images

EXPORT_NAME = "unclip_upsampler_toy"
DEFAULT_CONFIG = "unclip_upsampler_toy"
BLUR_PROB = 0.5
BLUR_KERNEL = 3
BLUR_SIGMA = 0.6
LOW_RES = 32
GRID_STEPS = "10"


def upsampler_diffusion() -> DiffusionConfig:
    """The upsampler's process: cosine, T = 1000, ε-prediction, fixed small variance."""
    return DiffusionConfig(schedule="cosine", num_timesteps=1000, mean_type="epsilon", var_type="fixed_small")


def pair_stream(data: ImageDataSpec, batch: int) -> ReplayStream[tuple[np.ndarray, np.ndarray]]:
    """`ReplayStream` of ``(uint8 64×64 render, uint8 32×32 render)`` of one scene."""

    def make(index: int) -> tuple[np.ndarray, np.ndarray]:
        scene = toyworld.sample_scene(data.data_seed, index, data.split)
        return toyworld.render_scene(scene, data.size), toyworld.render_scene(scene, LOW_RES)

    return ReplayStream(make, batch=batch, fresh=min(data.fresh, batch), window=data.window, seed=data.data_seed)


def blur_augment(low_res: torch.Tensor, generator: torch.Generator, prob: float = BLUR_PROB) -> torch.Tensor:
    """Blur (kernel 3, σ 0.6) each image with probability ``prob`` (module docstring)."""
    blurred = gaussian_blur(low_res, BLUR_KERNEL, BLUR_SIGMA)
    pick = (torch.rand(low_res.shape[0], generator=generator) < prob)[:, None, None, None]
    return torch.where(pick, blurred, low_res)


def upsampler_batch_fn(stream: ReplayStream[tuple[np.ndarray, np.ndarray]], data_seed: int) -> BatchFn:
    """``step -> (x0, cond)``: 64×64 renders and their 32×32 renders, half of them blurred (``low_res``)."""

    def batch_fn(step: int) -> tuple[torch.Tensor, dict[str, Any]]:
        _, pairs = stream(step)
        high = images_to_tensor([h for h, _ in pairs])
        low = images_to_tensor([lo for _, lo in pairs])
        return high, {"low_res": blur_augment(low, step_generator(data_seed, step, salt=3))}

    return batch_fn


def train_upsampler(out_dir: Path, optim: OptimSpec, spec: StageRunSpec, *, resume: bool = False) -> dict[str, Any]:
    """Train the toy upsampler; writes ``out_dir/{state.pt, log.jsonl, unclip_upsampler_toy.*, samples/}``."""
    torch.manual_seed(spec.model_seed)
    net_config = load_config(spec.config)
    if not isinstance(net_config, UNetConfig) or not net_config.super_res:
        raise ValueError(f"config {spec.config!r} is not an upsampler (super_res UNet)")
    if spec.data.size != net_config.image_size:
        raise ValueError(f"--size {spec.data.size} differs from the upsampler's image_size {net_config.image_size}")
    network = build_network(net_config)
    diffusion = upsampler_diffusion()
    device = pick_device(spec.device)
    stream = pair_stream(spec.data, spec.batch)

    batch_fn = upsampler_batch_fn(stream, spec.data.data_seed)

    grid_low = _grid_low_res()

    def grid_fn(weights: torch.nn.Module) -> torch.Tensor:
        gens = list(grid_generators(grid_low.shape[0]))
        up = upsample_images(Stage(weights, diffusion), grid_low, gens, respacing=GRID_STEPS, device=device)
        nearest = torch.nn.functional.interpolate(grid_low, scale_factor=2, mode="nearest")
        return to_uint8(torch.stack([nearest, up], dim=1).flatten(0, 1))

    meta = {"kind": "upsampler", "network": config_to_dict(net_config), "diffusion": diffusion.to_dict()}
    run_config = {"model": "upsampler", **_spec_json(spec)}
    return run_stage_training(
        network, diffusion, batch_fn, optim, out_dir, spec,
        name=EXPORT_NAME, meta=meta, run_config=run_config, device=device,
        grid_fn=grid_fn, grid_columns=4, resume=resume,
    )


def _grid_low_res() -> torch.Tensor:
    """32×32 renders of the grid captions (seed 0), (8, 3, 32, 32) in [−1, 1]."""
    return images_to_tensor([toyworld.render_caption(c, seed=0, size=LOW_RES)[0] for c in GRID_CAPTIONS])
