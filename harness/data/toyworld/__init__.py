"""The toy world: a deterministic procedural renderer of captioned scenes (see DESIGN.md, "The toy world").

Scenes hold 1 to 3 objects (shape, colour, size, position, relations) over a solid, gradient or textured
background, lit by one light that shades every object and casts every drop shadow. Captions come from a grammar
with paraphrases; what a caption leaves open is drawn at random. Everything is a function of
``(seed, index, split)``; the ``test`` split holds out (shape, colour) pairs never seen in ``train``/``val``.

Modules: `vocab` (words and their meaning), `splits` (hold-out, seeding), `captions` (grammar, parser),
`scene` (specs, sampler), `shapes` (outline geometry), `render` (rasteriser), `export` (PNG folders and prompt
sets for ``harness toy``).

Example::

    from harness.data import toyworld
    scene = toyworld.sample_scene(seed=0, index=7, split="train")
    image = toyworld.render_scene(scene, size=32)      # (32, 32, 3) uint8
    scene.caption, scene.to_dict()["objects"]
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from harness.data.toyworld.captions import CaptionSpec, ObjectMention, caption_text, parse_caption
from harness.data.toyworld.render import BASE_SIZE, RENDER_SIZES, area_downsample, render_scene
from harness.data.toyworld.scene import (
    BACKGROUND_KINDS,
    BackgroundSpec,
    LightSpec,
    ObjectSpec,
    SceneSpec,
    sample_described_object,
    sample_scene,
    scene_from_caption,
    shape_twin,
)
from harness.data.toyworld.splits import HELD_OUT_PAIRS, SPLITS, get_split
from harness.data.toyworld.vocab import COLOUR_NAMES, COLOURS, RELATIONS, SHAPES, SIZES, relation_holds

__all__ = [
    "BACKGROUND_KINDS",
    "BASE_SIZE",
    "COLOURS",
    "COLOUR_NAMES",
    "HELD_OUT_PAIRS",
    "RELATIONS",
    "RENDER_SIZES",
    "SHAPES",
    "SIZES",
    "SPLITS",
    "BackgroundSpec",
    "CaptionSpec",
    "LightSpec",
    "ObjectMention",
    "ObjectSpec",
    "SceneSpec",
    "area_downsample",
    "caption_scene",
    "get_split",
    "iter_scenes",
    "parse_caption",
    "relation_holds",
    "render_caption",
    "render_scene",
    "sample_described_object",
    "sample_scene",
    "shape_twin",
]


def iter_scenes(n: int, split: str = "train", seed: int = 0, start: int = 0) -> Iterator[SceneSpec]:
    """Scenes ``start .. start + n - 1`` of ``split`` under ``seed`` (each independent of the others).

    Raises:
        ValueError: negative ``n`` or ``start``, or an unknown split.
    """
    if n < 0 or start < 0:
        raise ValueError(f"n and start must be non-negative, got n={n}, start={start}")
    get_split(split)
    for index in range(start, start + n):
        yield sample_scene(seed, index, split)


def caption_scene(scene: SceneSpec, seed: int = 0) -> str:
    """A paraphrase of what ``scene``'s caption asserts, drawn with ``seed`` (``scene.caption`` is one of them).

    Useful for text augmentation: every paraphrase parses back to ``scene.caption_spec``.
    """
    return caption_text(scene.caption_spec, np.random.default_rng(np.random.SeedSequence([int(seed), 0xCA7])))


def render_caption(caption_text: str, seed: int = 0, size: int = BASE_SIZE) -> tuple[np.ndarray, SceneSpec]:
    """A real render of a fresh scene matching a caption of the toy-world grammar.

    What the caption leaves open (colours or sizes it does not name, positions, background, light) is drawn with
    ``seed``, so different seeds give different images of one caption.

    Args:
        caption_text: a caption such as ``"a small red circle above a blue star"``.
        seed: non-negative render seed.
        size: 64 or 32.

    Returns:
        ``(image, scene)``: (size, size, 3) uint8 RGB and the scene it shows (``split == "caption"``).

    Raises:
        ValueError: the text is outside the grammar, or a bad seed or size.
    """
    scene = scene_from_caption(parse_caption(caption_text), caption_text, seed)
    return render_scene(scene, size), scene
