"""Scenes of the toy world: frozen specs of what is where, and the seeded sampler that draws them.

A scene is drawn caption first: the sampler picks the objects' attributes, decides which of them the caption
names (`CaptionSpec`), then draws everything the caption leaves open (unnamed sizes, exact radii, positions,
rotation, background, light) at random, subject to the caption being true (relations hold, objects do not
overlap, every object lies inside the frame). The same code realises a parsed caption (`scene_from_caption`),
which is how the reference generator renders a prompt.

Everything is a deterministic function of ``(seed, index, split)`` through `splits.scene_rng`.
"""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from harness.data.toyworld.captions import CaptionSpec, ObjectMention, caption_text
from harness.data.toyworld.splits import get_split, scene_rng
from harness.data.toyworld.vocab import (
    COLOUR_NAMES,
    COLOURS,
    RELATIONS,
    SHAPE_EXTENT,
    SHAPES,
    SIZE_JITTER,
    SIZE_RADIUS,
    SIZES,
    check_word,
    relation_holds,
    relation_mask,
)

BACKGROUND_KINDS: Final[tuple[str, ...]] = ("solid", "gradient", "texture")

N_OBJECTS_P: Final[tuple[float, float, float]] = (0.4, 0.35, 0.25)  # P(1), P(2), P(3) objects
COLOUR_NAMED_P: Final[float] = 0.85  # a caption names an object's colour (always for a held-out pair)
SIZE_NAMED_P: Final[float] = 0.4
RELATION_P: Final[float] = 0.5  # with two or more objects, the caption states a relation
MAX_ROTATION_DEG: Final[float] = 12.0  # small enough that a square never reads as a diamond
SHADOW_LENGTH_RANGE: Final[tuple[float, float]] = (0.035, 0.07)
PLACEMENT_MARGIN: Final[float] = 0.01  # min gap between objects' bounding circles, and to the frame
_PLACEMENT_BATCH: Final[int] = 64
_PLACEMENT_ROUNDS: Final[int] = 256


@dataclass(frozen=True)
class ObjectSpec:
    """One object of a scene.

    Attributes:
        shape: a word of `vocab.SHAPES`.
        colour: a word of `vocab.COLOURS` (its RGB is ``vocab.COLOURS[colour]``).
        size: a word of `vocab.SIZES`; ``radius`` lies within `SIZE_JITTER` of its nominal radius.
        x: centre, left to right in [0, 1].
        y: centre, top to bottom in [0, 1].
        radius: fraction of the image width; the shape reaches ``radius * SHAPE_EXTENT[shape]`` from its centre.
        rotation: degrees, counter-clockwise on screen.
    """

    shape: str
    colour: str
    size: str
    x: float
    y: float
    radius: float
    rotation: float = 0.0

    def __post_init__(self) -> None:
        check_word("shape", self.shape, SHAPES)
        check_word("colour", self.colour, COLOUR_NAMES)
        check_word("size", self.size, SIZES)
        if not (0.0 <= self.x <= 1.0 and 0.0 <= self.y <= 1.0 and self.radius > 0.0):
            raise ValueError(f"object centre must lie in [0, 1]^2 with a positive radius, got {self}")

    @property
    def rgb(self) -> tuple[int, int, int]:
        """Base colour before shading, uint8 RGB."""
        return COLOURS[self.colour]

    @property
    def extent(self) -> float:
        """Farthest reach of the shape from its centre, as a fraction of the image width."""
        return self.radius * SHAPE_EXTENT[self.shape]


@dataclass(frozen=True)
class BackgroundSpec:
    """The backdrop behind the objects.

    Attributes:
        kind: ``solid`` (``colour``), ``gradient`` (linear from ``colour`` to ``colour2`` along ``angle``) or
            ``texture`` (``colour`` and ``colour2`` mixed by a sum of sinusoids seeded by ``texture_seed``).
        colour: uint8 RGB.
        colour2: uint8 RGB (equal to ``colour`` for ``solid``).
        angle: gradient direction, degrees counter-clockwise from +x.
        texture_seed: seed of the texture's frequencies and phases.
    """

    kind: str
    colour: tuple[int, int, int]
    colour2: tuple[int, int, int]
    angle: float = 0.0
    texture_seed: int = 0

    def __post_init__(self) -> None:
        check_word("background kind", self.kind, BACKGROUND_KINDS)


@dataclass(frozen=True)
class LightSpec:
    """The single light of a scene: it shades every object and casts every drop shadow.

    Attributes:
        angle: direction *towards* the light, degrees counter-clockwise on screen from +x (90 = from the top).
        shadow_length: offset of each drop shadow, fraction of the image width, pointing away from the light.
    """

    angle: float
    shadow_length: float

    @property
    def vector(self) -> tuple[float, float]:
        """Unit vector towards the light in image coordinates (x right, y down): ``(cos a, -sin a)``."""
        a = math.radians(self.angle)
        return (math.cos(a), -math.sin(a))


@dataclass(frozen=True)
class SceneSpec:
    """A complete, renderable scene with its caption.

    Attributes:
        objects: 1 to 3 objects, in the order the caption names them.
        background: the backdrop.
        light: the light.
        caption: the caption text (one paraphrase of ``caption_spec``).
        caption_spec: what the caption asserts; true of this scene.
        split: ``train`` | ``val`` | ``test``, or ``caption`` for a scene realised from a given caption.
        seed: dataset seed (or render seed for ``caption`` scenes).
        index: index within the split.
    """

    objects: tuple[ObjectSpec, ...]
    background: BackgroundSpec
    light: LightSpec
    caption: str
    caption_spec: CaptionSpec
    split: str
    seed: int
    index: int

    def caption_mismatches(self, spec: CaptionSpec | None = None) -> tuple[str, ...]:
        """What in ``spec`` (default: this scene's own caption spec) is false of the scene; empty when all true."""
        spec = self.caption_spec if spec is None else spec
        if len(spec.objects) != len(self.objects):
            return (f"caption names {len(spec.objects)} objects, the scene has {len(self.objects)}",)
        problems = []
        for i, (mention, obj) in enumerate(zip(spec.objects, self.objects, strict=True)):
            for attr in ("shape", "colour", "size"):
                said, actual = getattr(mention, attr), getattr(obj, attr)
                if said is not None and said != actual:
                    problems.append(f"object {i}: caption says {attr} {said!r}, the scene has {actual!r}")
        if spec.relation is not None:
            a, b = self.objects[0], self.objects[1]
            if not relation_holds((a.x, a.y), (b.x, b.y), spec.relation):
                problems.append(f"object 0 is not {spec.relation} object 1")
        return tuple(problems)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable description: objects with attributes and positions, background, light, caption, and
        which attributes the caption fixes (``fixed``). `from_dict` inverts it."""
        return {
            "split": self.split,
            "seed": self.seed,
            "index": self.index,
            "caption": self.caption,
            "caption_spec": self.caption_spec.to_dict(),
            "fixed": self.caption_spec.fixed(),
            "objects": [
                {
                    "shape": o.shape,
                    "colour": o.colour,
                    "rgb": list(o.rgb),
                    "size": o.size,
                    "x": o.x,
                    "y": o.y,
                    "radius": o.radius,
                    "rotation": o.rotation,
                }
                for o in self.objects
            ],
            "background": {
                "kind": self.background.kind,
                "colour": list(self.background.colour),
                "colour2": list(self.background.colour2),
                "angle": self.background.angle,
                "texture_seed": self.background.texture_seed,
            },
            "light": {
                "angle": self.light.angle,
                "vector": list(self.light.vector),
                "shadow_length": self.light.shadow_length,
            },
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SceneSpec:
        """Inverse of `to_dict` (derived fields such as ``rgb`` and ``fixed`` are ignored)."""
        objects = tuple(
            ObjectSpec(o["shape"], o["colour"], o["size"], o["x"], o["y"], o["radius"], o["rotation"])
            for o in data["objects"]
        )
        bg = data["background"]
        background = BackgroundSpec(
            bg["kind"], _rgb(bg["colour"]), _rgb(bg["colour2"]), float(bg["angle"]), int(bg["texture_seed"])
        )
        light = LightSpec(float(data["light"]["angle"]), float(data["light"]["shadow_length"]))
        return cls(
            objects=objects,
            background=background,
            light=light,
            caption=data["caption"],
            caption_spec=CaptionSpec.from_dict(data["caption_spec"]),
            split=data["split"],
            seed=int(data["seed"]),
            index=int(data["index"]),
        )


def _rgb(values: Any) -> tuple[int, int, int]:
    r, g, b = (int(v) for v in values)
    return (r, g, b)


# --- sampling ------------------------------------------------------------------------------------------------------


def sample_scene(seed: int, index: int, split: str = "train") -> SceneSpec:
    """Scene ``index`` of ``split`` under ``seed``: a deterministic function of the three.

    Args:
        seed: non-negative dataset seed.
        index: non-negative scene index.
        split: ``train``, ``val`` or ``test`` (see `splits`).

    Returns:
        The scene, its caption true of it.

    Raises:
        ValueError: unknown split, or a negative seed or index.
    """
    rng = scene_rng(seed, index, split)
    split_spec = get_split(split)
    n = int(rng.choice(len(N_OBJECTS_P), p=N_OBJECTS_P)) + 1
    pairs = [split_spec.pairs[int(rng.integers(len(split_spec.pairs)))] for _ in range(n)]
    if split_spec.required_pairs:
        slot = int(rng.integers(n))
        pairs[slot] = split_spec.required_pairs[int(rng.integers(len(split_spec.required_pairs)))]
    mentions = []
    for shape, colour in pairs:
        size = SIZES[int(rng.integers(len(SIZES)))]
        colour_named = (shape, colour) in split_spec.required_pairs or rng.random() < COLOUR_NAMED_P
        size_named = rng.random() < SIZE_NAMED_P
        mentions.append(
            (ObjectMention(shape, colour if colour_named else None, size if size_named else None), colour, size)
        )
    relation = RELATIONS[int(rng.integers(len(RELATIONS)))] if n >= 2 and rng.random() < RELATION_P else None
    spec = CaptionSpec(objects=tuple(m for m, _, _ in mentions), relation=relation)
    attributes = [(m.shape, colour, size) for m, colour, size in mentions]
    return _realise(spec, attributes, rng, caption=caption_text(spec, rng), split=split, seed=seed, index=index)


def sample_described_object(seed: int, index: int, split: str = "train") -> SceneSpec:
    """Scene ``index`` of ``split``'s *described-object* stream under ``seed``: one object, all attributes named.

    `sample_scene` draws one object in 40% of scenes and its caption leaves the colour open 15% and the size 60%
    of the time; this stream is the complement a text-to-image trainer can mix in (``ImageDataSpec.described_p``):
    one object of the split's (shape, colour) pairs (a required pair where the split has them, so held-out pairs
    stay out of ``train``), any size, the caption naming shape, colour and size. Independent of `sample_scene`'s
    draws for the same ``(seed, index, split)``.

    Raises:
        ValueError: unknown split, or a negative seed or index.
    """
    parent = scene_rng(seed, index, split).bit_generator.seed_seq
    assert isinstance(parent, np.random.SeedSequence)  # what default_rng(seed) always builds
    rng = np.random.default_rng(parent.spawn(1)[0])
    split_spec = get_split(split)
    pairs = split_spec.required_pairs or split_spec.pairs
    shape, colour = pairs[int(rng.integers(len(pairs)))]
    size = SIZES[int(rng.integers(len(SIZES)))]
    spec = CaptionSpec(objects=(ObjectMention(shape, colour, size),), relation=None)
    return _realise(
        spec, [(shape, colour, size)], rng, caption=caption_text(spec, rng), split=split, seed=seed, index=index
    )


def shape_twin(scene: SceneSpec, seed: int) -> SceneSpec:
    """The same scene with every object's shape changed: a hard negative that only shape tells apart.

    Each object gets another shape drawn (with ``seed``) among those whose (shape, colour) pair the scene's split
    allows; colour, size, radius, position, rotation (none for circles), background and light stay, so the relation
    the caption states still holds. The caption asserts the same as the original's with the new shapes (a fresh
    wording drawn with ``seed``). Contrastive training needs such pairs: random toy scenes differ in colour far more
    often than in shape alone, so without them a CLIP can match captions to images while hardly encoding shape.

    Raises:
        ValueError: a negative seed, a scene of no split (``caption``), or a split with required pairs (``test``),
            where a twin could lose them.
    """
    if seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed}")
    split_spec = get_split(scene.split)
    if split_spec.required_pairs:
        raise ValueError(f"shape twins are defined for splits without required pairs, not {scene.split!r}")
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), scene.index, 0x7A1]))
    objects = []
    for obj in scene.objects:
        options = [s for s in SHAPES if s != obj.shape and (s, obj.colour) in split_spec.pairs]
        shape = options[int(rng.integers(len(options)))]
        rotation = 0.0 if shape == "circle" else obj.rotation
        objects.append(ObjectSpec(shape, obj.colour, obj.size, obj.x, obj.y, obj.radius, rotation))
    mentions = tuple(
        ObjectMention(o.shape, m.colour, m.size) for o, m in zip(objects, scene.caption_spec.objects, strict=True)
    )
    spec = CaptionSpec(objects=mentions, relation=scene.caption_spec.relation)
    return SceneSpec(
        objects=tuple(objects),
        background=scene.background,
        light=scene.light,
        caption=caption_text(spec, rng),
        caption_spec=spec,
        split=scene.split,
        seed=scene.seed,
        index=scene.index,
    )


def scene_from_caption(spec: CaptionSpec, caption: str, seed: int) -> SceneSpec:
    """A fresh scene of which ``spec`` is true; what it leaves open is drawn with ``seed``.

    Args:
        spec: the parsed caption.
        caption: the caption text, kept verbatim in the scene.
        seed: non-negative render seed (different seeds give different scenes for one caption).

    Returns:
        A scene with ``split == "caption"``.
    """
    if seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed}")
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0xCA9]))
    attributes = [
        (
            m.shape,
            m.colour or COLOUR_NAMES[int(rng.integers(len(COLOUR_NAMES)))],
            m.size or SIZES[int(rng.integers(len(SIZES)))],
        )
        for m in spec.objects
    ]
    return _realise(spec, attributes, rng, caption=caption, split="caption", seed=seed, index=0)


def _realise(
    spec: CaptionSpec,
    attributes: list[tuple[str, str, str]],
    rng: np.random.Generator,
    *,
    caption: str,
    split: str,
    seed: int,
    index: int,
) -> SceneSpec:
    """Draw radii, rotations, positions, background and light for objects of the given (shape, colour, size)."""
    radii = [SIZE_RADIUS[size] * rng.uniform(1 - SIZE_JITTER, 1 + SIZE_JITTER) for _, _, size in attributes]
    rotations = [
        0.0 if shape == "circle" else rng.uniform(-MAX_ROTATION_DEG, MAX_ROTATION_DEG) for shape, _, _ in attributes
    ]
    extents = np.array([r * SHAPE_EXTENT[shape] for r, (shape, _, _) in zip(radii, attributes, strict=True)])
    centres = place_objects(extents, spec.relation, rng)
    objects = tuple(
        ObjectSpec(shape, colour, size, float(cx), float(cy), float(r), float(rot))
        for (shape, colour, size), (cx, cy), r, rot in zip(attributes, centres, radii, rotations, strict=True)
    )
    return SceneSpec(
        objects=objects,
        background=sample_background(rng),
        light=LightSpec(angle=float(rng.uniform(0.0, 360.0)), shadow_length=float(rng.uniform(*SHADOW_LENGTH_RANGE))),
        caption=caption,
        caption_spec=spec,
        split=split,
        seed=int(seed),
        index=int(index),
    )


def place_objects(extents: np.ndarray, relation: str | None, rng: np.random.Generator) -> np.ndarray:
    """Centres for objects of the given extents: inside the frame, not overlapping, ``relation`` holding.

    Sequential rejection sampling: object ``i`` takes the first of a batch of uniform candidates that keeps its
    bounding circle clear of the objects already placed (and, for object 1, satisfies the relation to object 0);
    a dead end restarts the layout.

    Args:
        extents: (n,) reach of each object from its centre (fraction of the image width).
        relation: relation of object 0 to object 1, or None.
        rng: source of the candidates.

    Returns:
        (n, 2) centres ``(x, y)`` in [0, 1].

    Raises:
        RuntimeError: no valid layout was found (the size table makes this practically impossible).
    """
    lo = extents + PLACEMENT_MARGIN
    for _ in range(_PLACEMENT_ROUNDS):
        placed: list[np.ndarray] = []
        for i in range(len(extents)):
            cand = lo[i] + rng.random((_PLACEMENT_BATCH, 2)) * (1.0 - 2.0 * lo[i])
            ok = np.ones(_PLACEMENT_BATCH, dtype=bool)
            for j, centre in enumerate(placed):
                ok &= np.hypot(*(cand - centre).T) >= extents[i] + extents[j] + PLACEMENT_MARGIN
            if i == 1 and relation is not None:
                ok &= relation_mask(cand[:, 0] - placed[0][0], cand[:, 1] - placed[0][1], relation)
            hits = np.flatnonzero(ok)
            if not hits.size:
                break
            placed.append(cand[hits[0]])
        else:
            return np.array(placed).reshape(len(extents), 2)
    raise RuntimeError(f"could not place objects of extents {extents.tolist()} with relation {relation!r}")


def sample_background(rng: np.random.Generator) -> BackgroundSpec:
    """A muted backdrop (low saturation, mid value) so that every object colour stands out against it."""
    kind = BACKGROUND_KINDS[int(rng.integers(len(BACKGROUND_KINDS)))]
    hue, sat, val = rng.uniform(0.0, 1.0), rng.uniform(0.04, 0.28), rng.uniform(0.3, 0.78)
    colour = _hsv_to_rgb(hue, sat, val)
    if kind == "solid":
        colour2 = colour
    else:
        spread = rng.uniform(0.12, 0.25) if kind == "gradient" else rng.uniform(0.06, 0.12)
        val2 = val + spread if val + spread <= 0.85 else val - spread
        colour2 = _hsv_to_rgb((hue + rng.uniform(-0.08, 0.08)) % 1.0, sat, val2)
    return BackgroundSpec(
        kind=kind,
        colour=colour,
        colour2=colour2,
        angle=float(rng.uniform(0.0, 360.0)),
        texture_seed=int(rng.integers(2**31)),
    )


def _hsv_to_rgb(h: float, s: float, v: float) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb(h, s, v)
    return (round(r * 255), round(g * 255), round(b * 255))
