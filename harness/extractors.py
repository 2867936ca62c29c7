"""Build feature extractors from the names used in run configs (``metrics.extractor``) and on the command line.

Names:

* ``pixels`` / ``pixels-g<k>`` — weight-free area-pooled RGB (`eval_protocols.features.pixels`), for the toy world;
* ``inception`` — InceptionV3 pool3 for FID from a local weights file (``$HARNESS_INCEPTION_WEIGHTS``);
  ``inception:antialias-bilinear`` selects the other resize mode;
* ``clip:<arch>:<checkpoint path>`` — open_clip image features of any architecture from a local checkpoint;
* ``clip:toy`` — the shipped toy CLIP (``checkpoints/toy/clip_toy``, architecture ``models/configs/clip_toy.json``).

Metrics never build extractors: the harness does, here, and passes them in.
"""

from __future__ import annotations

from eval_protocols.features.base import FeatureExtractor
from harness.errors import ConfigError, HarnessError

EXTRACTOR_NAMES = (
    "pixels", "pixels-g<k>", "inception", "inception:<resize mode>", "clip:<arch>:<checkpoint>", "clip:toy"
)


def build_extractor(name: str, *, device: str = "cpu") -> FeatureExtractor:
    """The extractor called ``name`` (see the module docstring).

    Raises:
        ConfigError: unknown name. HarnessError: a weights file is missing (the message says where to get it).
    """
    from eval_protocols.features.pixels import PixelExtractor

    try:
        if name == "pixels":
            return PixelExtractor()
        if name.startswith("pixels-g") and name[8:].isdigit():
            return PixelExtractor(grid=int(name[8:]))
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
    raise ConfigError(f"unknown feature extractor {name!r}; use one of {', '.join(EXTRACTOR_NAMES)}")


def toy_clip(*, device: str = "cpu") -> FeatureExtractor:
    """The shipped toy CLIP as an extractor (image features; ``encode_text`` for captions)."""
    import json

    from eval_protocols.features.clip import OpenClipFeatures
    from models.factory import DEFAULT_CHECKPOINT_DIR

    meta_path = DEFAULT_CHECKPOINT_DIR / "clip_toy.json"
    if not meta_path.is_file():
        raise HarnessError(
            f"the toy CLIP is missing ({meta_path}); it ships with the source tree (git checkout), or train it with "
            "`harness train clip --export checkpoints/toy/clip_toy`"
        )
    config = json.loads(meta_path.read_text(encoding="utf-8"))["model_config"]
    return OpenClipFeatures(config, DEFAULT_CHECKPOINT_DIR / "clip_toy.safetensors", device=device)
