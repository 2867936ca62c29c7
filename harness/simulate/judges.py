"""What simulated annotators see: a per-image (or per-grid) score for each protocol, measured, never made up.

A judge maps the images of one side of an item to one number, higher = "better" for its protocol:

* photorealism (`RealismJudge`): the negative mean distance of each image's low-level statistics (`low_level_stats`:
  sharpness and noise floor of the luminance, layout-independent), z-scored with the reference set's mean and
  standard deviation, to its ``k`` nearest real renders: ``r(x) = −(1/k) Σ_{j ∈ kNN(x)} ‖z(x) − z(ref_j)‖₂``.
  Noise, blur and corruptions move an image away from the real renders (layout features such as the
  `PixelExtractor` cells were tried first: object positions swamp blur there);
* caption similarity (`make_caption_judge`, best available first):
  1. the toy attribute oracle (``checkpoints/toy/oracle.*``): the mean probability the oracle gives to each attribute
     the caption's object names (shape, and colour / size when named). The oracle reads single-object images, so
     for captions of two or more objects the toy CLIP judges instead when it exists (`SplitCaptionJudge`; checked on
     the toy attention checks: the oracle misreads multi-object renders);
  2. the toy CLIP (``checkpoints/toy/clip_toy.*``): the cosine similarity of image and caption embeddings;
  3. colour match: for each colour the caption names, the share of pixels within a distance of 60 (of 441) of its
     RGB value, averaged, so a faithful sample shows every named colour;
* diversity (`DiversityJudge`): the mean pairwise RMS distance of the grid's colour layouts
  (`eval_protocols.features.pixels.LayoutExtractor`, mean RGB of 4 × 4 cells;
  `eval_protocols.metrics.diversity.mean_pairwise_rms_distance`), the measure of the ``layout_diversity`` metric.
  It judged by the Vendi score of toy-CLIP embeddings before; that CLIP is trained on captions and is nearly blind
  to what captions leave open (positions, background, light, unnamed sizes), so within a caption its spread measured
  a model's errors: on ``runs/toy-64b7b1ee`` it ranked the real renders least diverse (mean pairwise cosine distance
  0.058 against GLIDE g = 1's 0.229), where the layout distance ranks them first (0.176 against 0.12–0.15) and
  separates the systems and guidance scales (`tests/harness/test_sim_judges.py` checks it also shrugs off speckle
  noise, which the CLIP judge rewarded).

Each judge has an ``judge_id`` naming the extractor and weights it used, recorded with the simulated votes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from eval_protocols.features.pixels import LayoutExtractor
from eval_protocols.metrics.diversity import mean_pairwise_rms_distance
from harness.score.extractors import MissingToyCheckpointError, toy_clip, toy_oracle

COLOUR_TOLERANCE = 60.0


class Judge(Protocol):
    """Scores the images of one side of an item; higher is better for the judge's protocol."""

    judge_id: str

    def __call__(self, images: np.ndarray, caption: str) -> float:
        """``images``: ``uint8 (n, H, W, 3)`` (1 for a pair, 16 for a 4×4 grid); the item's caption."""
        ...


@runtime_checkable
class ImageJudge(Judge, Protocol):
    """A judge whose score of a side is the mean of per-image scores, so the sides of many pair items (one image
    each) can be scored in one batch: ``score_each(images)[i] == judge(images[i:i+1])`` up to float rounding."""

    def score_each(self, images: np.ndarray, caption: str) -> np.ndarray:
        """``float64 (n,)``: the score of each image of ``uint8 (n, H, W, 3)`` as a side of its own."""
        ...


LOW_LEVEL_ID = "lowlevel-v1"


def low_level_stats(images: np.ndarray) -> np.ndarray:
    """Sharpness and noise statistics of the luminance Y ∈ [0, 1] (Y = 0.299 R + 0.587 G + 0.114 B).

    With g = |∇Y| (forward differences) and ℓ = |4Y − Y_up − Y_down − Y_left − Y_right| (interior pixels):
    ``[p90(g), p99(g), p50(ℓ), p99(ℓ)]`` per image; ``uint8 (n, H, W, 3)`` -> ``(n, 4)``. Blur lowers the high
    percentiles (edges soften), noise raises the median Laplacian (the noise floor).
    """
    y = images.astype(np.float64) @ np.array([0.299, 0.587, 0.114]) / 255.0
    gx = np.diff(y, axis=2)[:, :-1, :]
    gy = np.diff(y, axis=1)[:, :, :-1]
    grad = np.sqrt(gx**2 + gy**2).reshape(len(y), -1)
    lap = np.abs(4 * y[:, 1:-1, 1:-1] - y[:, :-2, 1:-1] - y[:, 2:, 1:-1] - y[:, 1:-1, :-2] - y[:, 1:-1, 2:])
    lap = lap.reshape(len(y), -1)
    return np.stack(
        [np.percentile(grad, 90, axis=1), np.percentile(grad, 99, axis=1),
         np.percentile(lap, 50, axis=1), np.percentile(lap, 99, axis=1)],
        axis=1,
    )


def _resized(images: np.ndarray, size: tuple[int, ...]) -> np.ndarray:
    """Images at the reference resolution (bicubic), so sharpness statistics compare like with like."""
    if images.shape[1:3] == tuple(size):
        return images
    from PIL import Image

    height, width = int(size[0]), int(size[1])
    return np.stack([np.asarray(Image.fromarray(im).resize((width, height), Image.Resampling.BICUBIC)) for im in images])


class RealismJudge:
    """``r(x) = −mean distance of z(x) to its k nearest real renders``, averaged over the side's images.

    Args:
        reference: real renders, ``uint8 (N, H, W, 3)``, N ≥ 1.
        k: neighbours (clipped to N).
    """

    def __init__(self, reference: np.ndarray, k: int = 5) -> None:
        if len(reference) == 0:
            raise ValueError("the realism judge needs at least one real render; render the reference set first")
        self.size = reference.shape[1:3]
        ref = low_level_stats(reference)
        self.mean = ref.mean(axis=0)
        self.std = np.maximum(ref.std(axis=0), 1e-4)
        self.reference = (ref - self.mean) / self.std
        self.k = min(k, len(reference))
        self.judge_id = f"knn{self.k}-realism:{LOW_LEVEL_ID}:ref{len(reference)}"

    def __call__(self, images: np.ndarray, caption: str = "") -> float:
        return float(self.score_each(images, caption).mean())

    def score_each(self, images: np.ndarray, caption: str = "") -> np.ndarray:
        """Per image: minus the mean distance to its k nearest real renders."""
        z = (low_level_stats(_resized(images, self.size)) - self.mean) / self.std
        d = np.sqrt(((z[:, None, :] - self.reference[None, :, :]) ** 2).sum(axis=-1))
        result: np.ndarray = -np.sort(d, axis=1)[:, : self.k].mean(axis=1)
        return result


class DiversityJudge:
    """Mean pairwise RMS distance of a grid's features, ``mean_{i≠j} ‖f_i − f_j‖₂ / √D`` (0 for copies of one image).

    Args:
        features: maps ``uint8 (n, H, W, 3)`` to ``(n, D)``; default the colour layout `LayoutExtractor` (4 × 4
            cells, values on [0, 1], so scores lie in [0, 1]).
        features_id: names ``features`` in the judge id (default the extractor's id).
    """

    def __init__(
        self, features: Callable[[np.ndarray], np.ndarray] | None = None, features_id: str | None = None
    ) -> None:
        extractor = LayoutExtractor()
        self.features = features or extractor
        self.judge_id = f"rms-pairwise:{features_id or extractor.extractor_id}"

    def __call__(self, images: np.ndarray, caption: str = "") -> float:
        if len(images) < 2:
            return 0.0
        return mean_pairwise_rms_distance(np.asarray(self.features(images), dtype=np.float64))


class OracleCaptionJudge:
    """Mean oracle probability of the attributes the caption's first object names."""

    def __init__(self, oracle: object) -> None:
        self.oracle = oracle
        self.judge_id = f"oracle:{getattr(oracle, 'extractor_id', 'toy-oracle')}"

    def __call__(self, images: np.ndarray, caption: str) -> float:
        return float(self.score_each(images, caption).mean())

    def score_each(self, images: np.ndarray, caption: str) -> np.ndarray:
        """Per image: the mean over the named attributes of the oracle's probability of the named value."""
        from harness.data.toyworld.captions import parse_caption

        first = parse_caption(caption).objects[0]
        wanted = {"shape": first.shape, "colour": first.colour, "size": first.size}
        pred = self.oracle.predict(images)  # type: ignore[attr-defined]
        probs = []
        for attribute, value in wanted.items():
            if value is None or attribute not in pred.classes or value not in pred.classes[attribute]:
                continue
            probs.append(pred.probabilities[attribute][:, list(pred.classes[attribute]).index(value)])
        return np.asarray(np.mean(probs, axis=0, dtype=np.float64)) if probs else np.zeros(len(images))


class ClipCaptionJudge:
    """Cosine similarity of (unit) CLIP image and caption embeddings, averaged over the side's images."""

    def __init__(self, clip: object) -> None:
        self.clip = clip
        self.judge_id = f"clip-similarity:{getattr(clip, 'extractor_id', 'clip')}"
        self._text: dict[str, np.ndarray] = {}

    def __call__(self, images: np.ndarray, caption: str) -> float:
        return float(self.score_each(images, caption).mean())

    def score_each(self, images: np.ndarray, caption: str) -> np.ndarray:
        """Per image: cosine similarity of its CLIP embedding with the caption's."""
        if caption not in self._text:
            self._text[caption] = self.clip.encode_text([caption])[0]  # type: ignore[attr-defined]
        return np.asarray(self.clip(images) @ self._text[caption], dtype=np.float64)  # type: ignore[operator]


class SplitCaptionJudge:
    """The oracle for one-object captions, another judge (the toy CLIP) for captions of several objects."""

    def __init__(self, single: Judge, multi: Judge) -> None:
        self.single = single
        self.multi = multi
        self.judge_id = f"{single.judge_id} (1 object) + {multi.judge_id} (2+ objects)"

    def __call__(self, images: np.ndarray, caption: str) -> float:
        return self._judge(caption)(images, caption)

    def score_each(self, images: np.ndarray, caption: str) -> np.ndarray:
        judge = self._judge(caption)
        if isinstance(judge, ImageJudge):
            return judge.score_each(images, caption)
        return np.array([judge(images[i : i + 1], caption) for i in range(len(images))], dtype=np.float64)

    def _judge(self, caption: str) -> Judge:
        from harness.data.toyworld.captions import parse_caption

        return self.single if len(parse_caption(caption).objects) == 1 else self.multi


class ColourCaptionJudge:
    """Share of pixels within `COLOUR_TOLERANCE` of each colour the caption names, averaged over the colours."""

    judge_id = f"colour-match:tol{COLOUR_TOLERANCE:g}"

    def __call__(self, images: np.ndarray, caption: str) -> float:
        from harness.data.toyworld.captions import parse_caption
        from harness.data.toyworld.vocab import COLOURS

        colours = [m.colour for m in parse_caption(caption).objects if m.colour]
        if not colours:
            return 0.0
        x = images.astype(np.float64)
        shares = [
            (np.linalg.norm(x - np.array(COLOURS[c], dtype=np.float64), axis=-1) < COLOUR_TOLERANCE).mean()
            for c in colours
        ]
        return float(np.mean(shares))




def _optional(load: Callable[..., object], checkpoints: Path | None) -> object | None:
    """A toy model from `harness.score.extractors`, or None when its checkpoint is absent (judges fall back)."""
    try:
        return load(checkpoints=checkpoints)
    except MissingToyCheckpointError:
        return None


def make_caption_judge(clip: object | None, oracle: object | None) -> Judge:
    """The best caption judge available: oracle (+ toy CLIP for multi-object captions), else toy CLIP, else colour."""
    if oracle is not None and clip is not None:
        return SplitCaptionJudge(OracleCaptionJudge(oracle), ClipCaptionJudge(clip))
    if oracle is not None:
        return OracleCaptionJudge(oracle)
    if clip is not None:
        return ClipCaptionJudge(clip)
    return ColourCaptionJudge()


def make_judges(
    reference: np.ndarray, *, checkpoints: Path | None = None, use_models: bool = True
) -> dict[str, Judge]:
    """One judge per protocol name (``photorealism``, ``caption_similarity``, ``diversity``).

    Args:
        reference: real renders, ``uint8 (N, H, W, 3)``.
        checkpoints: folder of the toy checkpoints (default `harness.paths.toy_checkpoint_dir`).
        use_models: load the toy CLIP / oracle when present (False: weight-free judges only).
    """
    clip = _optional(toy_clip, checkpoints) if use_models else None
    oracle = _optional(toy_oracle, checkpoints) if use_models else None
    return {
        "photorealism": RealismJudge(reference),
        "caption_similarity": make_caption_judge(clip, oracle),
        "diversity": DiversityJudge(),
    }


def judge_for(judges: dict[str, Judge], protocol_name: str, attention_kind: str = "") -> Judge:
    """The judge of a protocol, by name or by its attention-check kind for custom protocols.

    Raises:
        ValueError: no judge fits.
    """
    if protocol_name in judges:
        return judges[protocol_name]
    by_kind = {"corrupted_render": "photorealism", "contradicting_caption": "caption_similarity",
               "collapsed_grid": "diversity"}
    if attention_kind in by_kind:
        return judges[by_kind[attention_kind]]
    raise ValueError(
        f"no simulated judge for protocol {protocol_name!r}; simulated annotators know photorealism, "
        "caption_similarity and diversity"
    )


def stack(images: Sequence[np.ndarray]) -> np.ndarray:
    """Stack same-size images into ``uint8 (n, H, W, 3)``."""
    return np.stack([np.asarray(i, dtype=np.uint8) for i in images])
