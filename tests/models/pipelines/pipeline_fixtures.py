"""Tiny random-weight stage checkpoints for pipeline, factory, generator and trainer tests (seconds, CPU).

`write_tiny_stack(folder)` writes every stage the factory needs, with the JSON layout the trainers write:
an open_clip CLIP of embedding width 16 at 8×8, a diffusion prior, an AR prior with fitted quantisers, a decoder
and a GLIDE base at 8×8, and an upsampler 8→16.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from models.checkpoints import save_checkpoint
from models.diffusion import DiffusionConfig
from models.networks import build_network
from models.networks.clip import build_clip
from models.networks.config import config_from_dict, config_to_dict
from models.networks.pca_quant import PCAQuantizer, QuantileBuckets
from models.pipelines.tokenizer import WordTokenizer

EMBED = 16
CAPTIONS = ("a red circle", "a blue square", "a small green star", "an orange cross above a pink diamond", "")
TOKENIZER = WordTokenizer.from_texts(CAPTIONS, context_length=8)

CLIP_CONFIG: dict[str, Any] = {
    "embed_dim": EMBED,
    "vision_cfg": {"image_size": 8, "layers": 1, "width": 32, "head_width": 16, "mlp_ratio": 2.0, "patch_size": 4},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 16, "heads": 2, "layers": 1, "mlp_ratio": 2.0},
}
TEXT_ENCODER = {"vocab_size": 32, "context_length": 8, "width": 16, "layers": 1, "heads": 2, "causal": False}


def unet_config(
    *, clip: bool = False, text: bool = True, super_res: bool = False, learn_sigma: bool = True
) -> dict[str, Any]:
    """A tiny UNet config dict (8×8 base, or 16×16 upsampler)."""
    return {
        "kind": "unet",
        "image_size": 16 if super_res else 8,
        "model_channels": 8,
        "channel_mult": [1, 2],
        "num_res_blocks": 1,
        "attention_resolutions": [] if super_res else [4],
        "num_head_channels": 8,
        "dropout": 0.0,
        "learn_sigma": learn_sigma,
        "text_encoder": TEXT_ENCODER if text else None,
        "clip_embed_dim": EMBED if clip else 0,
        "super_res": super_res,
    }


PRIOR_CONFIG = {
    "kind": "diffusion_prior",
    "embed_dim": EMBED,
    "vocab_size": 32,
    "text_context": 8,
    "width": 16,
    "layers": 1,
    "heads": 2,
}
AR_CONFIG = {
    "kind": "ar_prior",
    "embed_dim": EMBED,
    "vocab_size": 32,
    "text_context": 8,
    "num_components": 6,
    "num_buckets": 8,
    "num_dot_buckets": 4,
    "width": 16,
    "layers": 1,
    "heads": 2,
}
V_PRED = DiffusionConfig(mean_type="velocity", var_type="learned_range")
EPS = DiffusionConfig(mean_type="epsilon", var_type="fixed_small")
X0 = DiffusionConfig(mean_type="start_x", var_type="fixed_small")


def _randomise(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Give zero-initialised layers random weights too, so every output depends on every input."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            if p.ndim >= 1 and float(p.abs().sum()) == 0.0:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.01)
    return module.eval()


def tiny_network(config: dict[str, Any], seed: int = 0) -> torch.nn.Module:
    """A random tiny network of ``config``."""
    torch.manual_seed(seed)
    return _randomise(build_network(config), seed)


def write_tiny_stack(folder: Path, dtype: torch.dtype | None = None) -> dict[str, torch.nn.Module]:
    """Write all stage checkpoints to ``folder``; returns the modules (eval mode) by stem."""
    clip = build_clip(CLIP_CONFIG, seed=0).eval()
    clip_sha = save_checkpoint(
        clip, {"model_config": CLIP_CONFIG, "kind": "open_clip"}, folder / "clip_toy", dtype=dtype
    )
    clip_ref = {"file": "clip_toy", "sha256": clip_sha}
    tok = TOKENIZER.to_dict()
    modules: dict[str, torch.nn.Module] = {"clip_toy": clip}

    def stage(
        stem: str, kind: str, config: dict[str, Any], diffusion: DiffusionConfig, seed: int, **extra: Any
    ) -> None:
        net = tiny_network(config, seed)
        meta = {
            "kind": kind,
            "network": config_to_dict(config_from_dict(config)),
            "diffusion": diffusion.to_dict(),
            **extra,
        }
        save_checkpoint(net, meta, folder / stem, dtype=dtype)
        modules[stem] = net

    stage("glide_toy", "glide", unet_config(), V_PRED, 1, tokenizer=tok)
    stage("unclip_decoder_toy", "unclip_decoder", unet_config(clip=True), V_PRED, 2, tokenizer=tok, clip=clip_ref)
    stage("unclip_upsampler_toy", "upsampler", unet_config(text=False, super_res=True, learn_sigma=False), EPS, 3)
    stage("unclip_prior_toy", "diffusion_prior", PRIOR_CONFIG, X0, 4, tokenizer=tok, clip=clip_ref, scale=4.0)

    gen = torch.Generator().manual_seed(5)
    z = torch.nn.functional.normalize(torch.randn(200, EMBED, generator=gen), dim=-1)
    z_t = torch.nn.functional.normalize(torch.randn(200, EMBED, generator=gen), dim=-1)
    pca = PCAQuantizer.fit(z, AR_CONFIG["num_components"], AR_CONFIG["num_buckets"]).float()
    dot = QuantileBuckets(1, AR_CONFIG["num_dot_buckets"]).fit((z * z_t).sum(1, keepdim=True)).float()
    ar = tiny_network(AR_CONFIG, 6)
    state = {
        **{f"network.{k}": v for k, v in ar.state_dict().items()},
        **{f"pca.{k}": v for k, v in pca.state_dict().items()},
        **{f"dot.{k}": v for k, v in dot.state_dict().items()},
    }
    meta = {"kind": "ar_prior", "network": AR_CONFIG, "tokenizer": tok, "clip": clip_ref}
    save_checkpoint(state, meta, folder / "unclip_ar_prior_toy", dtype=None)
    modules["unclip_ar_prior_toy"] = ar
    return modules
