"""The feature-extractor interface, the image conversion rules and batched, streamed extraction.

Every extractor (Inception for FID, CLIP image towers, test dummies) is a callable
``extractor(images: uint8 (N, H, W, 3)) -> float (N, D)`` with an ``extractor_id`` that names the network, its
weights and its preprocessing, so two feature arrays are comparable exactly when their ids are equal. Metrics receive
features, never extractors (DESIGN.md dependency rule 3).

Image conversion rules (`to_uint8_rgb`), applied before any extractor sees an image:

- dtype: ``uint8`` passes through; floats are taken as [0, 1] and quantised by *rounding*
  (``round(255 * x)`` clipped to [0, 255]), as saving a PNG would, not by truncation (torchmetrics' ``normalize=True``
  truncates and shifts features by about half a level); other integer types must already lie in [0, 255].
- grayscale ``(H, W)`` or ``(H, W, 1)``: the channel is repeated three times.
- RGBA ``(H, W, 4)``: composited on a **white** background, ``rgb * a + 255 * (1 - a)`` with ``a = alpha / 255``, then
  rounded. Dropping alpha instead would expose whatever colour the encoder left under transparent pixels (often black),
  which no viewer shows; white is what the image looks like on a page.
- mixed sizes: never resized here. Each extractor resizes from the native size with its own documented rule (Inception:
  TF1-compatible bilinear to 299; CLIP: bicubic to its input size), so resampling happens once. `iter_features` batches
  consecutive images of equal size together and splits a batch where the size changes.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class FeatureExtractor(Protocol):
    """An image feature extractor: ``uint8 (N, H, W, 3)`` in [0, 255] -> ``float (N, dim)``.

    Attributes:
        extractor_id: names network, weights (sha256 prefix or ``random-seed<k>``) and preprocessing; features with
            different ids must never be compared or cached together.
        dim: the feature dimension ``D``.
        weights_sha256: sha256 of the weights file, or None for random weights.
    """

    extractor_id: str
    dim: int
    weights_sha256: str | None

    def __call__(self, images: np.ndarray) -> np.ndarray:
        """Map ``uint8 (N, H, W, 3)`` images (one size per call) to ``float (N, dim)`` features."""
        ...


class MissingWeightsError(ValueError):
    """A weights file an extractor needs is not on local disk (nothing is ever downloaded)."""


def missing_weights_message(what: str, path: str | os.PathLike[str] | None, source: str, how_to_point: str) -> str:
    """One-line message for a missing weights file: which file, where it comes from, how to point at it.

    Args:
        what: what the weights are for, e.g. ``"Inception-v3 FID weights"``.
        path: the path that was looked at (None when no path was given or found).
        source: where the file comes from (URL and expected sha256).
        how_to_point: the flag / environment variable / argument that selects the file.

    Returns:
        The message (no trailing newline).
    """
    where = f"file not found: {path}" if path else "no file given"
    return f"{what}: {where}; get it from {source} and point at it with {how_to_point} (nothing is downloaded)"


def sha256_file(path: str | os.PathLike[str], chunk_bytes: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes, read in chunks (memory independent of the file size)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(chunk_bytes), b""):
            digest.update(chunk)
    return digest.hexdigest()


def to_uint8_rgb(image: Any) -> np.ndarray:
    """Convert one image to ``uint8 (H, W, 3)`` by the module's documented rules.

    Args:
        image: a PIL image (any mode) or an array ``(H, W)``, ``(H, W, 1)``, ``(H, W, 3)`` or ``(H, W, 4)``; ``uint8``
            / integer in [0, 255], or float in [0, 1].

    Returns:
        ``uint8`` array of shape ``(H, W, 3)``.

    Raises:
        ValueError: for other shapes, or values outside the documented range.
    """
    array = _as_array(image)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] not in (3, 4):
        raise ValueError(
            f"image of shape {array.shape} is not (H, W), (H, W, 1), (H, W, 3) or (H, W, 4); pass one HWC image"
        )
    scaled = _to_0_255(array)
    if scaled.shape[2] == 4:
        alpha = scaled[:, :, 3:4] / 255.0
        scaled = scaled[:, :, :3] * alpha + 255.0 * (1.0 - alpha)
    result: np.ndarray = np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
    return result


def _as_array(image: Any) -> np.ndarray:
    """A PIL image (palette, L, LA, RGB, RGBA, I;16 ...) or array as a numpy array, without changing its values."""
    if hasattr(image, "mode") and hasattr(image, "convert"):  # PIL.Image, checked without importing PIL
        mode = image.mode
        if mode not in ("L", "LA", "RGB", "RGBA"):
            image = image.convert("RGBA" if "A" in mode or "transparency" in image.info else "RGB")
        elif mode == "LA":
            image = image.convert("RGBA")
    return np.asarray(image)


def _to_0_255(array: np.ndarray) -> np.ndarray:
    """Values as float64 in [0, 255]: uint8 as is, floats in [0, 1] times 255, integers checked to lie in [0, 255]."""
    if array.dtype == np.uint8:
        return array.astype(np.float64)
    if np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all() or array.min() < 0.0 or array.max() > 1.0:
            raise ValueError("float image has values outside [0, 1] or NaN; pass floats in [0, 1] or uint8 in [0, 255]")
        return array.astype(np.float64) * 255.0
    if np.issubdtype(array.dtype, np.integer):
        if array.min() < 0 or array.max() > 255:
            raise ValueError(
                f"{array.dtype} image has values in [{array.min()}, {array.max()}], not [0, 255]; "
                "rescale to uint8 first"
            )
        return array.astype(np.float64)
    raise ValueError(f"image dtype {array.dtype} is not supported; pass uint8 in [0, 255] or float in [0, 1]")


def iter_features(extractor: FeatureExtractor, images: Iterable[Any], batch_size: int = 64) -> Iterator[np.ndarray]:
    """Stream features batch by batch: only ``batch_size`` images are held at once.

    Images are converted by `to_uint8_rgb`; a batch is cut early where the image size changes, so each call of the
    extractor sees one size (and resizes it by its own rule).

    Args:
        extractor: the feature extractor.
        images: any iterable of images (arrays or PIL images), e.g. a generator that loads files lazily.
        batch_size: images per extractor call, >= 1.

    Yields:
        ``float32 (B, D)`` feature batches in input order.

    Raises:
        ValueError: for a batch size < 1, a bad image, or an extractor output of the wrong shape.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    batch: list[np.ndarray] = []
    for image in images:
        rgb = to_uint8_rgb(image)
        if batch and (len(batch) == batch_size or rgb.shape != batch[0].shape):
            yield _run(extractor, batch)
            batch = []
        batch.append(rgb)
    if batch:
        yield _run(extractor, batch)


def extract(extractor: FeatureExtractor, images: Iterable[Any], batch_size: int = 64) -> np.ndarray:
    """All features of ``images`` as one ``float32 (N, D)`` array (see `iter_features`); ``(0, D)`` for no images."""
    batches = list(iter_features(extractor, images, batch_size))
    if not batches:
        return np.zeros((0, extractor.dim), dtype=np.float32)
    return np.concatenate(batches, axis=0)


def _run(extractor: FeatureExtractor, batch: list[np.ndarray]) -> np.ndarray:
    """One extractor call on a same-size batch, with the output shape checked."""
    features = np.asarray(extractor(np.stack(batch)), dtype=np.float32)
    if features.shape != (len(batch), extractor.dim):
        raise ValueError(
            f"extractor {extractor.extractor_id} returned shape {features.shape}, "
            f"expected ({len(batch)}, {extractor.dim})"
        )
    return features


def load_image_file(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an image file (PNG, JPEG, ...) with PIL and convert it by `to_uint8_rgb`."""
    from PIL import Image  # local import: PIL is needed only when reading files

    with Image.open(Path(path)) as image:
        image.load()
        return to_uint8_rgb(image)
