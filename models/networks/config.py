"""Typed architecture configs for every network, and their JSON files in ``models/configs/``.

Architectures are data, as in open_clip's ``model_configs/*.json``: one JSON object per file, with a ``"kind"`` key
naming the config class (``"unet"``, ``"diffusion_prior"``, ``"ar_prior"``, ``"text_transformer"``), an optional
``"description"``, and the fields of that class. Loading validates once at the boundary: an unknown key raises
``ValueError`` with a did-you-mean suggestion, a wrong type or a missing field raises ``ValueError`` naming it.
Below this module only the frozen dataclasses travel.

Public doors: :func:`list_configs`, :func:`load_config`, :func:`config_from_dict`, :func:`config_to_dict`,
:func:`save_config`. Files in ``models/configs/`` whose ``"kind"`` is not a network kind (e.g. pipeline configs
written beside them) are not listed here.

Paper sizes (``*_paper.json``) follow unCLIP Table 3 and GLIDE §4; where the tables leave freedom or contradict
the stated totals, the file's ``"description"`` says what was chosen and why (see also ``models/networks/prior.py``).
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"
"""Folder holding the named JSON configs (``models/configs``)."""

_META_KEYS = ("kind", "description")


@dataclass(frozen=True)
class TextTransformerConfig:
    """GLIDE-style text encoder (``glide_text2im/xf.py``): token ids → token states and a final-token embedding."""

    kind: ClassVar[str] = "text_transformer"

    vocab_size: int
    """Token vocabulary size; ids must lie in [0, vocab_size)."""
    context_length: int
    """Maximum number of tokens (GLIDE ``text_ctx``; unCLIP Table 3: 256)."""
    width: int
    layers: int
    heads: int
    causal: bool = False
    """False (GLIDE): bidirectional, so the last position summarises the whole caption. True: causal mask."""
    final_ln: bool = True
    """LayerNorm on the output states (GLIDE ``xf_final_ln``)."""

    def __post_init__(self) -> None:
        _require_positive(self, "vocab_size", "context_length", "width", "layers", "heads")
        if self.width % self.heads:
            raise ValueError(f"text transformer width {self.width} is not divisible by heads={self.heads}")


@dataclass(frozen=True)
class UNetConfig:
    """ADM/GLIDE UNet: the unCLIP decoder, the GLIDE base model, or an upsampler (``super_res``).

    Conditioning present in the network follows from the fields: a ``text_encoder`` makes it text-conditional
    (GLIDE), ``clip_embed_dim > 0`` adds the unCLIP CLIP-embedding pathway, ``super_res`` adds the low-resolution
    input channels.
    """

    kind: ClassVar[str] = "unet"

    image_size: int
    """Output side in pixels (the network is convolutional; this fixes which levels have attention)."""
    model_channels: int
    """Base width (Table 3 "Channels")."""
    channel_mult: tuple[int, ...]
    """Width multiple per resolution level (Table 3 "Channels multiple")."""
    num_res_blocks: int
    """Residual blocks per level (Table 3 "Depth")."""
    in_channels: int = 3
    out_channels: int = 3
    """Image channels predicted; the output has ``2 × out_channels`` when ``learn_sigma``."""
    attention_resolutions: tuple[int, ...] = ()
    """Resolutions in pixels (e.g. 32, 16, 8) whose levels get attention blocks; empty = convolutions only."""
    num_heads: int = 1
    num_head_channels: int = -1
    """If > 0, heads per attention block = channels // num_head_channels (Table 3 "Heads channels"), overriding
    ``num_heads``."""
    dropout: float = 0.0
    learn_sigma: bool = False
    use_scale_shift_norm: bool = True
    resblock_updown: bool = True
    """Resample with residual blocks (ADM/GLIDE) instead of plain convolutions."""
    text_encoder: TextTransformerConfig | None = None
    clip_embed_dim: int = 0
    """CLIP embedding width D (unCLIP decoder); 0 = no CLIP conditioning."""
    num_clip_tokens: int = 4
    """Extra context tokens projected from the CLIP embedding (unCLIP §2.1: 4)."""
    super_res: bool = False
    """Upsampler: the bilinearly upsampled low-res image is concatenated as ``in_channels`` extra input channels."""

    def __post_init__(self) -> None:
        _require_positive(self, "image_size", "model_channels", "num_res_blocks", "in_channels", "out_channels")
        if not self.channel_mult or min(self.channel_mult) <= 0:
            raise ValueError(f"channel_mult must be non-empty positive integers, got {self.channel_mult}")
        if self.image_size % 2 ** (len(self.channel_mult) - 1):
            raise ValueError(
                f"image_size {self.image_size} is not divisible by 2^{len(self.channel_mult) - 1} "
                f"(one halving per level of channel_mult={self.channel_mult})"
            )
        reachable = {self.image_size // 2**level for level in range(len(self.channel_mult))}
        for res in self.attention_resolutions:
            if res not in reachable:
                raise ValueError(
                    f"attention resolution {res} is not a level of this UNet; levels are {sorted(reachable)}"
                )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got {self.dropout}")
        if self.clip_embed_dim < 0 or (self.clip_embed_dim and self.num_clip_tokens < 0):
            raise ValueError("clip_embed_dim and num_clip_tokens must be non-negative")
        if self.super_res and (self.text_encoder is not None or self.clip_embed_dim):
            raise ValueError("an upsampler (super_res) is unconditional: drop text_encoder and clip_embed_dim")

    @property
    def context_dim(self) -> int:
        """Width of the context tokens seen by attention (text-encoder width; 4·model_channels without one)."""
        return self.text_encoder.width if self.text_encoder is not None else 4 * self.model_channels


@dataclass(frozen=True)
class DiffusionPriorConfig:
    """unCLIP diffusion prior (§2.2): causal Transformer over [text tokens, z_t, t, z_i^(t), query] → z_i."""

    kind: ClassVar[str] = "diffusion_prior"

    embed_dim: int
    """CLIP embedding width D of z_t and z_i."""
    vocab_size: int
    text_context: int
    """Maximum caption tokens (Table 3 "Text encoder context": 256)."""
    width: int
    layers: int
    heads: int

    def __post_init__(self) -> None:
        _require_positive(self, "embed_dim", "vocab_size", "text_context", "width", "layers", "heads")
        if self.width % self.heads:
            raise ValueError(f"prior width {self.width} is not divisible by heads={self.heads}")


@dataclass(frozen=True)
class ARPriorConfig:
    """unCLIP autoregressive prior (§2.2): causal Transformer over [text tokens, z_t, quantised z_i·z_t,
    quantised PCA components of z_i] → per-component bucket logits."""

    kind: ClassVar[str] = "ar_prior"

    embed_dim: int
    """CLIP embedding width D of z_t."""
    vocab_size: int
    text_context: int
    num_components: int
    """PCA components kept (paper: 319 of 1024)."""
    num_buckets: int
    """Quantisation buckets per component (paper: 1024)."""
    num_dot_buckets: int
    """Quantisation buckets of z_i·z_t."""
    width: int
    layers: int
    heads: int

    def __post_init__(self) -> None:
        _require_positive(
            self,
            "embed_dim",
            "vocab_size",
            "text_context",
            "num_components",
            "num_buckets",
            "num_dot_buckets",
            "width",
            "layers",
            "heads",
        )
        if self.width % self.heads:
            raise ValueError(f"AR prior width {self.width} is not divisible by heads={self.heads}")


NetworkConfig = UNetConfig | DiffusionPriorConfig | ARPriorConfig | TextTransformerConfig
CONFIG_CLASSES: dict[str, type] = {
    cls.kind: cls for cls in (UNetConfig, DiffusionPriorConfig, ARPriorConfig, TextTransformerConfig)
}


def _require_positive(cfg: object, *names: str) -> None:
    for name in names:
        value = getattr(cfg, name)
        if value <= 0:
            raise ValueError(f"{type(cfg).__name__}.{name} must be positive, got {value}")


def _did_you_mean(word: str, options: typing.Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(options), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    """Check/convert one JSON value against a resolved field annotation."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _coerce(value, inner, where)
    if dataclasses.is_dataclass(annotation):
        if not isinstance(value, Mapping):
            raise ValueError(f"{where} must be an object, got {value!r}")
        return _from_fields(annotation, value, where)  # type: ignore[arg-type]
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{where} must be a list, got {value!r}")
        return tuple(_coerce(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
    if annotation is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{where} must be true or false, got {value!r}")
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{where} must be an integer, got {value!r}")
        return value
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{where} must be a number, got {value!r}")
        return float(value)
    raise TypeError(f"unsupported config annotation {annotation!r} at {where}")  # internal: new field type


def _from_fields(cls: type, data: Mapping[str, Any], where: str) -> Any:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in data:
        if key not in fields:
            raise ValueError(f"unknown key {where}.{key}{_did_you_mean(key, fields)}")
    kwargs = {}
    for name, field in fields.items():
        if name in data:
            kwargs[name] = _coerce(data[name], hints[name], f"{where}.{name}")
        elif field.default is dataclasses.MISSING:
            raise ValueError(f"missing key {where}.{name}: add it to the config")
    return cls(**kwargs)


def config_from_dict(data: Mapping[str, Any], source: str = "config") -> NetworkConfig:
    """Validate a JSON object into its typed config.

    Args:
        data: mapping with ``"kind"``, an optional ``"description"`` and the fields of the config class.
        source: name used in error messages (a file name).

    Raises:
        ValueError: unknown kind or key (with a did-you-mean), missing field, wrong type, invalid value.
    """
    kind = data.get("kind")
    if kind not in CONFIG_CLASSES:
        raise ValueError(
            f"{source}: unknown network kind {kind!r}{_did_you_mean(str(kind), CONFIG_CLASSES)} "
            f"(known: {', '.join(sorted(CONFIG_CLASSES))})"
        )
    fields = {k: v for k, v in data.items() if k not in _META_KEYS}
    return _from_fields(CONFIG_CLASSES[kind], fields, source)  # type: ignore[no-any-return]


def config_to_dict(config: NetworkConfig, description: str | None = None) -> dict[str, Any]:
    """JSON-ready dict of ``config`` (``kind`` first, tuples as lists); inverse of :func:`config_from_dict`."""
    out: dict[str, Any] = {"kind": config.kind}
    if description:
        out["description"] = description
    for name, value in dataclasses.asdict(config).items():
        out[name] = list(value) if isinstance(value, tuple) else value
    return out


def config_to_json(config: NetworkConfig, description: str | None = None) -> str:
    """Indented JSON text of ``config``, with number lists on one line."""
    text = json.dumps(config_to_dict(config, description), indent=2)
    return re.sub(r"\[[\d\s,.\-]*\]", lambda m: json.dumps(json.loads(m.group(0))), text) + "\n"


def save_config(config: NetworkConfig, path: str | Path, description: str | None = None) -> None:
    """Write ``config`` as JSON to ``path`` (see :func:`config_to_json`)."""
    Path(path).write_text(config_to_json(config, description))


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: invalid JSON ({err}); fix the file") from err
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object at the top level")  # noqa: TRY004 (user file: ValueError)
    return data


def list_configs(config_dir: str | Path = CONFIG_DIR) -> list[str]:
    """Sorted names (file stems) of the network configs in ``config_dir``."""
    names = []
    for path in sorted(Path(config_dir).glob("*.json")):
        if _read_json(path).get("kind") in CONFIG_CLASSES:
            names.append(path.stem)
    return names


def load_config(name_or_path: str | Path, config_dir: str | Path = CONFIG_DIR) -> NetworkConfig:
    """Load a named config (``"unclip_decoder_toy"``) from ``config_dir``, or any ``.json`` file path.

    Raises:
        ValueError: unknown name (with a did-you-mean and the known names) or an invalid file.
    """
    path = Path(name_or_path)
    if path.suffix != ".json":
        path = Path(config_dir) / f"{name_or_path}.json"
        if not path.is_file():
            known = list_configs(config_dir)
            raise ValueError(
                f"unknown network config {str(name_or_path)!r}{_did_you_mean(str(name_or_path), known)} "
                f"(known: {', '.join(known)})"
            )
    elif not path.is_file():
        raise ValueError(f"config file {path} does not exist")
    return config_from_dict(_read_json(path), source=path.name)
