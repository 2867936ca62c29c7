"""On-disk feature cache keyed by (image sha256, extractor id): scoring a run twice extracts once.

Layout: ``<root>/<extractor dir>/<sha[:2]>/<sha>.npy``, one ``float32 (D,)`` vector per image, where
``<extractor dir>`` is a readable slug of the extractor id plus the first 16 hex digits of its sha256 (ids hold ``:``
and ``/``; the hash keeps two ids with one slug apart). The full id is written once to ``<extractor dir>/extractor_id``.
Writes are atomic (temporary file in the same directory, then ``os.replace``), so an interrupted run never leaves a
half-written vector, and two processes writing one key both leave a valid file.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from eval_protocols.features.base import FeatureExtractor, iter_features, load_image_file, sha256_file

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class FeatureCache:
    """Feature vectors on disk, keyed by (image sha256, extractor id).

    Attributes:
        root: the cache directory (created on first write).
        hits: lookups answered from disk since construction.
        misses: lookups that found nothing.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.hits = 0
        self.misses = 0

    def path_for(self, image_sha256: str, extractor_id: str) -> Path:
        """The file that holds the features of one image under one extractor.

        Raises:
            ValueError: if ``image_sha256`` is not 64 lowercase hex digits.
        """
        if not _SHA256.match(image_sha256):
            raise ValueError(f"image key {image_sha256!r} is not a lowercase hex sha256; hash the image file bytes")
        return self._extractor_dir(extractor_id) / image_sha256[:2] / f"{image_sha256}.npy"

    def get(self, image_sha256: str, extractor_id: str) -> np.ndarray | None:
        """The cached ``float32 (D,)`` features, or None when absent."""
        path = self.path_for(image_sha256, extractor_id)
        if not path.is_file():
            self.misses += 1
            return None
        self.hits += 1
        result: np.ndarray = np.load(path)
        return result

    def put(self, image_sha256: str, extractor_id: str, features: np.ndarray) -> None:
        """Store one ``(D,)`` feature vector atomically (an existing entry is replaced).

        Raises:
            ValueError: if ``features`` is not one finite vector.
        """
        vector = np.asarray(features, dtype=np.float32)
        if vector.ndim != 1 or not np.isfinite(vector).all():
            raise ValueError(f"cache entries are finite (D,) vectors; got shape {vector.shape} or non-finite values")
        path = self.path_for(image_sha256, extractor_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._write_id(extractor_id)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".npy")
        try:
            with os.fdopen(fd, "wb") as handle:
                np.save(handle, vector)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def _extractor_dir(self, extractor_id: str) -> Path:
        slug = re.sub(r"[^A-Za-z0-9._-]+", "_", extractor_id)[:80]
        digest = hashlib.sha256(extractor_id.encode("utf-8")).hexdigest()[:16]
        return self.root / f"{slug}-{digest}"

    def _write_id(self, extractor_id: str) -> None:
        id_file = self._extractor_dir(extractor_id) / "extractor_id"
        if not id_file.exists():
            id_file.write_text(extractor_id + "\n", encoding="utf-8")


def extract_files(
    extractor: FeatureExtractor,
    paths: Sequence[str | os.PathLike[str]],
    cache: FeatureCache | None = None,
    batch_size: int = 64,
    image_sha256s: Sequence[str] | None = None,
) -> np.ndarray:
    """Features of image files, reading cached vectors and extracting (then caching) only the misses.

    Args:
        extractor: the feature extractor.
        paths: image files, in output order.
        cache: the cache; None extracts everything and stores nothing.
        batch_size: images per extractor call; misses are loaded lazily, ``batch_size`` at a time.
        image_sha256s: the files' sha256 when already known (a run's manifest); hashed from the bytes otherwise.

    Returns:
        ``float32 (N, D)`` features, row i for ``paths[i]``.

    Raises:
        ValueError: if ``image_sha256s`` does not match ``paths`` in length, or an image's features are not finite
            (the message names the file).
    """
    if image_sha256s is not None and len(image_sha256s) != len(paths):
        raise ValueError(f"{len(image_sha256s)} sha256 values for {len(paths)} image files; pass one per file")
    out = np.zeros((len(paths), extractor.dim), dtype=np.float32)
    if image_sha256s is not None:
        keys = list(image_sha256s)
    else:  # hashing is only needed to look up the cache
        keys = [sha256_file(p) for p in paths] if cache is not None else []
    missing: list[int] = []
    for i in range(len(paths)):
        cached = cache.get(keys[i], extractor.extractor_id) if cache is not None else None
        if cached is None:
            missing.append(i)
        else:
            out[i] = cached
    images = (load_image_file(paths[i]) for i in missing)
    row = 0
    for batch in iter_features(extractor, images, batch_size):
        for vector in batch:
            index = missing[row]
            if not np.isfinite(vector).all():
                raise ValueError(
                    f"extractor {extractor.extractor_id} gave NaN/inf features for {paths[index]}; "
                    "check the image and the extractor's weights"
                )
            out[index] = vector
            if cache is not None:
                cache.put(keys[index], extractor.extractor_id, vector)
            row += 1
    return out
