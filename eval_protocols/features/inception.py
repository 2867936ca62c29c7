"""InceptionV3 pool3 features (2048-d) for FID/KID, from a local weights file only.

The network is torch-fidelity's TF-ported ``FeatureExtractorInceptionV3`` as torchmetrics wraps it
(`torchmetrics.image.fid.NoTrainInceptionV3`), so features equal torchmetrics' FID features for the same weights and
resize mode. Preprocessing: uint8 -> float, resize to 299 x 299, ``(x - 128) / 128``.

Resize modes (the largest single cause of disagreeing published FIDs, reference/metrics.md §0):

- ``"tf1-bilinear"`` (default): torch-fidelity's ``interpolate_bilinear_2d_like_tensorflow1x``, the TF1/TTUR resize that
  published FIDs (and torchmetrics <= 1.7, torch-fidelity, ``antialias=False`` in torchmetrics >= 1.8) use;
- ``"antialias-bilinear"``: ``F.interpolate(bilinear, align_corners=False, antialias=True)``, torchmetrics >= 1.8's
  default. Not comparable with published numbers for non-299 inputs.

Weights: torch-fidelity's ``weights-inception-2015-12-05-6726825d.pth`` or pytorch-fid's
``pt_inception-2015-12-05-6726825d.pth`` (both ports of TF ``inception-2015-12-05``; the suffix is the start of the
file's sha256, torch hub's convention). Looked up in this order: the ``weights_path`` argument,
``$HARNESS_INCEPTION_WEIGHTS``, ``$TORCH_HOME/hub/checkpoints/<either name>``. Nothing is downloaded; a missing
file raises `MissingWeightsError`.

On Ampere and newer GPUs cuDNN convolutions use TF32 unless ``torch.backends.cudnn.allow_tf32 = False``, which moves
FID in the 4th-5th significant digit; set it (and keep the batch size fixed) when features must reproduce exactly.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torchmetrics.image.fid import NoTrainInceptionV3

from eval_protocols.features.base import MissingWeightsError, missing_weights_message, sha256_file

ResizeMode = Literal["tf1-bilinear", "antialias-bilinear"]
RESIZE_MODES: tuple[str, ...] = ("tf1-bilinear", "antialias-bilinear")

INCEPTION_WEIGHTS_ENV = "HARNESS_INCEPTION_WEIGHTS"
INCEPTION_FILE_NAMES: tuple[str, ...] = (
    "weights-inception-2015-12-05-6726825d.pth",
    "pt_inception-2015-12-05-6726825d.pth",
)
INCEPTION_URLS: tuple[str, ...] = (
    "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth",
    "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth",
)
INCEPTION_SHA256_PREFIX = "6726825d"


class _InceptionV3Pool3(NoTrainInceptionV3):
    """torchmetrics' Inception that skips the parent's file load (weights are loaded by `InceptionFeatures`)."""

    def load_state_dict(self, state_dict: Any, strict: bool = True, assign: bool = False) -> Any:
        if not state_dict:  # the empty dict handed to the parent constructor: keep the seeded default init
            return None
        return super().load_state_dict(state_dict, strict=strict, assign=assign)


def resolve_inception_weights(weights_path: str | os.PathLike[str] | None = None) -> Path:
    """Find the local Inception weights file (argument, then env var, then the torch hub cache).

    Raises:
        MissingWeightsError: when the named file does not exist or none of the places holds one.
    """
    named = weights_path or os.environ.get(INCEPTION_WEIGHTS_ENV)
    if named:
        candidates = [Path(named).expanduser()]
    else:
        hub = Path(os.environ.get("TORCH_HOME", Path.home() / ".cache" / "torch")) / "hub" / "checkpoints"
        candidates = [hub / name for name in INCEPTION_FILE_NAMES]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise MissingWeightsError(
        missing_weights_message(
            "Inception-v3 FID weights",
            candidates[0] if named else f"{candidates[0].parent}/{{{','.join(INCEPTION_FILE_NAMES)}}}",
            f"{INCEPTION_URLS[0]} (or {INCEPTION_URLS[1]}; sha256 starts with {INCEPTION_SHA256_PREFIX})",
            f"${INCEPTION_WEIGHTS_ENV}=PATH (or the weights_path argument)",
        )
    )


class InceptionFeatures:
    """InceptionV3 pool3 features: ``uint8 (N, H, W, 3)`` -> ``float32 (N, 2048)``.

    Attributes:
        extractor_id: ``inception-v3-pool3:<resize mode>:<sha256[:16] | random-seed<k>>``.
        dim: 2048.
        weights_sha256: sha256 of the weights file; None with random weights.
    """

    dim = 2048

    def __init__(
        self,
        weights_path: str | os.PathLike[str] | None = None,
        *,
        resize: ResizeMode = "tf1-bilinear",
        device: str | torch.device = "cpu",
        random_weights: bool = False,
        seed: int = 0,
    ) -> None:
        """Build the network on ``device``.

        Args:
            weights_path: the weights file; None looks up ``$HARNESS_INCEPTION_WEIGHTS`` and the torch hub cache.
            resize: resize rule to 299 x 299 (module docstring).
            device: where the network runs.
            random_weights: seeded random initialisation instead of a file, for tests and speed benchmarks only
                (the id says so; such features measure nothing).
            seed: seed of the random initialisation.

        Raises:
            MissingWeightsError: no weights file found (and ``random_weights`` is False).
            ValueError: unknown resize mode, or a file that is not an Inception state dict.
        """
        if resize not in RESIZE_MODES:
            raise ValueError(f"unknown Inception resize mode {resize!r}; valid: {', '.join(RESIZE_MODES)}")
        self.resize = resize
        self.device = torch.device(device)
        state_dict: dict[str, torch.Tensor] | None = None
        path: Path | None = None
        if random_weights:
            self.weights_sha256: str | None = None
            tag = f"random-seed{seed}"
        else:
            path = resolve_inception_weights(weights_path)
            state_dict = _load_state_dict(path)
            self.weights_sha256 = sha256_file(path)
            tag = self.weights_sha256[:16]
        self.extractor_id = f"inception-v3-pool3:{resize}:{tag}"
        self.net = _build_network(resize == "antialias-bilinear", seed)
        if state_dict is not None and path is not None:
            _load_into(self.net, state_dict, path)
            if not tag.startswith(INCEPTION_SHA256_PREFIX):
                warnings.warn(
                    f"{path}: sha256 {tag}... does not start with {INCEPTION_SHA256_PREFIX}; these are not the FID "
                    "Inception weights, so values will not match published FIDs",
                    stacklevel=2,
                )
        self.net.to(self.device)

    @torch.inference_mode()
    def __call__(self, images: np.ndarray) -> np.ndarray:
        """Pool3 features of one same-size batch.

        Args:
            images: ``uint8 (N, H, W, 3)`` in [0, 255].

        Returns:
            ``float32 (N, 2048)``.
        """
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[3] != 3:
            raise ValueError(f"expected uint8 (N, H, W, 3) images, got {images.dtype} {images.shape}; see to_uint8_rgb")
        batch = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).to(self.device)
        result: np.ndarray = self.net(batch).float().cpu().numpy()
        return result


def _build_network(antialias: bool, seed: int) -> _InceptionV3Pool3:
    """The network with PyTorch's default initialisation drawn from ``seed`` (the global RNG is left untouched)."""
    with tempfile.TemporaryDirectory() as tmp, torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        empty = Path(tmp) / "empty.pth"
        torch.save({}, empty)
        return _InceptionV3Pool3(
            name="inception-v3-compat",
            features_list=["2048"],
            feature_extractor_weights_path=str(empty),
            antialias=antialias,
        )


def _load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A plain tensor state dict from ``path`` (``weights_only=True``: no code in the file is run)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # any unpickling failure means the wrong kind of file
        raise ValueError(
            f"{path}: not a PyTorch state dict ({type(exc).__name__}); use the torch-fidelity or pytorch-fid "
            f".pth file ({INCEPTION_FILE_NAMES[0]}), not a TorchScript or TF file"
        ) from exc
    if not isinstance(state, dict) or not state:
        raise ValueError(f"{path}: holds no state dict; use {INCEPTION_FILE_NAMES[0]}")
    return state


def _load_into(net: _InceptionV3Pool3, state_dict: dict[str, torch.Tensor], path: Path) -> None:
    """Strictly load ``state_dict``, with one clear line on mismatching keys."""

    def counted(keys: Any) -> set[str]:  # BatchNorm step counters are absent from some ports and unused in eval
        return {key for key in keys if not key.endswith("num_batches_tracked")}

    expected, got = counted(net.state_dict()), counted(state_dict)
    if expected != got:
        missing, unexpected = sorted(expected - got)[:3], sorted(got - expected)[:3]
        raise ValueError(
            f"{path}: not an FID Inception-v3 state dict (missing keys {missing}, unexpected {unexpected}); "
            f"use {INCEPTION_FILE_NAMES[0]} or {INCEPTION_FILE_NAMES[1]}"
        )
    net.load_state_dict(state_dict, strict=False)
