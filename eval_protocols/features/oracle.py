"""The toy-world attribute oracle: a small CNN that reads shape, colour and size of a single-object image.

An objective caption-faithfulness score beside the CLIP-based ones (DESIGN.md, "The toy world"): for a sample
generated from "a small red star", the oracle says which shape, colour and size it actually shows, and the
metrics count agreement with the caption. It is trained (``harness train oracle``) on toy-world renders under the
degradations generated samples show (noise, blur, colour shifts, quantisation, slight warps), so a noisy but
faithful sample still reads right.

Network (`AttributeCNN`): input ``(N, 3, 32, 32)`` in [0, 1] minus 0.5; a 4x4 stride-2 stem and two stride-2
stages of 3x3 convolutions with BatchNorm and SiLU (32 -> 16 -> 8 -> 4 pixels), global average and max pooling,
then one linear head per attribute. A few hundred thousand parameters: milliseconds per image on a CPU.

Input handling (`ToyAttributeOracle.preprocess`): any square size is resized to the network's input size,
by block averaging when the size is a multiple of it (64 -> 32, as the renderer's own downsampling), otherwise by
antialiased bilinear interpolation.

This module imports neither `harness` nor `models` (dependency rule 3): the class names of each head are stored in
the checkpoint's JSON config, and the checkpoint format (``<stem>.safetensors`` + ``.json`` + ``.sha256``) is read
here directly, the sha256 verified.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from eval_protocols.features.base import MissingWeightsError, missing_weights_message, sha256_file

ATTRIBUTES: tuple[str, ...] = ("shape", "colour", "size")


class AttributeCNN(nn.Module):
    """``float (N, 3, S, S)`` in [0, 1] -> ``{attribute: logits (N, n_classes)}`` (module docstring)."""

    def __init__(self, n_classes: Mapping[str, int], width: int = 32, input_size: int = 32) -> None:
        """Build the network.

        Args:
            n_classes: classes per attribute head, e.g. ``{"shape": 7, "colour": 8, "size": 3}``.
            width: channels of the first stage (doubled at each stride-2 stage).
            input_size: side of the square input (a multiple of 8).
        """
        super().__init__()
        if input_size % 8:
            raise ValueError(f"input_size must be a multiple of 8, got {input_size}")
        self.input_size = input_size
        w = width
        self.features = nn.Sequential(
            _conv(3, w, kernel=4, stride=2, padding=1),
            _conv(w, w),
            _conv(w, 2 * w, stride=2),
            _conv(2 * w, 2 * w),
            _conv(2 * w, 4 * w, stride=2),
            _conv(4 * w, 4 * w),
        )
        self.heads = nn.ModuleDict({name: nn.Linear(8 * w, n) for name, n in n_classes.items()})

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Logits per attribute head for images in [0, 1]."""
        h = self.features(x - 0.5)
        pooled = torch.cat([h.mean(dim=(2, 3)), h.amax(dim=(2, 3))], dim=1)
        return {name: head(pooled) for name, head in self.heads.items()}


def _conv(c_in: int, c_out: int, kernel: int = 3, stride: int = 1, padding: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, kernel, stride, padding, bias=False), nn.BatchNorm2d(c_out), nn.SiLU())


def resize_to_input(x: torch.Tensor, size: int) -> torch.Tensor:
    """``float (N, 3, H, W)`` -> ``(N, 3, size, size)``: block mean for integer factors, else antialiased bilinear."""
    h, w = x.shape[2:]
    if (h, w) == (size, size):
        return x
    if h == w and h % size == 0:
        return F.avg_pool2d(x, h // size)
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)


@dataclass(frozen=True)
class OraclePrediction:
    """What the oracle reads from ``N`` images.

    Attributes:
        labels: ``{attribute: str array (N,)}``: the most probable class name per image.
        indices: ``{attribute: int64 (N,)}``: its index in ``classes[attribute]``.
        probabilities: ``{attribute: float32 (N, n_classes)}``: softmax probabilities (rows sum to 1).
        classes: ``{attribute: class names}``.
    """

    labels: dict[str, np.ndarray]
    indices: dict[str, np.ndarray]
    probabilities: dict[str, np.ndarray]
    classes: dict[str, tuple[str, ...]]

    def __getitem__(self, attribute: str) -> np.ndarray:
        """``prediction["shape"]``: the predicted class names of one attribute."""
        return self.labels[attribute]


class ToyAttributeOracle:
    """Reads shape, colour and size of single-object toy-world images (module docstring).

    Attributes:
        classes: class names per attribute head.
        network: the CNN, in eval mode.
        weights_sha256: sha256 of the weights file (None for an in-memory network).
        extractor_id: ``toy-oracle:<sha256[:16]>``.
    """

    def __init__(
        self, network: AttributeCNN, classes: Mapping[str, Sequence[str]], weights_sha256: str | None = None
    ) -> None:
        self.network = network.eval()
        self.classes = {name: tuple(names) for name, names in classes.items()}
        self.weights_sha256 = weights_sha256
        self.extractor_id = f"toy-oracle:{weights_sha256[:16] if weights_sha256 else 'unsaved'}"

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike[str], device: str | torch.device = "cpu") -> ToyAttributeOracle:
        """Load ``<stem>.safetensors`` (+ ``.json`` config with ``classes``/``width``/``input_size``, ``.sha256``).

        Raises:
            MissingWeightsError: the weights or config file does not exist.
            ValueError: the weights fail their sha256 check or the config lacks ``classes``.
        """
        weights, config_path, sha_path = _paths(Path(path))
        for needed in (weights, config_path):
            if not needed.is_file():
                raise MissingWeightsError(
                    missing_weights_message(
                        "toy attribute oracle", needed, "checkpoints/toy/ or `harness train oracle`", "--oracle PATH"
                    )
                )
        digest = sha256_file(weights)
        if sha_path.is_file() and sha_path.read_text(encoding="utf-8").split()[:1] != [digest]:
            raise ValueError(f"oracle weights {weights} fail their sha256 check ({sha_path.name}); re-export them")
        config = json.loads(config_path.read_text(encoding="utf-8"))
        if "classes" not in config:
            raise ValueError(f"oracle config {config_path} lacks 'classes'; was it written by `harness train oracle`?")
        from safetensors.torch import load_file

        network = AttributeCNN(
            {k: len(v) for k, v in config["classes"].items()},
            width=int(config.get("width", 32)),
            input_size=int(config.get("input_size", 32)),
        )
        network.load_state_dict({k: v.float() for k, v in load_file(str(weights)).items()})
        return cls(network.to(device), config["classes"], digest)

    def preprocess(self, images: np.ndarray | torch.Tensor) -> torch.Tensor:
        """``uint8 (N, H, W, 3)`` -> ``float32 (N, 3, S, S)`` in [0, 1] at the network's input size."""
        tensor = torch.as_tensor(np.asarray(images)) if not isinstance(images, torch.Tensor) else images
        if tensor.dtype != torch.uint8 or tensor.ndim != 4 or tensor.shape[3] != 3:
            raise ValueError(f"expected uint8 (N, H, W, 3) images, got {tensor.dtype} {tuple(tensor.shape)}")
        device = next(self.network.parameters()).device
        x = tensor.to(device).permute(0, 3, 1, 2).float() / 255.0
        return resize_to_input(x, self.network.input_size)

    @torch.inference_mode()
    def predict(self, images: np.ndarray | torch.Tensor, batch_size: int = 256) -> OraclePrediction:
        """Read every attribute of ``uint8 (N, H, W, 3)`` single-object images (one size per call)."""
        probs: dict[str, list[np.ndarray]] = {name: [] for name in self.classes}
        for start in range(0, len(images), batch_size):
            logits = self.network(self.preprocess(images[start : start + batch_size]))
            for name in self.classes:
                probs[name].append(F.softmax(logits[name].float(), dim=1).cpu().numpy())
        probabilities = {
            name: np.concatenate(parts) if parts else np.zeros((0, len(self.classes[name])), np.float32)
            for name, parts in probs.items()
        }
        indices = {name: p.argmax(axis=1).astype(np.int64) for name, p in probabilities.items()}
        labels = {name: np.asarray(self.classes[name], dtype=object)[idx].astype(str) for name, idx in indices.items()}
        return OraclePrediction(labels, indices, probabilities, dict(self.classes))

    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """``predict(images).labels``."""
        return self.predict(images).labels


def accuracy(prediction: OraclePrediction, truth: Mapping[str, Sequence[str]]) -> dict[str, float]:
    """Per-attribute accuracy and ``"all"`` (every attribute right) against true class names."""
    hits = {name: prediction.labels[name] == np.asarray(truth[name]) for name in prediction.labels if name in truth}
    result = {name: float(h.mean()) if len(h) else float("nan") for name, h in hits.items()}
    result["all"] = float(np.logical_and.reduce(list(hits.values())).mean()) if hits else float("nan")
    return result


def oracle_config(classes: Mapping[str, Sequence[str]], width: int, input_size: int) -> dict[str, Any]:
    """The JSON config a checkpoint stores beside its weights."""
    return {
        "kind": "toy_attribute_oracle",
        "classes": {k: list(v) for k, v in classes.items()},
        "width": width,
        "input_size": input_size,
    }


def _paths(path: Path) -> tuple[Path, Path, Path]:
    stem = path.with_suffix("") if path.suffix in (".safetensors", ".json", ".sha256") else path
    return (
        stem.with_name(stem.name + ".safetensors"),
        stem.with_name(stem.name + ".json"),
        stem.with_name(stem.name + ".sha256"),
    )
