"""Training of the unCLIP decoder on the toy world: the GLIDE UNet plus the CLIP image embedding z_i.

Data: 32×32 renders of the ``train`` split, a caption paraphrase per use, and z_i = the toy CLIP's unit-norm image
embedding of the render itself (computed on the fly by the frozen CLIP named by ``--clip``). Condition dropout
(unCLIP §2.1): z_i replaced by the learned null 10% of the time (``clip_mask``), the caption 50% (``text_mask``),
independently. Process: as GLIDE's (`harness.train.glide.default_diffusion`): same width, same process, same
budget, so the comparison is fair.

The checkpoint's JSON names the CLIP it was trained with (``"clip": {"file": ..., "sha256": ...}``): the pipeline
must encode captions and images with exactly that CLIP.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from harness.data import toyworld
from harness.train.diffusion import (
    GRID_CAPTIONS,
    grid_generators,
    image_stream,
    images_to_tensor,
    keep_mask,
    paraphrases,
    pick_device,
    step_generator,
    toy_tokenizer,
)
from harness.train.glide import GRID_PER_CAPTION, GRID_SETTINGS, StageRunSpec, _spec_json, default_diffusion
from harness.train.loop import OptimSpec
from harness.train.stream import ReplayStream
from harness.train.unet_stage import BatchFn, run_stage_training
from models.checkpoints import load_checkpoint
from models.networks import UNetConfig, build_network, load_config
from models.networks.clip import encode_images, load_clip
from models.networks.config import config_to_dict
from models.pipelines.glide import text_unet_images
from models.pipelines.stages import Stage, to_uint8
from models.pipelines.tokenizer import WordTokenizer

EXPORT_NAME = "unclip_decoder_toy"
DEFAULT_CONFIG = "unclip_decoder_toy"
DEFAULT_CLIP = "checkpoints/toy/clip_toy"
CLIP_DROP = 0.1
TEXT_DROP = 0.5


def load_frozen_clip(path: str | Path) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The CLIP of a `models.checkpoints` checkpoint and its reference ``{"file", "sha256", "config"}``."""
    _, meta, digest = load_checkpoint(path)
    config = meta.get("model_config")
    if not isinstance(config, dict):
        raise ValueError(f"{path} is not a CLIP checkpoint of `harness train clip` (no model_config in its JSON)")  # noqa: TRY004 - a user error
    model = load_clip(config, path)
    return model, {
        "file": Path(path).with_suffix("").name,
        "sha256": digest,
        "trained_steps": meta.get("trained_steps"),
    }


def decoder_batch_fn(
    stream: ReplayStream[tuple[np.ndarray, toyworld.SceneSpec]],
    tokenizer: WordTokenizer,
    clip: torch.nn.Module,
    data_seed: int,
) -> BatchFn:
    """``step -> (x0, cond)``: renders, caption tokens, their CLIP z_i; z_i dropped 10%, captions 50%."""

    def batch_fn(step: int) -> tuple[torch.Tensor, dict[str, Any]]:
        indices, pairs = stream(step)
        images = [image for image, _ in pairs]
        captions = paraphrases(indices, [scene for _, scene in pairs], step, data_seed)
        tokens, token_mask = tokenizer(captions)
        gen = step_generator(data_seed, step, salt=2)
        z_i = encode_images(clip, torch.from_numpy(np.stack(images))).cpu()
        return images_to_tensor(images), {
            "tokens": tokens,
            "token_mask": token_mask,
            "clip_emb": z_i,
            "clip_mask": keep_mask(len(images), CLIP_DROP, gen),
            "text_mask": keep_mask(len(images), TEXT_DROP, gen),
        }

    return batch_fn


def train_decoder(
    out_dir: Path, optim: OptimSpec, spec: StageRunSpec, *, clip_path: str | Path = DEFAULT_CLIP, resume: bool = False
) -> dict[str, Any]:
    """Train the unCLIP toy decoder; writes ``out_dir/{state.pt, log.jsonl, unclip_decoder_toy.*, samples/}``."""
    torch.manual_seed(spec.model_seed)
    net_config = load_config(spec.config)
    if not isinstance(net_config, UNetConfig) or net_config.text_encoder is None or not net_config.clip_embed_dim:
        raise ValueError(f"config {spec.config!r} is not an unCLIP decoder (text UNet with clip_embed_dim > 0)")
    clip, clip_ref = load_frozen_clip(clip_path)
    network = build_network(net_config)
    tokenizer = toy_tokenizer(net_config.text_encoder.context_length)
    tokenizer.check_fits(net_config.text_encoder.vocab_size)
    diffusion = default_diffusion(net_config)
    device = pick_device(spec.device)
    clip.to(device)
    stream = image_stream(spec.data, spec.batch)

    batch_fn = decoder_batch_fn(stream, tokenizer, clip, spec.data.data_seed)

    grid_images = _grid_embeddings(clip, spec.data.size)

    def grid_fn(weights: torch.nn.Module) -> torch.Tensor:
        prompts = [c for c in GRID_CAPTIONS for _ in range(GRID_PER_CAPTION)]
        gens = list(grid_generators(len(prompts)))
        images = text_unet_images(
            Stage(weights, diffusion),
            tokenizer,
            prompts,
            gens,
            GRID_SETTINGS,
            extra_cond={"clip_emb": grid_images},
            device=device,
        )
        return to_uint8(images)

    meta = {
        "kind": "unclip_decoder",
        "network": config_to_dict(net_config),
        "diffusion": diffusion.to_dict(),
        "tokenizer": tokenizer.to_dict(),
        "clip": clip_ref,
    }
    run_config = {"model": "unclip_decoder", "clip_sha256": clip_ref["sha256"], **_spec_json(spec)}
    return run_stage_training(
        network, diffusion, batch_fn, optim, out_dir, spec,
        name=EXPORT_NAME, meta=meta, run_config=run_config, device=device,
        grid_fn=grid_fn, grid_columns=GRID_PER_CAPTION, resume=resume,
    )


def _grid_embeddings(clip: torch.nn.Module, size: int) -> torch.Tensor:
    """z_i of one real render per grid caption (seed k), repeated per column: a reconstruction grid."""
    renders = []
    for caption in GRID_CAPTIONS:
        for k in range(GRID_PER_CAPTION):
            image, _ = toyworld.render_caption(caption, seed=k, size=size)
            renders.append(torch.from_numpy(image))
    return encode_images(clip, torch.stack(renders)).cpu()
