"""CLIP through open_clip's own classes: the toy CLIP from a JSON config, any architecture from a local file.

The toy CLIP (`models/configs/clip_toy.json`) is an ``open_clip.CLIP`` in open_clip's model-config format
(``embed_dim``, ``vision_cfg``, ``text_cfg``): a ViT at 32x32 and a causal text Transformer, embedding width 64,
trained contrastively on the toy world (``harness train clip``). Real CLIPs are the same code with a named
architecture (``"ViT-L-14"``) and a local checkpoint file; nothing is fetched from a hub.

Tokenizer: open_clip's ``SimpleTokenizer``, whose BPE vocabulary ships inside the open_clip package, so it works
offline and a real CLIP and the toy one tokenise identically (the toy config keeps ``vocab_size`` 49408; its unused
token rows cost a few MB, the price of one tokenizer for all). It lives here rather than in `models.pipelines`
because it is fixed by the checkpoint's ``text_cfg.context_length`` and vocabulary.

Image preprocessing for ``uint8 (N, H, W, 3)`` tensors, identical to `eval_protocols.features.clip`'s (open_clip's
default PIL transform in tensor form): resize the shorter side to the input size (bicubic, antialiased, rounded and
clipped to [0, 255] like PIL), center crop, ``x / 255``, then ``(x - mean) / std`` with OpenAI's mean/std. At the
toy CLIP's native 32x32 no resampling happens.

Both towers' outputs are L2-normalised by the callers that compare them (``F.normalize``), as in open_clip.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import open_clip
import torch
import torch.nn.functional as F

from models.checkpoints import SAFETENSORS_SUFFIX, CheckpointError, load_checkpoint

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"
TOY_CLIP_CONFIG = CONFIG_DIR / "clip_toy.json"

ClipArch = str | Mapping[str, Any]


def load_clip_config(name_or_path: str | os.PathLike[str] = TOY_CLIP_CONFIG) -> dict[str, Any]:
    """An open_clip model config dict from ``models/configs/<name>.json`` or any JSON file path.

    Raises:
        ValueError: the file does not exist or lacks ``embed_dim``/``vision_cfg``/``text_cfg``.
    """
    path = Path(name_or_path)
    if path.suffix != ".json":
        path = CONFIG_DIR / f"{name_or_path}.json"
    if not path.is_file():
        raise ValueError(f"CLIP config not found: {path}; pass a models/configs name (e.g. clip_toy) or a JSON path")
    cfg: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    missing = [k for k in ("embed_dim", "vision_cfg", "text_cfg") if k not in cfg]
    if missing:
        raise ValueError(f"CLIP config {path} lacks {', '.join(missing)}; use open_clip's model-config format")
    return cfg


def build_clip(cfg: Mapping[str, Any], seed: int | None = None) -> open_clip.CLIP:
    """A randomly initialised ``open_clip.CLIP`` (or ``CustomTextCLIP`` if ``cfg["custom_text"]``) from a config dict.

    Args:
        cfg: open_clip model config (``embed_dim``, ``vision_cfg``, ``text_cfg``, optional ``quick_gelu``...).
        seed: seed of the initialisation (the global torch RNG is left untouched); None uses the global RNG.

    Returns:
        The model, in training mode, on the CPU, in float32.
    """
    cfg = dict(cfg)
    model_cls = open_clip.CustomTextCLIP if cfg.pop("custom_text", False) else open_clip.CLIP
    if seed is None:
        return model_cls(**cfg)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return model_cls(**cfg)


def clip_tokenizer(context_length: int = 32) -> open_clip.SimpleTokenizer:
    """open_clip's BPE tokenizer (vocabulary bundled in the package; offline): texts -> ``int64 (N, context_length)``.

    Longer texts are truncated to ``context_length`` tokens, the last one kept as end-of-text.
    """
    return open_clip.SimpleTokenizer(context_length=context_length)


def tokenizer_for(model: torch.nn.Module) -> open_clip.SimpleTokenizer:
    """The tokenizer matching a built CLIP's context length."""
    return clip_tokenizer(int(getattr(model, "context_length", 77)))


def load_clip(arch: ClipArch, path: str | os.PathLike[str]) -> torch.nn.Module:
    """Any open_clip architecture with weights from a local file, in eval mode.

    Args:
        arch: a named open_clip architecture (``"ViT-B-32"``, see ``open_clip.list_models()``), an open_clip config
            dict, or a path/name of a JSON config (``"clip_toy"``).
        path: the weights: a checkpoint of `models.checkpoints` (safetensors + JSON + sha256, verified), or any
            file open_clip reads (``open_clip_pytorch_model.bin``, ``.pt``, ``.safetensors``; loaded with
            ``weights_only=True``).

    Returns:
        The model with the weights loaded (strictly), ``eval()`` and ``requires_grad_(False)``.

    Raises:
        CheckpointError: the weights file is missing, corrupt or fails its sha256.
        ValueError: an unknown architecture name.
    """
    weights = Path(path)
    if weights.suffix not in (SAFETENSORS_SUFFIX, ".pt", ".pth", ".bin", ".ckpt"):
        weights = weights.with_name(weights.name + SAFETENSORS_SUFFIX)
    if not weights.is_file():
        raise CheckpointError(
            f"CLIP weights not found: {weights}; train the toy CLIP (harness train clip) or download the "
            "architecture's open_clip checkpoint yourself and pass its path (nothing is downloaded)"
        )
    if isinstance(arch, str) and arch in open_clip.list_models():
        model = open_clip.create_model(arch, pretrained=None, pretrained_image=False, pretrained_text=False)
    else:
        model = build_clip(dict(arch) if isinstance(arch, Mapping) else load_clip_config(arch), seed=0)
    try:
        if weights.with_suffix(".json").is_file() or weights.with_suffix(".sha256").is_file():
            state, _, _ = load_checkpoint(weights)
            model.load_state_dict(state, strict=True)
        else:
            open_clip.load_checkpoint(model, str(weights))
    except RuntimeError as exc:
        raise CheckpointError(
            f"CLIP weights {weights} do not fit the architecture given ({_first_line(exc)}); pass the config they "
            "were trained with (a checkpoint's JSON names it under model_config)"
        ) from None
    loaded: torch.nn.Module = model.eval().requires_grad_(False)
    return loaded


def _first_line(exc: BaseException) -> str:
    """The first informative line of a ``load_state_dict`` error, at most 160 characters."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    detail = lines[1] if len(lines) > 1 else (lines[0] if lines else type(exc).__name__)
    return detail if len(detail) <= 160 else detail[:157] + "..."


def clip_image_size(model: torch.nn.Module) -> tuple[int, int]:
    """``(h, w)`` input size of a CLIP's image tower."""
    visual: Any = model.visual  # open_clip is untyped
    size = visual.image_size
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


def preprocess_uint8(
    images: torch.Tensor,
    image_size: tuple[int, int],
    mean: tuple[float, float, float] = open_clip.OPENAI_DATASET_MEAN,
    std: tuple[float, float, float] = open_clip.OPENAI_DATASET_STD,
) -> torch.Tensor:
    """``uint8 (N, H, W, 3)`` -> normalised ``float32 (N, 3, h, w)`` (module docstring; matches the eval CLIP).

    Args:
        images: RGB images in [0, 255], any size.
        image_size: the model's ``(h, w)`` input size.
        mean: per-channel mean of ``x / 255``.
        std: per-channel std of ``x / 255``.
    """
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[3] != 3:
        raise ValueError(f"expected uint8 (N, H, W, 3) images, got {images.dtype} {tuple(images.shape)}")
    x = images.permute(0, 3, 1, 2).float()
    target_h, target_w = image_size
    scale = max(target_h / x.shape[2], target_w / x.shape[3])
    new_h, new_w = max(target_h, round(x.shape[2] * scale)), max(target_w, round(x.shape[3] * scale))
    if (new_h, new_w) != tuple(x.shape[2:]):
        x = F.interpolate(x, size=(new_h, new_w), mode="bicubic", align_corners=False, antialias=True)
        x = x.round().clamp(0, 255)
    top, left = (new_h - target_h) // 2, (new_w - target_w) // 2
    x = x[:, :, top : top + target_h, left : left + target_w] / 255.0
    mean_t = torch.tensor(mean, device=x.device).view(1, 3, 1, 1)
    std_t = torch.tensor(std, device=x.device).view(1, 3, 1, 1)
    return (x - mean_t) / std_t


@torch.no_grad()
def encode_images(model: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Unit-norm image embeddings ``float32 (N, embed_dim)`` of ``uint8 (N, H, W, 3)`` images."""
    device = next(model.parameters()).device
    pixels = preprocess_uint8(images.to(device), clip_image_size(model))
    clip: Any = model  # an open_clip CLIP (untyped)
    return F.normalize(clip.encode_image(pixels).float(), dim=-1)


@torch.no_grad()
def encode_texts(model: torch.nn.Module, texts: list[str]) -> torch.Tensor:
    """Unit-norm text embeddings ``float32 (N, embed_dim)`` (z_t of the paper) of captions."""
    device = next(model.parameters()).device
    tokens = tokenizer_for(model)(texts).to(device)
    clip: Any = model  # an open_clip CLIP (untyped)
    return F.normalize(clip.encode_text(tokens).float(), dim=-1)
