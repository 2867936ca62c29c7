"""open_clip image and text features for any architecture, from a local checkpoint only.

The model is either a named open_clip architecture (``"ViT-B-32"``, ``"local-dir:/path"``) or an architecture config
dict in open_clip's JSON format (``{"embed_dim": ..., "vision_cfg": {...}, "text_cfg": {...}}``: the toy CLIP's
``models/configs/*.json``). Weights come from a local file (``open_clip.create_model(arch, pretrained=<file>)`` or
``open_clip.load_checkpoint``); a pretrained *tag* such as ``"openai"`` is refused, because it would download. The
tokenizer is open_clip's ``SimpleTokenizer`` with its BPE vocabulary bundled in the package (offline).

Image preprocessing, on uint8 tensors (a tensor version of open_clip's default PIL transform): resize the shorter side
to the model's input size (bicubic, antialiased, rounded and clipped to [0, 255] as PIL would), center crop,
``/ 255``, normalise by the model's mean/std (OpenAI's by default). Both towers' outputs are L2-normalised, so
``image_features @ text_features.T`` is the cosine similarity.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import open_clip
import torch
import torch.nn.functional as F

from eval_protocols.features.base import MissingWeightsError, missing_weights_message, sha256_file

CLIP_WEIGHTS_ENV = "HARNESS_CLIP_WEIGHTS"


class OpenClipFeatures:
    """CLIP image features (``uint8 (N, H, W, 3)`` -> ``float32 (N, D)``, unit norm) and text features (`encode_text`).

    Attributes:
        extractor_id: ``open_clip:<arch>:image:<sha256[:16] | random-seed<k>>`` (the image tower's id).
        text_extractor_id: the same with ``:text:``.
        dim: the joint embedding dimension ``D``.
        weights_sha256: sha256 of the checkpoint; None with random weights.
        model: the open_clip model, in eval mode.
    """

    def __init__(
        self,
        arch: str | Mapping[str, Any],
        checkpoint: str | os.PathLike[str] | None = None,
        *,
        device: str | torch.device = "cpu",
        random_weights: bool = False,
        seed: int = 0,
    ) -> None:
        """Build the model from a local checkpoint (or seeded random weights).

        Args:
            arch: an open_clip architecture name, ``"local-dir:<path>"``, or a config dict (open_clip JSON format).
            checkpoint: the weights file; None reads ``$HARNESS_CLIP_WEIGHTS``. Ignored for ``local-dir:``.
            device: where the model runs.
            random_weights: seeded random initialisation, for tests and speed benchmarks only (the id says so).
            seed: seed of the random initialisation.

        Raises:
            MissingWeightsError: the checkpoint file does not exist or none was given.
            ValueError: an unknown architecture name.
        """
        self.device = torch.device(device)
        arch_name = _arch_name(arch)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            if random_weights:
                self.weights_sha256: str | None = None
                tag = f"random-seed{seed}"
                self.model: Any = _create(arch, None)
            else:
                path = _resolve_checkpoint(arch, checkpoint)
                self.weights_sha256 = sha256_file(path) if path.is_file() else _dir_digest(path)
                tag = self.weights_sha256[:16]
                self.model = _create(arch, path)
        self.model.eval().requires_grad_(False).to(self.device)
        self.extractor_id = f"open_clip:{arch_name}:image:{tag}"
        self.text_extractor_id = f"open_clip:{arch_name}:text:{tag}"
        self.tokenizer = _tokenizer(arch)
        with torch.inference_mode():
            probe = self.model.encode_text(self.tokenizer(["a"]).to(self.device))
        self.dim = int(probe.shape[-1])
        size = self.model.visual.image_size
        self.image_size = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
        cfg = getattr(self.model.visual, "preprocess_cfg", None) or {}
        self.mean = torch.tensor(cfg.get("mean", open_clip.OPENAI_DATASET_MEAN), device=self.device).view(1, 3, 1, 1)
        self.std = torch.tensor(cfg.get("std", open_clip.OPENAI_DATASET_STD), device=self.device).view(1, 3, 1, 1)

    @torch.inference_mode()
    def __call__(self, images: np.ndarray) -> np.ndarray:
        """Unit-norm image embeddings of one same-size batch.

        Args:
            images: ``uint8 (N, H, W, 3)`` in [0, 255].

        Returns:
            ``float32 (N, D)`` with ``||row|| = 1``.
        """
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[3] != 3:
            raise ValueError(f"expected uint8 (N, H, W, 3) images, got {images.dtype} {images.shape}; see to_uint8_rgb")
        pixels = self.preprocess(torch.from_numpy(np.ascontiguousarray(images)).to(self.device))
        return F.normalize(self.model.encode_image(pixels).float(), dim=-1).cpu().numpy()

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """``uint8 (N, H, W, 3)`` -> normalised ``float32 (N, 3, h, w)`` at the model's input size (see module)."""
        x = images.permute(0, 3, 1, 2).float()
        target_h, target_w = self.image_size
        scale = max(target_h / x.shape[2], target_w / x.shape[3])
        new_h, new_w = max(target_h, round(x.shape[2] * scale)), max(target_w, round(x.shape[3] * scale))
        if (new_h, new_w) != tuple(x.shape[2:]):
            x = F.interpolate(x, size=(new_h, new_w), mode="bicubic", align_corners=False, antialias=True)
            x = x.round().clamp(0, 255)
        top, left = (new_h - target_h) // 2, (new_w - target_w) // 2
        x = x[:, :, top : top + target_h, left : left + target_w] / 255.0
        return (x - self.mean) / self.std

    @torch.inference_mode()
    def encode_text(self, texts: Sequence[str], batch_size: int = 256) -> np.ndarray:
        """Unit-norm text embeddings (captions longer than the context are truncated by the tokenizer).

        Args:
            texts: the captions.
            batch_size: captions per forward pass.

        Returns:
            ``float32 (len(texts), D)`` with ``||row|| = 1``.
        """
        out = [np.zeros((0, self.dim), dtype=np.float32)]
        for start in range(0, len(texts), batch_size):
            tokens = self.tokenizer(list(texts[start : start + batch_size])).to(self.device)
            out.append(F.normalize(self.model.encode_text(tokens).float(), dim=-1).cpu().numpy())
        return np.concatenate(out, axis=0)


def _arch_name(arch: str | Mapping[str, Any]) -> str:
    """A stable name for the id: the architecture string, or ``custom-<sha256 of the canonical JSON>[:12]``."""
    if isinstance(arch, str):
        return arch
    canonical = json.dumps(arch, sort_keys=True, separators=(",", ":"))
    return f"custom-{hashlib.sha256(canonical.encode('utf-8')).hexdigest()[:12]}"


def _resolve_checkpoint(arch: str | Mapping[str, Any], checkpoint: str | os.PathLike[str] | None) -> Path:
    """The local checkpoint file (or ``local-dir:`` folder); never a pretrained tag that would download."""
    if isinstance(arch, str) and arch.startswith("local-dir:"):
        folder = Path(arch.removeprefix("local-dir:"))
        if folder.is_dir():
            return folder
        checkpoint_text: str | None = str(folder)
    else:
        checkpoint_text = str(checkpoint) if checkpoint else os.environ.get(CLIP_WEIGHTS_ENV)
        if checkpoint_text and Path(checkpoint_text).expanduser().is_file():
            return Path(checkpoint_text).expanduser()
    raise MissingWeightsError(
        missing_weights_message(
            f"open_clip weights for {_arch_name(arch)}",
            checkpoint_text,
            "the checkpoint's release (e.g. open_clip_pytorch_model.bin of the model's hub page, or the toy CLIP "
            "trained by this project); a pretrained tag like 'openai' is not a file",
            f"a checkpoint path argument or ${CLIP_WEIGHTS_ENV}=PATH",
        )
    )


def _create(arch: str | Mapping[str, Any], path: Path | None) -> Any:
    """The open_clip model for a name or a config dict, with weights from ``path`` (None: random init)."""
    if isinstance(arch, str):
        if arch.startswith("local-dir:"):
            return open_clip.create_model(arch, load_weights=path is not None, pretrained_text=False)
        if arch not in open_clip.list_models():
            raise ValueError(
                f"unknown open_clip architecture {arch!r}; see open_clip.list_models() or pass a config dict"
            )
        return open_clip.create_model(
            arch, pretrained=str(path) if path else None, pretrained_image=False, pretrained_text=False
        )
    cfg = dict(arch)
    model_cls = open_clip.CustomTextCLIP if cfg.pop("custom_text", False) else open_clip.CLIP
    model = model_cls(**cfg)
    if path is not None:
        open_clip.load_checkpoint(model, str(path))
    return model


def _tokenizer(arch: str | Mapping[str, Any]) -> Any:
    """The offline tokenizer: open_clip's for named architectures, `SimpleTokenizer` for config dicts."""
    if isinstance(arch, str):
        return open_clip.get_tokenizer(arch)
    text_cfg = arch.get("text_cfg", {})
    context_length = text_cfg.get("context_length", 77) if isinstance(text_cfg, Mapping) else 77
    return open_clip.SimpleTokenizer(context_length=context_length)


def _dir_digest(folder: Path) -> str:
    """sha256 over the sorted (name, sha256) pairs of a ``local-dir:`` folder's files."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(f"{path.relative_to(folder)}:{sha256_file(path)}\n".encode())
    return digest.hexdigest()
