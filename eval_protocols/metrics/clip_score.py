"""CLIP score and CLIP R-precision: how well samples match their captions, by a CLIP model's embeddings.

CLIP score (per sample, then the mean; Hessel et al.'s clamp with torchmetrics' scale 100):

    s_i = 100 * max(cos(f(image_i), g(caption_i)), 0),   CLIP score = mean_i s_i

torchmetrics' ``CLIPScore`` instead clamps the *mean* (``max(mean(100 cos), 0)``) and Hessel et al. use w = 2.5; values
are comparable only with one formula and one CLIP model, so results record ``scale`` and the caller should record the
CLIP model's extractor id (e.g. ``open_clip:ViT-B-32:image:<sha>``).

CLIP R-precision (Park et al. 2021): each sample's true caption competes with ``k - 1`` distractor captions drawn
(seeded, without replacement) from the *other* distinct captions; a hit is when the true caption has a strictly higher
cosine than every distractor (ties count as misses). R-precision = the hit rate.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from eval_protocols.metrics.base import MetricResult, as_features
from eval_protocols.metrics.bootstrap import mean_replicates
from eval_protocols.metrics.registry import MetricInputs, register_metric


def _unit_rows(x: np.ndarray) -> np.ndarray:
    result: np.ndarray = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    return result


def clip_score_per_sample(image_features: Any, text_features: Any, scale: float = 100.0) -> np.ndarray:
    """``scale * max(cos(image_i, text_i), 0)`` per row: ``(N, D)`` and ``(N, D)`` -> ``float64 (N,)`` in [0, scale]."""
    images = as_features(image_features, "image features")
    texts = as_features(text_features, "text features", dim=images.shape[1])
    if len(texts) != len(images):
        raise ValueError(f"{len(images)} image features but {len(texts)} text features; pass one caption per image")
    cosine = np.einsum("ij,ij->i", _unit_rows(images), _unit_rows(texts))
    result: np.ndarray = scale * np.maximum(cosine, 0.0)
    return result


def clip_score(image_features: Any, text_features: Any, scale: float = 100.0) -> MetricResult:
    """Mean per-sample CLIP score (module docstring); per-sample values in ``details["per_sample"]``."""
    per_sample = clip_score_per_sample(image_features, text_features, scale)
    details: dict[str, Any] = {"scale": scale, "std": float(per_sample.std()), "per_sample": per_sample.tolist()}
    return MetricResult("clip_score", float(per_sample.mean()), len(per_sample), higher_is_better=True, details=details)


def clip_r_precision_hits(
    image_features: Any, caption_features: Any, caption_index: Any, *, k: int = 32, seed: int = 0
) -> np.ndarray:
    """Per-sample R-precision hits (module docstring).

    Args:
        image_features: ``(N, D)`` CLIP image embeddings.
        caption_features: ``(C, D)`` CLIP text embeddings of the distinct captions.
        caption_index: ``(N,)`` int, the row of ``caption_features`` that is sample i's caption.
        k: candidates per sample (true caption + k - 1 distractors); clamped to C with a warning when C < k.
        seed: seed of the distractor draws.

    Returns:
        ``bool (N,)``.

    Raises:
        ValueError: fewer than 2 distinct captions, or indices out of range.
    """
    images = _unit_rows(as_features(image_features, "image features"))
    captions = _unit_rows(as_features(caption_features, "caption features", dim=images.shape[1]))
    index = np.asarray(caption_index, dtype=np.int64)
    n_captions = len(captions)
    if index.shape != (len(images),) or index.min(initial=0) < 0 or index.max(initial=0) >= n_captions:
        raise ValueError(f"caption_index must be ({len(images)},) ints in [0, {n_captions}); one per image")
    if n_captions < 2:
        raise ValueError("CLIP R-precision needs at least 2 distinct captions to draw distractors from")
    if k > n_captions:
        warnings.warn(
            f"R-precision: only {n_captions} distinct captions, using k = {n_captions} instead of {k}", stacklevel=2
        )
        k = n_captions
    rng = np.random.default_rng(seed)
    hits = np.empty(len(images), dtype=bool)
    for i, true in enumerate(index):
        others = rng.choice(n_captions - 1, size=k - 1, replace=False)
        distractors = others + (others >= true)  # skip the true caption's row
        true_score = images[i] @ captions[true]
        hits[i] = bool(np.all(true_score > captions[distractors] @ images[i]))
    return hits


def clip_r_precision(
    image_features: Any, caption_features: Any, caption_index: Any, *, k: int = 32, seed: int = 0
) -> MetricResult:
    """CLIP R-precision (fraction of hits, in [0, 1]); per-sample hits in ``details["per_sample"]``."""
    hits = clip_r_precision_hits(image_features, caption_features, caption_index, k=k, seed=seed)
    n_captions = len(np.asarray(caption_features))
    details: dict[str, Any] = {"k": min(k, n_captions), "per_sample": hits.astype(float).tolist()}
    return MetricResult("r_precision", float(hits.mean()), len(hits), higher_is_better=True, details=details)


def _clip_score_replicates(
    inputs: MetricInputs, idx: np.ndarray, ref_idx: np.ndarray | None
) -> tuple[float, np.ndarray]:
    """Mean CLIP score (scale 100) and its within-prompt replicates (`eval_protocols.metrics.bootstrap.mean_replicates`)."""
    return mean_replicates(clip_score_per_sample(inputs.samples, inputs.sample_text), inputs.groups, idx)


@register_metric(
    "clip_score",
    higher_is_better=True,
    requires=("samples", "sample_text"),
    description="CLIP score",
    clip_features=True,
    replicates=_clip_score_replicates,
)
def _clip_score_metric(inputs: MetricInputs, scale: float = 100.0) -> list[MetricResult]:
    return [clip_score(inputs.samples, inputs.sample_text, scale)]


@register_metric(
    "r_precision",
    higher_is_better=True,
    requires=("samples", "captions", "caption_index"),
    description="CLIP R-precision",
    clip_features=True,
)
def _r_precision_metric(inputs: MetricInputs, k: int = 32, seed: int = 0) -> list[MetricResult]:
    return [clip_r_precision(inputs.samples, inputs.captions, inputs.caption_index, k=k, seed=seed)]
