"""Networks: ``nn.Module`` s mapping tensors to tensors (no tokenizers, no caches, no diffusion process).

Doors: :func:`build_network`, :func:`list_configs`, :func:`load_config`; config classes in :mod:`.config`.
"""

from __future__ import annotations

from models.networks.build import build_network
from models.networks.config import (
    ARPriorConfig,
    DiffusionPriorConfig,
    TextTransformerConfig,
    UNetConfig,
    list_configs,
    load_config,
)

__all__ = [
    "ARPriorConfig",
    "DiffusionPriorConfig",
    "TextTransformerConfig",
    "UNetConfig",
    "build_network",
    "list_configs",
    "load_config",
]
