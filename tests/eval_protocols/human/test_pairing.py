"""Study design: pairing, balance, exact counterbalancing, attention checks, determinism and errors."""

from __future__ import annotations

import functools
import itertools
import json
from collections import Counter

import pytest

from eval_protocols.human.pairing import (
    ATTENTION_ALTERED,
    ATTENTION_REFERENCE,
    AttentionCase,
    AttentionPool,
    DesignedItem,
    StudyDesign,
    design_study,
    resolve_comparisons,
)
from eval_protocols.human.protocol import Protocol, get_protocol

Systems = dict[str, dict[str, list[str]]]


def make_systems(names: list[str], n_prompts: int, n_seeds: int) -> tuple[Systems, dict[str, str]]:
    """Image ids spell out their origin: ``"<system>|<prompt>|<seed index>"``."""
    prompts = {f"p{i:02d}": f"caption {i}" for i in range(n_prompts)}
    systems = {s: {p: [f"{s}|{p}|{k}" for k in range(n_seeds)] for p in prompts} for s in names}
    return systems, prompts


def photo_pool(n: int) -> AttentionPool:
    cases = tuple(AttentionCase(f"check{i}", f"check caption {i}", (f"real{i}",), (f"bad{i}",)) for i in range(n))
    return AttentionPool("corrupted_render", cases)


def regular(design: StudyDesign) -> list[DesignedItem]:
    return [item for item in design.items if not item.is_attention_check]


def by_comparison(design: StudyDesign) -> dict[tuple[str, str], list[DesignedItem]]:
    groups: dict[tuple[str, str], list[DesignedItem]] = {}
    for item in regular(design):
        groups.setdefault((item.system_a, item.system_b), []).append(item)
    return groups


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("n", [1, 7, 10, 13, 24])
def test_left_right_is_counterbalanced_exactly(seed: int, n: int) -> None:
    systems, prompts = make_systems(["unclip", "glide", "decoder"], n_prompts=5, n_seeds=6)
    design = design_study(get_protocol("photorealism"), systems, prompts, items_per_comparison=n, seed=seed)
    for items in by_comparison(design).values():
        sides = Counter(item.left for item in items)
        assert len(items) == n
        assert abs(sides["a"] - sides["b"]) <= 1
        for prompt_id in prompts:  # also within each caption of a comparison
            mine = Counter(item.left for item in items if item.prompt_id == prompt_id)
            assert abs(mine["a"] - mine["b"]) <= 1


def test_odd_counts_are_not_always_tilted_the_same_way() -> None:
    systems, prompts = make_systems(["a", "b"], n_prompts=3, n_seeds=3)
    extra = {
        Counter(item.left for item in regular(design_study(get_protocol("photorealism"), systems, prompts,
                                                           items_per_comparison=7, seed=s))).most_common(1)[0][0]
        for s in range(20)
    }
    assert extra == {"a", "b"}


@pytest.mark.parametrize(("n_prompts", "n", "seed"), [(5, 12, 0), (7, 7, 1), (4, 9, 2), (6, 1, 3)])
def test_balanced_over_captions_and_comparisons(n_prompts: int, n: int, seed: int) -> None:
    systems, prompts = make_systems(["s1", "s2", "s3", "s4"], n_prompts=n_prompts, n_seeds=4)
    design = design_study(get_protocol("caption_similarity"), systems, prompts, items_per_comparison=n, seed=seed)
    groups = by_comparison(design)
    assert sorted(groups) == list(itertools.combinations(["s1", "s2", "s3", "s4"], 2))
    assert {len(items) for items in groups.values()} == {n}
    for items in groups.values():
        counts = Counter(item.prompt_id for item in items)
        per_prompt = [counts.get(p, 0) for p in prompts]
        assert max(per_prompt) - min(per_prompt) <= 1
        assert len({(item.prompt_id, item.seed_index) for item in items}) == n  # no unit shown twice
    study_counts = Counter(item.prompt_id for item in regular(design))
    totals = [study_counts.get(p, 0) for p in prompts]
    assert max(totals) - min(totals) <= 1
    assert sum(totals) == 6 * n


def test_items_pair_the_same_caption_and_seed_index() -> None:
    systems, prompts = make_systems(["unclip", "glide"], n_prompts=4, n_seeds=5)
    for name in ("photorealism", "caption_similarity"):
        design = design_study(get_protocol(name), systems, prompts, seed=3)
        assert len(design.items) == 4 * 5  # None takes every (caption, seed index)
        for item in design.items:
            (a_sys, a_prompt, a_k), (b_sys, b_prompt, b_k) = (x[0].split("|") for x in (item.images_a, item.images_b))
            assert (a_sys, b_sys) == (item.system_a, item.system_b)
            assert a_prompt == b_prompt == item.prompt_id and item.prompt == prompts[item.prompt_id]
            assert int(a_k) == int(b_k) == item.seed_index
            assert item.left_images == (item.images_a if item.left == "a" else item.images_b)
            assert {item.left_system, item.right_system} == {"unclip", "glide"}


def test_uneven_seed_counts_use_only_shared_seed_indices() -> None:
    systems, prompts = make_systems(["a", "b"], n_prompts=3, n_seeds=4)
    systems["b"]["p00"] = systems["b"]["p00"][:1]  # p00 can give only one item
    design = design_study(get_protocol("photorealism"), systems, prompts, seed=0)
    counts = Counter(item.prompt_id for item in design.items)
    assert counts == {"p00": 1, "p01": 4, "p02": 4}
    assert all(item.seed_index == 0 for item in design.items if item.prompt_id == "p00")


def test_diversity_items_show_sixteen_images_in_seed_order() -> None:
    systems, prompts = make_systems(["unclip", "glide", "dec"], n_prompts=3, n_seeds=20)
    design = design_study(get_protocol("diversity"), systems, prompts, seed=0)
    assert len(design.items) == 3 * 3  # one grid per caption and comparison
    for item in design.items:
        assert item.images_a == tuple(systems[item.system_a][item.prompt_id][:16])
        assert item.images_b == tuple(systems[item.system_b][item.prompt_id][:16])
        assert item.seed_index is None


def test_diversity_needs_sixteen_images_and_names_what_is_missing() -> None:
    systems, prompts = make_systems(["unclip", "glide"], n_prompts=2, n_seeds=16)
    systems["glide"]["p01"] = systems["glide"]["p01"][:12]
    with pytest.raises(ValueError, match=r"system 'glide' has 12 image\(s\) for prompt 'p01'.*needs 16"):
        design_study(get_protocol("diversity"), systems, prompts, seed=0)


def test_missing_prompt_names_the_system_and_prompt() -> None:
    systems, prompts = make_systems(["unclip", "glide"], n_prompts=2, n_seeds=2)
    del systems["unclip"]["p01"]
    with pytest.raises(ValueError, match="system 'unclip' has no images for prompt 'p01'"):
        design_study(get_protocol("photorealism"), systems, prompts, seed=0)


def test_no_system_is_paired_with_itself() -> None:
    systems, prompts = make_systems(["unclip", "glide", "dec"], n_prompts=2, n_seeds=2)
    with pytest.raises(ValueError, match="pairs a system with itself"):
        design_study(get_protocol("photorealism"), systems, prompts, [("unclip", "unclip")], seed=0)
    design = design_study(get_protocol("photorealism"), systems, prompts, "all_pairs", seed=0)
    assert all(item.system_a != item.system_b for item in design.items)
    systems["clone"] = systems["glide"]  # the same run under a second name
    with pytest.raises(ValueError, match="identical images"):
        design_study(get_protocol("photorealism"), systems, prompts, [("clone", "glide")], seed=0)


def test_comparison_lists_are_checked() -> None:
    systems = {"unclip": {}, "glide": {}, "dec": {}}
    with pytest.raises(ValueError, match="listed twice"):
        resolve_comparisons(systems, [("unclip", "glide"), ("glide", "unclip")])
    with pytest.raises(ValueError, match="unknown system 'glid'.*did you mean 'glide'"):
        resolve_comparisons(systems, [("unclip", "glid")])
    with pytest.raises(ValueError, match="needs baseline"):
        resolve_comparisons(systems, "vs_baseline")
    with pytest.raises(ValueError, match="at least two systems"):
        resolve_comparisons({"unclip": {}}, "all_pairs")
    with pytest.raises(ValueError, match="reserved"):
        resolve_comparisons({ATTENTION_REFERENCE: {}, "glide": {}}, "all_pairs")
    assert resolve_comparisons(systems, "vs_baseline", baseline="glide") == [("dec", "glide"), ("unclip", "glide")]
    assert resolve_comparisons(systems, "all_pairs") == [("dec", "glide"), ("dec", "unclip"), ("glide", "unclip")]


def test_items_per_comparison_limits() -> None:
    systems, prompts = make_systems(["a", "b"], n_prompts=3, n_seeds=2)
    with pytest.raises(ValueError, match="only 6 distinct items"):
        design_study(get_protocol("photorealism"), systems, prompts, items_per_comparison=7, seed=0)
    with pytest.raises(ValueError, match="votes_per_item"):
        design_study(get_protocol("photorealism"), systems, prompts, votes_per_item=0, seed=0)


@pytest.mark.parametrize("rate", [0.01, 0.05, 0.1, 0.2, 1 / 3, 0.5])
@pytest.mark.parametrize("n", [3, 10, 17])
def test_attention_rate_and_expected_sides(rate: float, n: int) -> None:
    systems, prompts = make_systems(["unclip", "glide", "dec"], n_prompts=4, n_seeds=5)
    pool = photo_pool(3)
    design = design_study(get_protocol("photorealism"), systems, prompts, items_per_comparison=n,
                          attention_rate=rate, attention_pool=pool, seed=7)
    checks = [item for item in design.items if item.is_attention_check]
    assert abs(len(checks) - rate * len(design.items)) <= 1
    sides = Counter(item.expected for item in checks)
    assert abs(sides["left"] - sides["right"]) <= 1
    case_by_prompt = {case.prompt_id: case for case in pool.cases}
    for item in checks:
        case = case_by_prompt[item.prompt_id]
        expected_images = item.left_images if item.expected == "left" else item.right_images
        assert expected_images == case.reference
        assert (item.system_a, item.system_b) == (ATTENTION_REFERENCE, ATTENTION_ALTERED)
        assert item.outcome(item.expected) == "model_a"
    used = Counter(item.prompt_id for item in checks)  # cases cycle evenly through the pool
    if checks:
        assert max(used.values()) - min(used.get(c.prompt_id, 0) for c in pool.cases) <= 1
    assert all(item.expected is None for item in regular(design))


def test_attention_pool_must_fit_the_protocol() -> None:
    systems, prompts = make_systems(["a", "b"], n_prompts=2, n_seeds=16)
    with pytest.raises(ValueError, match="needs an attention_pool"):
        design_study(get_protocol("photorealism"), systems, prompts, attention_rate=0.1, seed=0)
    with pytest.raises(ValueError, match="does not fit protocol 'caption_similarity'"):
        design_study(get_protocol("caption_similarity"), systems, prompts, attention_rate=0.1,
                     attention_pool=photo_pool(2), seed=0)
    small_grid = AttentionPool("collapsed_grid", (AttentionCase.collapsed_grid("c", "cap", ["x", "y"]),))
    with pytest.raises(ValueError, match="2 image\\(s\\) per side but protocol 'diversity' shows 16"):
        design_study(get_protocol("diversity"), systems, prompts, attention_rate=0.1, attention_pool=small_grid, seed=0)
    with pytest.raises(ValueError, match="attention_rate must be in"):
        design_study(get_protocol("photorealism"), systems, prompts, attention_rate=1.0, attention_pool=photo_pool(1))


def test_diversity_attention_checks_collapse_one_image() -> None:
    systems, prompts = make_systems(["a", "b"], n_prompts=6, n_seeds=16)
    varied = [f"v{k}" for k in range(16)]
    pool = AttentionPool("collapsed_grid", (AttentionCase.collapsed_grid("c0", "caption", varied, copy_index=3),))
    design = design_study(get_protocol("diversity"), systems, prompts, attention_rate=0.25, attention_pool=pool, seed=1)
    checks = [item for item in design.items if item.is_attention_check]
    assert len(checks) == 2
    for item in checks:
        assert item.images_a == tuple(varied) and item.images_b == ("v3",) * 16


def test_positions_votes_and_determinism() -> None:
    systems, prompts = make_systems(["unclip", "glide", "dec"], n_prompts=5, n_seeds=4)
    design = functools.partial(design_study, get_protocol("photorealism"), systems, prompts, items_per_comparison=9,
                               votes_per_item=3, attention_rate=0.1, attention_pool=photo_pool(4))
    first, again, other = design(seed=11), design(seed=11), design(seed=12)
    assert first == again
    assert first.items != other.items
    assert [item.position for item in first.items] == list(range(len(first.items)))
    assert all(item.votes_target == 3 for item in first.items)
    summary = first.summary()
    assert summary["votes_target"] == 3 * len(first.items)
    assert json.loads(json.dumps(summary)) == summary
    dump = json.loads(json.dumps(first.to_dict()))
    assert Protocol.from_dict(dump["protocol"]) == first.protocol and dump["seed"] == 11
    assert [DesignedItem(**{**d, "images_a": tuple(d["images_a"]), "images_b": tuple(d["images_b"])})
            for d in dump["items"]] == list(first.items)
    # The shuffle mixes comparisons and checks instead of listing them in blocks.
    runs = sum(1 for x, y in itertools.pairwise(first.items) if (x.system_a, x.system_b) != (y.system_a, y.system_b))
    assert runs > len(first.comparisons)


def test_dict_order_does_not_change_the_design() -> None:
    systems, prompts = make_systems(["unclip", "glide", "dec"], n_prompts=4, n_seeds=3)
    shuffled_systems = {s: dict(reversed(list(systems[s].items()))) for s in reversed(list(systems))}
    shuffled_prompts = dict(reversed(list(prompts.items())))
    a = design_study(get_protocol("photorealism"), systems, prompts, items_per_comparison=5, seed=2)
    b = design_study(get_protocol("photorealism"), shuffled_systems, shuffled_prompts, items_per_comparison=5, seed=2)
    assert a == b


def test_with_tie_false_travels_with_the_design() -> None:
    systems, prompts = make_systems(["a", "b"], n_prompts=2, n_seeds=2)
    design = design_study(get_protocol("caption_similarity").with_tie(False), systems, prompts, seed=0)
    assert not design.protocol.allow_tie
    assert Protocol.from_dict(design.protocol.to_dict()).answer_keys == ("left", "right")
    assert design.summary()["allow_tie"] is False


@pytest.mark.parametrize("left", ["a", "b"])
def test_outcome_maps_screen_answers_to_the_vote_table(left: str) -> None:
    item = DesignedItem(0, "p", "cap", "unclip", "glide", ("x",), ("y",), left, False, None, 1)  # type: ignore[arg-type]
    for answer in ("left", "right"):
        shown = item.left_system if answer == "left" else item.right_system
        assert item.outcome(answer) == ("model_a" if shown == "unclip" else "model_b")
    assert item.outcome("tie") == "tie"
    with pytest.raises(ValueError, match="not one of"):
        item.outcome("up")
