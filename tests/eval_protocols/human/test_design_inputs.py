"""Study systems and stored attention cases (`eval_protocols.human.design_inputs`), checked against brute force."""

from __future__ import annotations

import itertools
import random

import pytest

from eval_protocols.human.design_inputs import (
    ATTENTION_CASE_STRIDE,
    SampleRef,
    attention_pool,
    attention_system_id,
    settings_label,
    study_systems,
)
from eval_protocols.human.pairing import AttentionCase
from eval_protocols.human.protocol import get_protocol


def test_settings_label() -> None:
    assert settings_label({}) == "—"
    assert settings_label({"steps": 50, "guidance_scale": 3.0}) == "g=3.0 steps=50"
    assert settings_label({"prior_guidance_scale": 4.0, "sampler": "ddim"}) == "prior g=4.0 sampler=ddim"


def _samples() -> list[SampleRef]:
    """unclip at one setting, glide swept over two guidance scales; 2 prompts x 3 seed indices each."""
    out = []
    groups = [("unclip", {"guidance_scale": 3.0}), ("glide", {"guidance_scale": 1.0}), ("glide", {"guidance_scale": 3.0})]
    for (system, settings), p, k in itertools.product(groups, ("p0", "p1"), range(3)):
        out.append(SampleRef(system, p, k, f"{system}-{settings['guidance_scale']}-{p}-{k}", settings))
    return out


def test_study_systems_names_swept_systems_and_orders_by_seed_index() -> None:
    samples = _samples()
    shuffled = samples[:]
    random.Random(0).shuffle(shuffled)
    systems = study_systems(shuffled)
    assert sorted(systems) == ["glide@g=1.0", "glide@g=3.0", "unclip"]
    # brute force: for every study system and prompt, the images whose (system, settings) match, by seed index
    expected_group = {"unclip": ("unclip", 3.0), "glide@g=1.0": ("glide", 1.0), "glide@g=3.0": ("glide", 3.0)}
    for sid, (system, g) in expected_group.items():
        for p in ("p0", "p1"):
            want = [s.image_id for s in sorted(samples, key=lambda s: s.sample_index)
                    if s.system_id == system and s.settings["guidance_scale"] == g and s.prompt_id == p]
            assert systems[sid][p] == want
    assert study_systems(shuffled) == study_systems(samples)  # independent of input order


def _case_images(protocol: str, roles: tuple[str, ...], prompt_id: str, case: int, base_seed: int,
                 n: int = 1) -> list[SampleRef]:
    return [
        SampleRef(attention_system_id(protocol, role), prompt_id, case * ATTENTION_CASE_STRIDE + k,
                  f"{protocol}-{role}-{prompt_id}-{case}-{base_seed}-{k}", prompt=f"caption {prompt_id}",
                  seed=base_seed + k)
        for role in roles
        for k in range(n)
    ]


def test_attention_pool_rebuilds_pairs_and_keeps_designs_apart() -> None:
    photo = get_protocol("photorealism")
    images = (
        _case_images("photorealism", ("real", "corrupted"), "p0", 0, 1000)
        + _case_images("photorealism", ("real", "corrupted"), "p0", 0, 2000)  # same case index, another design
        + _case_images("photorealism", ("real",), "p1", 1, 3000)  # no corrupted image: skipped
        + _case_images("caption_similarity", ("true", "wrong"), "p0", 0, 1000)  # another protocol: ignored
    )
    pool = attention_pool(photo, reversed(images))
    assert pool is not None and pool.kind == "corrupted_render"
    assert pool.cases == (
        AttentionCase("p0", "caption p0", ("photorealism-real-p0-0-1000-0",), ("photorealism-corrupted-p0-0-1000-0",)),
        AttentionCase("p0", "caption p0", ("photorealism-real-p0-0-2000-0",), ("photorealism-corrupted-p0-0-2000-0",)),
    )
    caption = attention_pool(get_protocol("caption_similarity"), images)
    assert caption is not None and caption.kind == "contradicting_caption" and len(caption.cases) == 1
    assert attention_pool(get_protocol("diversity"), images) is None


def test_attention_pool_collapsed_grid_uses_varied_renders_in_index_order() -> None:
    diversity = get_protocol("diversity")
    full = _case_images("diversity", ("varied",), "p0", 2, 500, n=16)
    short = _case_images("diversity", ("varied",), "p1", 0, 700, n=15)  # too few for a 4x4 grid: skipped
    random.Random(1).shuffle(full)
    pool = attention_pool(diversity, full + short)
    assert pool is not None and len(pool.cases) == 1
    varied = tuple(f"diversity-varied-p0-2-500-{k}" for k in range(16))
    assert pool.cases[0] == AttentionCase.collapsed_grid("p0", "caption p0", varied)
    assert pool.images_per_side == diversity.images_per_side


@pytest.mark.parametrize("protocol", ["photorealism", "caption_similarity", "diversity"])
def test_attention_pool_of_nothing_is_none(protocol: str) -> None:
    assert attention_pool(get_protocol(protocol), []) is None
