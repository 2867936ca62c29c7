"""``build_network(config) -> nn.Module``: the one factory from a typed config (or a config name) to a network.

Build a paper-size network without allocating memory on the meta device::

    with torch.device("meta"):
        net = build_network("unclip_decoder_paper")
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import nn

from models.networks.config import (
    ARPriorConfig,
    DiffusionPriorConfig,
    NetworkConfig,
    TextTransformerConfig,
    UNetConfig,
    config_from_dict,
    load_config,
)
from models.networks.prior import ARPriorNetwork, DiffusionPriorNetwork
from models.networks.text_transformer import TextTransformer
from models.networks.unet import UNet


def build_network(config: NetworkConfig | str | Path | Mapping[str, Any]) -> nn.Module:
    """Instantiate the network described by ``config``.

    Args:
        config: a config dataclass, a config name from :func:`~models.networks.config.list_configs`, a path to a
            ``.json`` file, or a JSON-like mapping with a ``"kind"`` key.

    Returns:
        The randomly initialised network (on the current default device, e.g. inside ``with torch.device("meta")``).

    Raises:
        ValueError: unknown config name, invalid config.
    """
    if isinstance(config, (str, Path)):
        config = load_config(config)
    elif isinstance(config, Mapping):
        config = config_from_dict(config)
    if isinstance(config, UNetConfig):
        return UNet(config)
    if isinstance(config, DiffusionPriorConfig):
        return DiffusionPriorNetwork(config)
    if isinstance(config, ARPriorConfig):
        return ARPriorNetwork(config)
    if isinstance(config, TextTransformerConfig):
        return TextTransformer(config)
    raise TypeError(f"build_network expects a network config, got {type(config).__name__}")
