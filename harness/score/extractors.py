"""Build feature extractors from the names used in run configs (``metrics.extractor``) and on the command line.

Names:

* ``pixels`` / ``pixels-g<k>`` — weight-free area-pooled RGB and texture (`eval_protocols.features.pixels`), for
  FD/KID on the toy world;
* ``layout`` / ``layout-g<k>`` — weight-free colour layout, the mean RGB of each cell of a k × k grid (k = 4 by
  default; `eval_protocols.features.pixels.LayoutExtractor`), for ``layout_diversity``;
* ``inception`` — InceptionV3 pool3 for FID from a local weights file (``$HARNESS_INCEPTION_WEIGHTS``);
  ``inception:antialias-bilinear`` selects the other resize mode;
* ``clip:<arch>:<checkpoint path>`` — open_clip image features of any architecture from a local checkpoint;
* ``clip:toy`` — the shipped toy CLIP (``clip_toy`` in `harness.paths.toy_checkpoint_dir`; its architecture is in
  ``clip_toy.json`` beside the weights).

The toy models the harness measures with (the toy CLIP, the attribute oracle) are loaded here and nowhere else.

Metrics never build extractors: the harness does, here, and passes them in.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from eval_protocols.features.base import FeatureExtractor
from harness.errors import HarnessError
from harness.extractor_names import check_extractor_name, grid_of
from harness.paths import toy_checkpoint_dir

if TYPE_CHECKING:
    from eval_protocols.features.clip import OpenClipFeatures
    from eval_protocols.features.oracle import ToyAttributeOracle
    from eval_protocols.metrics.registry import MetricSpec
    from harness.config import MetricsConfig


def build_extractor(name: str, *, device: str = "cpu") -> FeatureExtractor:
    """The extractor called ``name`` (see the module docstring).

    Raises:
        ConfigError: unknown name (`harness.extractor_names.check_extractor_name`). HarnessError: a weights file is missing (the message says where to get it).
    """
    from eval_protocols.features.pixels import LayoutExtractor, PixelExtractor

    check_extractor_name(name)
    try:
        if grid := grid_of(name, "pixels"):
            return PixelExtractor(grid=grid)
        if grid := grid_of(name, "layout"):
            return LayoutExtractor(grid=grid)
        if name == "inception" or name.startswith("inception:"):
            from eval_protocols.features.inception import InceptionFeatures

            resize = name.split(":", 1)[1] if ":" in name else "tf1-bilinear"
            return InceptionFeatures(resize=resize, device=device)  # type: ignore[arg-type]
        if name == "clip:toy":
            return toy_clip(device=device)
        if name.startswith("clip:") and name.count(":") >= 2:
            from eval_protocols.features.clip import OpenClipFeatures

            _, arch, checkpoint = name.split(":", 2)
            return OpenClipFeatures(arch, checkpoint, device=device)
    except ValueError as exc:  # MissingWeightsError is a ValueError with the whole fix in its message
        raise HarnessError(str(exc)) from None
    raise AssertionError(f"check_extractor_name passed {name!r} but no extractor matched")  # pragma: no cover


def metric_extractor_name(spec: MetricSpec, metrics: MetricsConfig) -> str:
    """The extractor a run config gives metric ``spec``, first rule that applies:

    1. ``metrics.extractors[<metric>]`` (an explicit choice);
    2. ``metrics.clip_extractor`` for a metric that reads caption embeddings (`MetricSpec.needs_text`), or that is
       defined on CLIP embeddings (`MetricSpec.clip_features`) when a CLIP is set;
    3. the extractor the metric is defined on (`MetricSpec.extractor`: ``layout`` for ``layout_diversity``);
    4. ``metrics.extractor``.
    """
    if spec.name in metrics.extractors:
        return metrics.extractors[spec.name]
    if metrics.clip_extractor and (spec.needs_text or spec.clip_features):
        return metrics.clip_extractor
    return spec.extractor or metrics.extractor


class MissingToyCheckpointError(HarnessError):
    """A toy checkpoint is not in `harness.paths.toy_checkpoint_dir` (callers for which it is optional catch it)."""


def toy_clip(*, checkpoints: Path | None = None, device: str = "cpu") -> OpenClipFeatures:
    """The toy CLIP (image features; ``encode_text`` for captions) from ``clip_toy.{json,safetensors}``.

    Args:
        checkpoints: the folder (default `harness.paths.toy_checkpoint_dir`).

    Raises:
        MissingToyCheckpointError: a file is missing (the message says how to get it).
    """
    from eval_protocols.features.clip import OpenClipFeatures

    folder = checkpoints or toy_checkpoint_dir()
    meta, weights = folder / "clip_toy.json", folder / "clip_toy.safetensors"
    if not (meta.is_file() and weights.is_file()):
        raise MissingToyCheckpointError(
            f"the toy CLIP is missing ({meta.with_suffix('')}.{{json,safetensors}}); it ships with the source tree "
            "(git checkout; set HARNESS_TOY_CHECKPOINTS for another folder), or train it with "
            "`harness train clip --export checkpoints/toy/clip_toy`"
        )
    config = json.loads(meta.read_text(encoding="utf-8"))["model_config"]
    return OpenClipFeatures(config, weights, device=device)


def toy_oracle(*, checkpoints: Path | None = None) -> ToyAttributeOracle:
    """The toy attribute oracle from ``oracle.{json,safetensors}``.

    Raises:
        MissingToyCheckpointError: a file is missing.
    """
    from eval_protocols.features.oracle import ToyAttributeOracle

    folder = checkpoints or toy_checkpoint_dir()
    if not ((folder / "oracle.json").is_file() and (folder / "oracle.safetensors").is_file()):
        raise MissingToyCheckpointError(
            f"the toy attribute oracle is missing ({folder}/oracle.{{json,safetensors}}); it ships with the source "
            "tree, or train it with `harness train oracle --export checkpoints/toy/oracle`"
        )
    return ToyAttributeOracle.from_checkpoint(folder / "oracle")
