"""Readable labels (`eval_protocols.human.labels`) and the pick of the paper's comparisons
(`eval_protocols.human.headline`) on hand-made win rates."""

from __future__ import annotations

import math

import pytest

from eval_protocols.human.design_inputs import settings_label
from eval_protocols.human.headline import flipped, headline, reading_order, vote_kinds
from eval_protocols.human.labels import Labeller, generators_of, parse_study_system
from eval_protocols.human.winrates import WinRate

GENERATORS = {"reference": "reference", "udp": "unclip-diffusion-prior", "uar": "unclip-ar-prior", "glide": "glide"}


def study_id(system: str, g: float, prior: float = 1.0, steps: str = "20") -> str:
    return f"{system}@{settings_label({'guidance_scale': g, 'prior_guidance_scale': prior, 'steps': steps})}"


def test_parse_inverts_the_study_system_naming() -> None:
    settings = {"guidance_scale": 3.0, "prior_guidance_scale": 4.0, "steps": "ddim50", "sampler": "ddim"}
    base, parsed = parse_study_system(f"glide@{settings_label(settings)}")
    assert base == "glide" and parsed == {k: str(v) for k, v in settings.items()}
    assert parse_study_system("reference") == ("reference", {})
    assert parse_study_system("odd@not a label") == ("odd@not a label", {})


def test_labels_print_only_settings_that_apply_and_differ() -> None:
    ids = ["reference", *(study_id(s, g) for s in ("udp", "uar", "glide") for g in (1.0, 3.0))]
    labeller = Labeller.build(ids, GENERATORS)
    assert labeller.label(study_id("udp", 3.0)) == "unCLIP (diffusion prior), g = 3"
    assert labeller.label(study_id("uar", 1.0)) == "unCLIP (AR prior), g = 1"
    assert labeller.label(study_id("glide", 1.0)) == "GLIDE, g = 1"
    assert labeller.label("reference") == "real renders"
    # prior guidance differs between the unCLIP systems: printed for them, never for GLIDE (it has no prior)
    ids = [study_id("udp", 3.0, prior=1.0), study_id("udp", 3.0, prior=4.0), study_id("glide", 3.0, prior=1.0),
           study_id("glide", 3.0, prior=4.0)]
    labeller = Labeller.build(ids, GENERATORS)
    assert labeller.label(ids[1]) == "unCLIP (diffusion prior), prior g = 4"
    # two GLIDE ids that differ only in a setting GLIDE ignores still get distinct labels
    assert labeller.label(ids[2]) != labeller.label(ids[3]) and labeller.label(ids[2]).startswith("GLIDE [")
    # steps that differ are printed; an unknown generator keeps the system id; a shared generator adds the id
    labeller = Labeller.build([study_id("mine", 3.0, steps="20"), study_id("mine", 3.0, steps="50")], {})
    assert labeller.label(study_id("mine", 3.0, steps="50")) == "mine, steps = 50"
    labeller = Labeller.build(["glide", "glide-big"], {"glide": "glide", "glide-big": "glide"})
    assert [labeller.label(s) for s in ("glide", "glide-big")] == ["GLIDE (glide)", "GLIDE (glide-big)"]


def test_from_config_reads_generators_and_a_single_guidance_scale() -> None:
    config = {"systems": [{"id": k, "generator": v} for k, v in GENERATORS.items()],
              "sampling": {"guidance_scales": [3.0]}}
    assert generators_of(config) == GENERATORS and generators_of({}) == {}
    labeller = Labeller.from_config(config, ["udp", "glide", "reference"])  # one setting each: bare ids
    assert labeller.info("udp").guidance == 3.0 and labeller.info("reference").guidance is None
    assert labeller.label("udp") == "unCLIP (diffusion prior)" and labeller.model_name("glide") == "GLIDE"
    order = sorted(["reference", "glide", "uar", "udp"], key=labeller.sort_key)
    assert order == ["udp", "uar", "glide", "reference"]


def rate(protocol: str, a: str, b: str, w: int, l: int, t: int) -> WinRate:
    n = w + l + t
    p = (w + t / 2) / n
    half = 1.959963984540054 * math.sqrt(((w + t / 4) / n - p * p) / n)
    return WinRate(protocol, a, b, w, l, t, p, p - half, p + half, 1.0, 1.0, "half", "normal", 0.95)


def test_headline_orients_matches_guidance_and_pools() -> None:
    u1, u3, g1, g3 = study_id("udp", 1.0), study_id("udp", 3.0), study_id("glide", 1.0), study_id("glide", 3.0)
    rates = [rate("photorealism", g1, u1, 30, 10, 0),  # stored GLIDE first: unCLIP 10 / 30 / 0
             rate("photorealism", u3, g3, 20, 16, 4),
             rate("photorealism", u1, g3, 40, 0, 0),  # different scales: left out
             rate("photorealism", "reference", g1, 40, 0, 0)]  # real renders: left out
    labeller = Labeller.build({s for r in rates for s in (r.system_a, r.system_b)}, GENERATORS)
    head = headline(rates, labeller)
    assert head is not None and (head.challenger_name, head.opponent_name) == ("unCLIP", "GLIDE")
    cells = [r.cells["photorealism"] for r in head.rows]
    assert [(c.challenger, c.opponent, c.guidance) for c in cells] == [(u1, g1, 1.0), (u3, g3, 3.0)]
    assert (cells[0].wins, cells[0].losses, cells[0].win_rate) == (10, 30, 0.25)
    assert cells[0].ci_low == pytest.approx(1 - rates[0].ci_high)
    pooled = head.pooled["photorealism"]
    assert (pooled.wins, pooled.losses, pooled.ties, pooled.n) == (30, 46, 4, 80)
    assert pooled.win_rate == 32 / 80 and pooled.half_width == pytest.approx(
        1.959963984540054 * math.sqrt(((30 + 1) / 80 - 0.16) / 80))
    assert head.priors == ()
    assert headline([rates[3]], labeller) is None  # real renders vs GLIDE only: nothing to answer


def test_reading_order_puts_unclip_first_and_flips_consistently() -> None:
    u1, g1 = study_id("udp", 1.0), study_id("glide", 1.0)
    r = rate("diversity", g1, u1, 5, 30, 5)
    labeller = Labeller.build([u1, g1], GENERATORS)
    (read,) = reading_order([r], labeller)
    assert read == flipped(r) and (read.system_a, read.wins, read.losses) == (u1, 30, 5)
    back = flipped(flipped(r))
    assert read.win_rate == pytest.approx(1 - r.win_rate) and (back.system_a, back.wins) == (r.system_a, r.wins)
    assert (back.ci_low, back.ci_high) == pytest.approx((r.ci_low, r.ci_high))


def test_vote_kinds_per_protocol() -> None:
    import pandas as pd

    votes = pd.DataFrame({"protocol": ["a", "a", "b", "b", "c"], "simulated": [True, True, False, True, False],
                          "expected": [None, None, None, None, "model_a"]})
    assert vote_kinds(votes) == {"a": "simulated", "b": "mixed (1 simulated, 1 human)"}  # checks do not count
