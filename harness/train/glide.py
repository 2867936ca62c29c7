"""Training of the GLIDE-style baseline (text-conditional UNet with its own text Transformer) on the toy world.

Data: renders of the ``train`` split at 32×32 with a fresh caption paraphrase per use (`harness.train.diffusion`).
Condition dropout: 20% of captions replaced by the network's learned null text (GLIDE §4.1, ``text_mask``).

Process (choice, recorded in the checkpoint): cosine schedule, T = 1000, **v-prediction** with learned variance
(hybrid loss, λ = 0.001). In a trial on this domain ε-prediction gave over-saturated, noisy DDIM backgrounds at
the same budget, v-prediction clean ones; the toy UNet configs have ``learn_sigma`` so the variance channels are
trained by L_vlb (used by DDPM sampling; DDIM ignores them).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from harness.data import toyworld
from harness.train.diffusion import (
    GRID_CAPTIONS,
    ImageDataSpec,
    grid_generators,
    image_stream,
    images_to_tensor,
    keep_mask,
    paraphrases,
    pick_device,
    step_generator,
    toy_tokenizer,
)
from harness.train.loop import OptimSpec
from harness.train.stream import ReplayStream
from harness.train.unet_stage import BatchFn, run_stage_training
from models.diffusion import DiffusionConfig
from models.networks import UNetConfig, build_network, load_config
from models.networks.config import config_to_dict
from models.pipelines.base import SamplingConfig
from models.pipelines.glide import text_unet_images
from models.pipelines.stages import Stage, to_uint8
from models.pipelines.tokenizer import WordTokenizer

EXPORT_NAME = "glide_toy"
DEFAULT_CONFIG = "glide_base_toy"
TEXT_DROP = 0.2
GRID_SETTINGS = SamplingConfig(decoder_guidance_scale=3.0, decoder_steps="20", batch_size=16)
GRID_PER_CAPTION = 4


def default_diffusion(network_config: UNetConfig) -> DiffusionConfig:
    """The toy base models' process: cosine, T = 1000, v-prediction, learned variance when the net has it."""
    return DiffusionConfig(
        schedule="cosine",
        num_timesteps=1000,
        mean_type="velocity",
        var_type="learned_range" if network_config.learn_sigma else "fixed_small",
    )


@dataclass(frozen=True)
class StageRunSpec:
    """Settings every UNet stage trainer shares besides the optimiser.

    Attributes:
        batch: images per step.
        data: the training images.
        config: network config name or JSON path.
        model_seed: seed of the initial weights.
        device: ``auto``, ``cpu``, ``cuda``...
        bf16: bf16 autocast for forward/backward (weights and optimiser stay float32).
        export: extra checkpoint stem written at each checkpoint (e.g. ``checkpoints/toy/glide_toy``).
        fp16: store exported weights as float16.
        grid_every: steps between sample grids (0 = never).
        stop_at: pause (save a resumable state and exit) after this many steps; None runs to the end.
        init_from: warm start: a checkpoint of the same network whose weights replace the seeded initial ones
            (the optimiser, EMA and schedule start fresh). Used to continue a shipped checkpoint whose run folder,
            with its optimiser state, is gone.
    """

    batch: int = 48
    data: ImageDataSpec = field(default_factory=ImageDataSpec)
    config: str = DEFAULT_CONFIG
    model_seed: int = 0
    device: str = "auto"
    bf16: bool = False
    export: str | None = None
    fp16: bool = True
    grid_every: int = 2000
    stop_at: int | None = None
    init_from: str | None = None


def glide_batch_fn(
    stream: ReplayStream[tuple[np.ndarray, toyworld.SceneSpec]], tokenizer: WordTokenizer, data_seed: int
) -> BatchFn:
    """``step -> (x0, cond)``: renders in [−1, 1], caption tokens, and 20% of captions dropped (``text_mask``)."""

    def batch_fn(step: int) -> tuple[torch.Tensor, dict[str, Any]]:
        indices, pairs = stream(step)
        captions = paraphrases(indices, [scene for _, scene in pairs], step, data_seed)
        tokens, token_mask = tokenizer(captions)
        text_mask = keep_mask(len(captions), TEXT_DROP, step_generator(data_seed, step, salt=2))
        return images_to_tensor([image for image, _ in pairs]), {
            "tokens": tokens,
            "token_mask": token_mask,
            "text_mask": text_mask,
        }

    return batch_fn


def train_glide(out_dir: Path, optim: OptimSpec, spec: StageRunSpec, *, resume: bool = False) -> dict[str, Any]:
    """Train the GLIDE toy base model; writes ``out_dir/{state.pt, log.jsonl, run.json, glide_toy.*, samples/}``."""
    torch.manual_seed(spec.model_seed)
    net_config = load_config(spec.config)
    if not isinstance(net_config, UNetConfig) or net_config.text_encoder is None or net_config.clip_embed_dim:
        raise ValueError(f"config {spec.config!r} is not a text-conditional UNet without CLIP input (GLIDE base)")
    network = build_network(net_config)
    tokenizer = toy_tokenizer(net_config.text_encoder.context_length)
    tokenizer.check_fits(net_config.text_encoder.vocab_size)
    diffusion = default_diffusion(net_config)
    device = pick_device(spec.device)
    stream = image_stream(spec.data, spec.batch)

    batch_fn = glide_batch_fn(stream, tokenizer, spec.data.data_seed)

    def grid_fn(weights: torch.nn.Module) -> torch.Tensor:
        prompts = [c for c in GRID_CAPTIONS for _ in range(GRID_PER_CAPTION)]
        gens = list(grid_generators(len(prompts)))
        images = text_unet_images(Stage(weights, diffusion), tokenizer, prompts, gens, GRID_SETTINGS, device=device)
        return to_uint8(images)

    meta = {
        "kind": "glide",
        "network": config_to_dict(net_config),
        "diffusion": diffusion.to_dict(),
        "tokenizer": tokenizer.to_dict(),
    }
    run_config = {"model": "glide", **_spec_json(spec)}
    return run_stage_training(
        network, diffusion, batch_fn, optim, out_dir, spec,
        name=EXPORT_NAME, meta=meta, run_config=run_config, device=device,
        grid_fn=grid_fn, grid_columns=GRID_PER_CAPTION, resume=resume,
    )


def _spec_json(spec: StageRunSpec) -> dict[str, Any]:
    """The run-identifying part of a spec (device, export path and grid cadence may change on resume)."""
    out = asdict(spec)
    for key in ("device", "export", "fp16", "grid_every", "stop_at"):
        out.pop(key)
    return out
