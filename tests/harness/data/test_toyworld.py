"""The toy world: determinism, caption truth, shading and shadows, splits, anti-aliasing and downsampling."""

from __future__ import annotations

import hashlib
import json
import math
import subprocess
import sys
from itertools import combinations

import numpy as np
import pytest

from harness.data import toyworld
from harness.data.toyworld import render as render_mod
from harness.data.toyworld.scene import BackgroundSpec, LightSpec, ObjectSpec, SceneSpec
from harness.data.toyworld.shapes import SHAPE_BOUNDS
from harness.data.toyworld.vocab import SHAPE_EXTENT, SIZE_RADIUS

LUMA = np.array([0.299, 0.587, 0.114])


def scenes(split: str, n: int, seed: int = 0) -> list[SceneSpec]:
    return list(toyworld.iter_scenes(n, split=split, seed=seed))


def single_object_scene(shape: str = "circle", light_angle: float = 45.0, rotation: float = 0.0) -> SceneSpec:
    obj = ObjectSpec(shape, "blue", "large", 0.5, 0.5, 0.2, rotation)
    return SceneSpec(
        objects=(obj,),
        background=BackgroundSpec("solid", (150, 150, 150), (150, 150, 150)),
        light=LightSpec(angle=light_angle, shadow_length=0.07),
        caption=f"a large blue {shape}",
        caption_spec=toyworld.parse_caption(f"a large blue {shape}"),
        split="caption",
        seed=0,
        index=0,
    )


def brute_force_coverage(obj: ObjectSpec, size: int, ss: int) -> np.ndarray:
    """Reference: test every one of ss x ss samples of every pixel of the frame."""
    sub = (np.arange(ss) + 0.5) / ss
    xs = (np.arange(size)[:, None] + sub[None, :]).ravel() - obj.x * size
    ys = (np.arange(size)[:, None] + sub[None, :]).ravel() - obj.y * size
    a = math.radians(obj.rotation)
    r = obj.radius * size
    u = (math.cos(a) * xs[None, :] - math.sin(a) * ys[:, None]) / r
    v = (math.sin(a) * xs[None, :] + math.cos(a) * ys[:, None]) / r
    inside = SHAPE_BOUNDS[obj.shape](u, v) <= 0.0
    return inside.reshape(size, ss, size, ss).mean(axis=(1, 3))


def full_coverage(obj: ObjectSpec, size: int = 64) -> np.ndarray:
    out = np.zeros((size, size))
    window = render_mod.object_coverage(obj, size)
    if window is not None:
        (ys, xs), cov = window
        out[ys, xs] = cov
    return out


# --- vocabulary -----------------------------------------------------------------------------------------------------


def test_vocabulary_meets_the_design() -> None:
    assert len(toyworld.SHAPES) >= 6 and len(toyworld.COLOURS) >= 8
    assert toyworld.SIZES == ("small", "medium", "large")
    assert set(toyworld.RELATIONS) == {"left of", "right of", "above", "below"}
    assert all(len(rgb) == 3 and all(0 <= c <= 255 for c in rgb) for rgb in toyworld.COLOURS.values())
    assert set(SHAPE_BOUNDS) == set(toyworld.SHAPES) == set(SHAPE_EXTENT)


def test_shapes_are_distinct_bounded_and_comparable_in_area() -> None:
    grid = np.linspace(-1.5, 1.5, 601)
    u, v = np.meshgrid(grid, grid)
    cell = (grid[1] - grid[0]) ** 2
    masks = {name: bound(u, v) <= 0 for name, bound in SHAPE_BOUNDS.items()}
    for name, mask in masks.items():
        assert np.hypot(u, v)[mask].max() <= SHAPE_EXTENT[name] + 1e-9, name
        assert 1.7 <= mask.sum() * cell <= 3.2, (name, mask.sum() * cell)
    for a, b in combinations(masks, 2):
        iou = (masks[a] & masks[b]).sum() / (masks[a] | masks[b]).sum()
        assert iou < 0.9, (a, b, iou)


def test_relation_predicate() -> None:
    assert toyworld.relation_holds((0.2, 0.5), (0.7, 0.55), "left of")
    assert toyworld.relation_holds((0.7, 0.5), (0.2, 0.5), "right of")
    assert toyworld.relation_holds((0.5, 0.2), (0.45, 0.8), "above")  # y grows downwards
    assert toyworld.relation_holds((0.5, 0.8), (0.5, 0.2), "below")
    assert not toyworld.relation_holds((0.2, 0.2), (0.3, 0.8), "left of")  # mostly vertical: not "left of"
    assert not toyworld.relation_holds((0.5, 0.5), (0.55, 0.5), "left of")  # too close to tell
    with pytest.raises(ValueError, match="unknown relation"):
        toyworld.relation_holds((0, 0), (1, 1), "near")


# --- determinism ----------------------------------------------------------------------------------------------------


def test_same_seed_index_split_gives_identical_bytes() -> None:
    for split in toyworld.SPLITS:
        for index in (0, 17, 123):
            a, b = toyworld.sample_scene(3, index, split), toyworld.sample_scene(3, index, split)
            assert a == b
            assert toyworld.render_scene(a).tobytes() == toyworld.render_scene(b).tobytes()


def test_different_seed_index_or_split_gives_different_images() -> None:
    base = toyworld.render_scene(toyworld.sample_scene(0, 5, "train")).tobytes()
    for other in (
        toyworld.sample_scene(0, 6, "train"),
        toyworld.sample_scene(1, 5, "train"),
        toyworld.sample_scene(0, 5, "val"),
    ):
        assert toyworld.render_scene(other).tobytes() != base
    digests = {hashlib.sha256(toyworld.render_scene(s).tobytes()).digest() for s in scenes("train", 100)}
    assert len(digests) == 100


def test_renders_are_identical_in_a_fresh_process() -> None:
    """No hidden state (hash seeds, caches, call order) leaks into an image."""
    code = (
        "import hashlib; from harness.data import toyworld as t; "
        "print(','.join(hashlib.sha256(t.render_scene(t.sample_scene(7, i, 'test'), 32).tobytes()).hexdigest() "
        "for i in (3, 0, 9)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    here = [
        hashlib.sha256(toyworld.render_scene(toyworld.sample_scene(7, i, "test"), 32).tobytes()).hexdigest()
        for i in (3, 0, 9)
    ]
    assert out.stdout.strip() == ",".join(here)


def test_iter_scenes_matches_sample_scene() -> None:
    got = list(toyworld.iter_scenes(5, split="val", seed=2, start=10))
    assert got == [toyworld.sample_scene(2, i, "val") for i in range(10, 15)]


# --- captions -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("split", toyworld.SPLITS)
def test_captions_parse_back_and_are_true_of_their_scenes(split: str) -> None:
    for scene in scenes(split, 300, seed=11):
        spec = toyworld.parse_caption(scene.caption)
        assert spec == scene.caption_spec, scene.caption
        assert len(spec.objects) == len(scene.objects)
        for mention, obj in zip(spec.objects, scene.objects, strict=True):
            assert mention.shape == obj.shape
            assert mention.colour in (None, obj.colour)
            assert mention.size in (None, obj.size)
        if spec.relation is not None:
            (a, b) = scene.objects[:2]
            dx, dy = b.x - a.x, b.y - a.y
            expected = {"left of": dx > 0.1, "right of": dx < -0.1, "above": dy > 0.1, "below": dy < -0.1}
            assert expected[spec.relation], (scene.caption, dx, dy)
        assert scene.caption_mismatches() == ()


def test_captions_use_paraphrases_and_leave_attributes_open() -> None:
    sample = scenes("train", 400, seed=4)
    captions = [s.caption for s in sample]
    assert sum(c.startswith("there is ") for c in captions) > 20
    assert sum(c.startswith("a picture of ") for c in captions) > 20
    assert any(" to the left of " in c for c in captions) and any(
        " left of " in c and " the " not in c for c in captions
    )
    assert any(" under " in c or " beneath " in c for c in captions)
    mentions = [m for s in sample for m in s.caption_spec.objects]
    assert 0.2 < np.mean([m.size is None for m in mentions]) < 0.9
    assert 0.02 < np.mean([m.colour is None for m in mentions]) < 0.4
    assert {len(s.objects) for s in sample} == {1, 2, 3}


def test_caption_scene_paraphrases_parse_to_the_same_spec() -> None:
    scene = next(s for s in scenes("train", 200) if s.caption_spec.relation and len(s.objects) == 3)
    texts = {toyworld.caption_scene(scene, seed=k) for k in range(30)}
    assert len(texts) > 3
    assert all(toyworld.parse_caption(t) == scene.caption_spec for t in texts)


def test_parse_caption_accepts_case_and_full_stop() -> None:
    spec = toyworld.parse_caption("There is a Small Blue square to the left of a green star.")
    assert spec.relation == "left of"
    assert spec.objects[0] == toyworld.ObjectMention("square", "blue", "small")
    assert spec.objects[1] == toyworld.ObjectMention("star", "green", None)
    spec = toyworld.parse_caption("a scene with an orange circle, a star, and a large cross")
    assert spec.relation is None and [m.shape for m in spec.objects] == ["circle", "star", "cross"]
    assert spec.objects[0].colour == "orange" and spec.objects[2].size == "large"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "empty"),
        ("a purple elephant", "expected a shape"),
        ("a red circle and", "expected 'a' or 'an'"),
        ("a red circle next to a blue square", "expected the end"),
        ("two red circles", "expected 'a' or 'an'"),
        ("a red circle!", "unexpected character"),
        ("a red circle, a blue star, a green cross and a red square", "expected 'and'"),
    ],
)
def test_parse_caption_rejects_text_outside_the_grammar(text: str, fragment: str) -> None:
    with pytest.raises(ValueError, match="not a toy-world caption") as exc:
        toyworld.parse_caption(text)
    assert fragment in str(exc.value) and "\n" not in str(exc.value)


def test_render_caption_fixes_what_the_caption_says_and_varies_the_rest() -> None:
    results = [toyworld.render_caption("a circle", seed=k, size=32) for k in range(24)]
    assert all(img.shape == (32, 32, 3) and img.dtype == np.uint8 for img, _ in results)
    assert all(scene.objects[0].shape == "circle" and len(scene.objects) == 1 for _, scene in results)
    assert len({scene.objects[0].colour for _, scene in results}) >= 4
    assert len({scene.objects[0].size for _, scene in results}) == 3
    assert len({scene.background.kind for _, scene in results}) == 3
    assert len({img.tobytes() for img, _ in results}) == 24

    text = "a large orange circle below a small cyan square"  # both pairs held out of training
    for k in range(10):
        image, scene = toyworld.render_caption(text, seed=k)
        assert scene.caption == text and scene.caption_mismatches() == ()
        assert (scene.objects[0].colour, scene.objects[0].size) == ("orange", "large")
        assert image.shape == (64, 64, 3)
    a, _ = toyworld.render_caption(text, seed=3)
    b, _ = toyworld.render_caption(text, seed=3)
    assert a.tobytes() == b.tobytes()


def test_render_caption_rejects_foreign_prompts() -> None:
    with pytest.raises(ValueError, match="not a toy-world caption"):
        toyworld.render_caption("an astronaut riding a horse", seed=0)


# --- scene geometry and export --------------------------------------------------------------------------------------


def test_objects_lie_in_the_frame_apart_and_in_their_size_class() -> None:
    radii: dict[str, list[float]] = {size: [] for size in toyworld.SIZES}
    for scene in scenes("train", 400, seed=9):
        for obj in scene.objects:
            assert obj.extent <= obj.x <= 1 - obj.extent and obj.extent <= obj.y <= 1 - obj.extent
            radii[obj.size].append(obj.radius)
        for a, b in combinations(scene.objects, 2):
            assert math.hypot(a.x - b.x, a.y - b.y) >= a.extent + b.extent
    assert max(radii["small"]) < min(radii["medium"]) and max(radii["medium"]) < min(radii["large"])
    assert all(abs(np.mean(r) / SIZE_RADIUS[s] - 1) < 0.02 for s, r in radii.items())


def test_three_large_stars_with_a_relation_can_always_be_placed() -> None:
    for k in range(20):
        _, scene = toyworld.render_caption("a large star to the left of a large star, and a large star", seed=k)
        assert scene.caption_mismatches() == ()


def test_scene_dict_is_json_and_round_trips() -> None:
    for scene in scenes("test", 30):
        data = json.loads(json.dumps(scene.to_dict()))
        assert SceneSpec.from_dict(data) == scene
        assert data["caption"] == scene.caption and len(data["objects"]) == len(scene.objects)
        assert data["fixed"]["objects"][0][0] == "shape"
        assert {"shape", "colour", "rgb", "size", "x", "y", "radius", "rotation"} <= set(data["objects"][0])


# --- splits ---------------------------------------------------------------------------------------------------------


def test_held_out_pairs_never_appear_in_train_or_val() -> None:
    for split in ("train", "val"):
        pairs = {(o.shape, o.colour) for s in scenes(split, 1500, seed=1) for o in s.objects}
        assert not pairs & toyworld.HELD_OUT_PAIRS
        if split == "train":  # only the held-out pairs are missing
            all_pairs = {(s, c) for s in toyworld.SHAPES for c in toyworld.COLOUR_NAMES}
            assert pairs == all_pairs - toyworld.HELD_OUT_PAIRS


def test_every_test_scene_names_a_held_out_pair() -> None:
    for scene in scenes("test", 500, seed=1):
        named = {(m.shape, m.colour) for m in scene.caption_spec.objects}
        assert named & toyworld.HELD_OUT_PAIRS, scene.caption
    shapes = {p[0] for p in toyworld.HELD_OUT_PAIRS}
    colours = {p[1] for p in toyworld.HELD_OUT_PAIRS}
    assert len(shapes) == len(toyworld.HELD_OUT_PAIRS) == len(colours)  # every shape/colour still seen in train


def test_described_object_stream_names_every_attribute_and_respects_the_split() -> None:
    train = [toyworld.sample_described_object(1, i, "train") for i in range(400)]
    for scene in train:
        (obj,) = scene.objects
        spec = toyworld.parse_caption(scene.caption)
        assert spec == scene.caption_spec and spec.relation is None
        assert (spec.objects[0].shape, spec.objects[0].colour, spec.objects[0].size) == (
            obj.shape,
            obj.colour,
            obj.size,
        )
    assert not {(s.objects[0].shape, s.objects[0].colour) for s in train} & toyworld.HELD_OUT_PAIRS
    assert {s.objects[0].size for s in train} == set(toyworld.SIZES)
    assert len({s.objects[0].shape for s in train}) == len(toyworld.SHAPES)
    test = [toyworld.sample_described_object(1, i, "test") for i in range(50)]
    assert all((s.objects[0].shape, s.objects[0].colour) in toyworld.HELD_OUT_PAIRS for s in test)
    assert toyworld.sample_described_object(1, 7) == toyworld.sample_described_object(1, 7)
    assert toyworld.sample_described_object(1, 7) != toyworld.sample_described_object(2, 7)
    with pytest.raises(ValueError, match="non-negative"):
        toyworld.sample_described_object(0, -1)


def test_bad_arguments_raise_value_errors() -> None:
    with pytest.raises(ValueError, match="unknown toy-world split 'dev'"):
        toyworld.sample_scene(0, 0, "dev")
    with pytest.raises(ValueError, match="non-negative"):
        toyworld.sample_scene(-1, 0, "train")
    with pytest.raises(ValueError, match="render size"):
        toyworld.render_scene(toyworld.sample_scene(0, 0), size=48)
    with pytest.raises(ValueError, match="unknown colour 'teal'"):
        ObjectSpec("circle", "teal", "small", 0.5, 0.5, 0.1)


# --- rendering ------------------------------------------------------------------------------------------------------


def test_render_is_64x64_rgb_and_32x32_is_its_area_downsample() -> None:
    for scene in scenes("val", 20):
        big, small = toyworld.render_scene(scene, 64), toyworld.render_scene(scene, 32)
        assert big.shape == (64, 64, 3) and small.shape == (32, 32, 3) and small.dtype == np.uint8
        assert np.array_equal(small, toyworld.area_downsample(big, 2))
        pooled = big.astype(np.float64).reshape(32, 2, 32, 2, 3).mean(axis=(1, 3))
        assert np.abs(small - pooled).max() <= 0.5


def test_edge_coverage_equals_brute_force_supersampling() -> None:
    objects = [o for s in scenes("train", 60, seed=5) for o in s.objects]
    for obj in objects:
        ref = brute_force_coverage(obj, 64, render_mod.SUPERSAMPLE)
        assert np.abs(full_coverage(obj) - ref).max() < 1e-12, obj
    cov = full_coverage(objects[0])
    assert ((cov > 0) & (cov < 1)).sum() > 10  # anti-aliased edges, not a hard mask


@pytest.mark.parametrize("angle", [0.0, 45.0, 90.0, 160.0, 225.0, 300.0])
def test_shading_brightens_the_side_facing_the_light(angle: float) -> None:
    scene = single_object_scene("circle", angle)
    image = toyworld.render_scene(scene).astype(np.float64)
    inside = full_coverage(scene.objects[0]) == 1.0
    lx, ly = scene.light.vector
    centres = (np.arange(64) + 0.5) / 64 - 0.5
    facing = centres[None, :] * lx + centres[:, None] * ly
    luma = image @ LUMA
    assert np.corrcoef(facing[inside], luma[inside])[0, 1] > 0.95
    assert luma[inside & (facing > 0.05)].mean() > 1.3 * luma[inside & (facing < -0.05)].mean()


@pytest.mark.parametrize("angle", [0.0, 45.0, 90.0, 160.0, 225.0, 300.0])
def test_drop_shadow_is_darker_and_opposite_the_light(angle: float) -> None:
    scene = single_object_scene("square", angle, rotation=5.0)
    image = toyworld.render_scene(scene).astype(np.float64)
    background = render_mod.render_background(scene.background)
    outside = full_coverage(scene.objects[0]) == 0.0
    delta = (background - image) @ LUMA
    assert delta[outside].min() > -0.51  # shadows only ever darken
    shadow = outside & (delta > 5.0)
    assert shadow.sum() > 30
    rows, cols = np.nonzero(shadow)
    direction = np.array([cols.mean() + 0.5 - 32.0, rows.mean() + 0.5 - 32.0])
    lx, ly = scene.light.vector
    cosine = direction @ np.array([lx, ly]) / np.linalg.norm(direction)
    assert cosine < -0.95  # the shadow lies straight away from the light


def test_sampled_scenes_cast_shadows_away_from_the_light() -> None:
    checked = 0
    for scene in scenes("train", 200, seed=8):
        if scene.background.kind != "solid" or len(scene.objects) != 1:
            continue
        obj = scene.objects[0]
        image = toyworld.render_scene(scene).astype(np.float64)
        delta = (render_mod.render_background(scene.background) - image) @ LUMA
        shadow = (full_coverage(obj) == 0.0) & (delta > 4.0)
        rows, cols = np.nonzero(shadow)
        offset = np.array([(cols.mean() + 0.5) / 64 - obj.x, (rows.mean() + 0.5) / 64 - obj.y])
        assert offset @ np.array(scene.light.vector) < 0, scene.caption
        checked += 1
    assert checked >= 10


@pytest.mark.parametrize("index", range(12))
def test_shape_twin_changes_every_shape_and_nothing_else(index: int) -> None:
    scene = toyworld.sample_scene(3, index, "train")
    twin = toyworld.shape_twin(scene, seed=3)
    assert twin == toyworld.shape_twin(scene, seed=3)
    assert twin.caption_mismatches() == ()
    assert toyworld.parse_caption(twin.caption) == twin.caption_spec
    assert twin.caption_spec.relation == scene.caption_spec.relation
    assert (twin.background, twin.light) == (scene.background, scene.light)
    for a, b in zip(scene.objects, twin.objects, strict=True):
        assert a.shape != b.shape
        assert (a.colour, a.size, a.x, a.y, a.radius) == (b.colour, b.size, b.x, b.y, b.radius)
        assert (b.shape, b.colour) in toyworld.get_split("train").pairs
    assert not np.array_equal(toyworld.render_scene(scene, 32), toyworld.render_scene(twin, 32))


def test_shape_twin_refuses_splits_with_required_pairs() -> None:
    with pytest.raises(ValueError, match="required pairs"):
        toyworld.shape_twin(toyworld.sample_scene(0, 0, "test"), seed=0)
