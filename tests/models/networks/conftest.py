"""Fixtures for the network tests: tiny configs and a re-initialiser that undoes ADM's zero-init outputs."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

from models.networks.config import TextTransformerConfig, UNetConfig


def _randomize(net: nn.Module, seed: int = 0, std: float = 0.2) -> nn.Module:
    """Overwrite every parameter with N(0, std²) (zero-initialised layers would hide the conditioning)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * std)
    return net.eval()


@pytest.fixture
def randomize() -> Callable[..., nn.Module]:
    return _randomize


@pytest.fixture
def tiny_text() -> TextTransformerConfig:
    return TextTransformerConfig(vocab_size=40, context_length=8, width=16, layers=2, heads=2)


@pytest.fixture
def tiny_unet_kwargs() -> dict[str, object]:
    return {
        "image_size": 16,
        "model_channels": 16,
        "channel_mult": (1, 2),
        "num_res_blocks": 1,
        "attention_resolutions": (8,),
        "num_head_channels": 8,
    }


@pytest.fixture
def tiny_decoder(tiny_text: TextTransformerConfig, tiny_unet_kwargs: dict[str, object]) -> UNetConfig:
    return UNetConfig(**tiny_unet_kwargs, text_encoder=tiny_text, clip_embed_dim=12, learn_sigma=True)  # type: ignore[arg-type]


@pytest.fixture
def tiny_glide(tiny_text: TextTransformerConfig, tiny_unet_kwargs: dict[str, object]) -> UNetConfig:
    return UNetConfig(**tiny_unet_kwargs, text_encoder=tiny_text)  # type: ignore[arg-type]


@pytest.fixture
def tiny_upsampler() -> UNetConfig:
    return UNetConfig(image_size=16, model_channels=8, channel_mult=(1, 2), num_res_blocks=1, super_res=True)
