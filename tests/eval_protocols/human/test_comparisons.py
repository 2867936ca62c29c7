"""The paper's comparisons: guided systems against the baseline at matched guidance, designed into a study."""

from __future__ import annotations

import itertools
from collections import Counter

import pytest

from eval_protocols.human.comparisons import SystemSetting, paper_comparisons
from eval_protocols.human.design_inputs import SampleRef, study_systems, system_settings
from eval_protocols.human.pairing import AttentionCase, AttentionPool, design_study, items_per_cell
from eval_protocols.human.protocol import get_protocol

SCALES = (1.0, 3.0, 5.0)
GUIDED = ("unclip-diffusion-prior", "unclip-ar-prior", "glide")  # the baseline last, as in configs/toy.toml


def toy_settings() -> dict[str, SystemSetting]:
    """Real renders (unguided) plus three guided systems at three scales, ids as `design_inputs` makes them."""
    settings = {"reference": SystemSetting("reference", None)}
    for system in GUIDED:
        for g in SCALES:
            settings[f"{system}@g={g} steps=20"] = SystemSetting(system, g)
    return settings


def toy_systems(n_prompts: int, n_seeds: int) -> tuple[dict[str, dict[str, list[str]]], dict[str, str]]:
    """Image ids spell out their origin, ``"<study system>|<prompt>|<seed index>"``."""
    prompts = {f"p{i}": f"caption {i}" for i in range(n_prompts)}
    systems = {s: {p: [f"{s}|{p}|{k}" for k in range(n_seeds)] for p in prompts} for s in toy_settings()}
    return systems, prompts


def test_paper_pairs_each_prior_with_glide_then_the_priors_at_every_scale() -> None:
    pairs = paper_comparisons(toy_settings(), "glide")
    expected = []
    for g in SCALES:
        d, ar, glide = (f"{s}@g={g} steps=20" for s in GUIDED)
        expected += [(d, glide), (ar, glide), (d, ar)]
    assert pairs == expected
    assert not any("reference" in side for pair in pairs for side in pair)  # unguided systems take no part


def test_paper_matches_by_guidance_scale_only_where_scales_are_shared() -> None:
    settings = {
        "u@1": SystemSetting("u", 1.0), "u@2": SystemSetting("u", 2.0),
        "v@2": SystemSetting("v", 2.0), "v@4": SystemSetting("v", 4.0),
        "b@1": SystemSetting("b", 1.0), "b@2": SystemSetting("b", 2.0), "b@4": SystemSetting("b", 4.0),
        "folder": SystemSetting("folder", None),
    }
    assert paper_comparisons(settings, "b") == [("u@1", "b@1"), ("u@2", "b@2"), ("v@2", "b@2"), ("u@2", "v@2"),
                                                ("v@4", "b@4")]


@pytest.mark.parametrize(
    ("settings", "baseline", "message"),
    [
        ({"a@1": SystemSetting("a", 1.0), "b@1": SystemSetting("b", 1.0)}, "", "name it"),
        ({"a@1": SystemSetting("a", 1.0), "b@1": SystemSetting("b", 1.0)}, "c", "is not among the systems"),
        ({"a@1": SystemSetting("a", 1.0), "ref": SystemSetting("ref", None)}, "ref", "is not guided"),
        ({"a@1": SystemSetting("a", 1.0), "ref": SystemSetting("ref", None)}, "a", "no other guided system"),
        ({"a@1": SystemSetting("a", 1.0), "b@2": SystemSetting("b", 2.0)}, "b", "shares no guidance scale"),
        ({"a@1 s=1": SystemSetting("a", 1.0), "a@1 s=2": SystemSetting("a", 1.0), "b@1": SystemSetting("b", 1.0)},
         "b", "two study systems at guidance 1"),
    ],
)
def test_paper_errors_name_the_problem_and_the_fix(settings: dict[str, SystemSetting], baseline: str,
                                                   message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        paper_comparisons(settings, baseline)
    assert "\n" not in str(info.value) and ";" in str(info.value)  # one line: the problem; the fix


def test_system_settings_follow_the_study_system_ids() -> None:
    refs = [SampleRef("reference", "p0", 0, "r0")]
    refs += [SampleRef("glide", "p0", 0, f"g{g}", {"guidance_scale": g, "steps": "20"}) for g in (1.0, 3.0)]
    refs += [SampleRef("unclip", "p0", 0, "u3", {"guidance_scale": 3.0, "steps": "20"})]  # one setting: plain id
    settings = system_settings(refs)
    assert list(settings) == list(study_systems(refs))
    assert settings == {
        "reference": SystemSetting("reference", None),
        "glide@g=1.0 steps=20": SystemSetting("glide", 1.0),
        "glide@g=3.0 steps=20": SystemSetting("glide", 3.0),
        "unclip": SystemSetting("unclip", 3.0),
    }


def pool(n: int) -> AttentionPool:
    cases = tuple(AttentionCase(f"check{i}", f"check {i}", (f"real{i}",), (f"bad{i}",)) for i in range(n))
    return AttentionPool("corrupted_render", cases)


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_design_study_in_paper_mode(seed: int) -> None:
    systems, prompts = toy_systems(n_prompts=3, n_seeds=5)
    settings = toy_settings()
    protocol = get_protocol("photorealism")
    design = design_study(protocol, systems, prompts, "paper", votes_per_item=4, attention_rate=0.1,
                          attention_pool=pool(5), seed=seed, baseline="glide", system_settings=settings)
    regular = [i for i in design.items if not i.is_attention_check]
    checks = [i for i in design.items if i.is_attention_check]
    assert list(design.comparisons) != [] and set(design.comparisons) == set(paper_comparisons(settings, "glide"))
    assert len(design.comparisons) == 9
    for a, b in design.comparisons:
        assert settings[a].guidance_scale == settings[b].guidance_scale  # matched guidance
        assert settings[b].system == "glide" or {settings[a].system, settings[b].system} == {
            "unclip-diffusion-prior", "unclip-ar-prior"}  # baseline second; else the two priors
    n = items_per_cell(protocol, systems, prompts, design.comparisons)
    assert n == 3 * 5
    for pair, items in itertools.groupby(sorted(regular, key=lambda i: (i.system_a, i.system_b)),
                                         key=lambda i: (i.system_a, i.system_b)):
        mine = list(items)
        assert len(mine) == n and len({(i.prompt_id, i.seed_index) for i in mine}) == n
        sides = Counter(i.left for i in mine)
        assert abs(sides["a"] - sides["b"]) <= 1  # exact counterbalancing
        for item in mine:
            (sa, pa, ka), (sb, pb, kb) = (x[0].split("|") for x in (item.images_a, item.images_b))
            assert (sa, sb) == pair and pa == pb == item.prompt_id and int(ka) == int(kb) == item.seed_index
    assert {i.votes_target for i in design.items} == {4}  # exact quotas, checks included
    assert len(checks) == round(0.1 * len(regular) / 0.9) and len(design.items) == len(regular) + len(checks)
    assert sorted(i.position for i in design.items) == list(range(len(design.items)))
    assert min(i.position for i in checks) < max(i.position for i in regular)  # mixed in, not appended


def test_paper_diversity_cells_get_one_grid_pair_per_caption() -> None:
    systems, prompts = toy_systems(n_prompts=4, n_seeds=16)
    protocol = get_protocol("diversity")
    design = design_study(protocol, systems, prompts, "paper", baseline="glide", system_settings=toy_settings())
    pairs = design.comparisons
    assert items_per_cell(protocol, systems, prompts, pairs) == 4
    assert Counter((i.system_a, i.system_b) for i in design.items) == dict.fromkeys(pairs, 4)
    assert all(len(i.images_a) == 16 for i in design.items)


def test_paper_mode_needs_the_settings_of_every_system() -> None:
    systems, prompts = toy_systems(n_prompts=2, n_seeds=2)
    protocol = get_protocol("photorealism")
    with pytest.raises(ValueError, match="needs system_settings"):
        design_study(protocol, systems, prompts, "paper", baseline="glide")
    partial = dict(list(toy_settings().items())[1:])
    with pytest.raises(ValueError, match=r"differ in \['reference'\]"):
        design_study(protocol, systems, prompts, "paper", baseline="glide", system_settings=partial)
