"""Position bias, agreement statistics (hand-computed, statsmodels, krippendorff), annotator QC, exclusion."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss_kappa

from eval_protocols.human.quality import (
    ExclusionPolicy,
    agreement,
    annotator_quality,
    apply_exclusion_policy,
    fleiss_kappa,
    krippendorff_alpha_nominal,
    leave_one_out_agreement,
    position_bias,
)
from eval_protocols.human.simulate import SimulationSpec, simulate_votes, true_win_rate
from eval_protocols.human.votes import normalize_votes
from eval_protocols.human.winrates import win_rates

GENAI_ARENA = Path(__file__).resolve().parents[2] / "data" / "genai_arena"  # tests/data/genai_arena (README there)

# Hand example: units u1..u4 over the pair (x, y); categories x wins / y wins / tie.
# u1 = [x, x, x], u2 = [x, x, y], u3 = [y, y], u4 = [x, y, tie]. Each vote is written with a varying order
# and side, so a coding by screen side or by model_a would differ.
HAND = pd.DataFrame(
    [
        ("u1", "x", "y", "model_a", "r1"),
        ("u1", "y", "x", "model_b", "r2"),
        ("u1", "x", "y", "model_a", "r3"),
        ("u2", "y", "x", "model_b", "r1"),
        ("u2", "x", "y", "model_a", "r2"),
        ("u2", "y", "x", "model_a", "r3"),
        ("u3", "x", "y", "model_b", "r1"),
        ("u3", "y", "x", "model_a", "r2"),
        ("u4", "y", "x", "model_b", "r1"),
        ("u4", "x", "y", "model_b", "r2"),
        ("u4", "y", "x", "tie", "r3"),
    ],
    columns=["prompt", "model_a", "model_b", "winner", "annotator"],
)
# o = [[4, 1.5, .5], [1.5, 2, .5], [.5, .5, 0]], n_c = (6, 4, 1), n = 11:
# α = 1 − (n − 1)(n − Σ o_cc)/(n² − Σ n_c²) = 1 − 10·5/68 = 9/34.
# P_i = (1, 1/3, 1, 0), P̄ = 7/12, P_e = 53/121: κ = (7/12 − 53/121)/(1 − 53/121) = 211/816.


def test_hand_computed_alpha_and_kappa() -> None:
    (result,) = agreement(HAND)
    assert result.krippendorff_alpha == pytest.approx(9 / 34)
    assert result.fleiss_kappa == pytest.approx(211 / 816)
    assert (result.n_units, result.n_votes) == (4, 11)


def test_leave_one_out_majority_by_hand() -> None:
    agree = leave_one_out_agreement(HAND)
    # u1: all agree; u2: the two x votes see a 1–1 split (no majority), the y vote sees x, x; u3: each sees the
    # other (agree); u4: every vote sees a 1–1 split.
    expected = [1, 1, 1, np.nan, np.nan, 0, 1, 1, np.nan, np.nan, np.nan]
    np.testing.assert_array_equal(agree.to_numpy(), np.array(expected, dtype=float))


def test_fleiss_matches_statsmodels_for_equal_raters() -> None:
    rng = np.random.default_rng(0)
    table = rng.multinomial(5, [0.5, 0.3, 0.2], size=40)
    assert fleiss_kappa(table) == pytest.approx(sm_fleiss_kappa(table, method="fleiss"))


def test_alpha_matches_krippendorff_package() -> None:
    krippendorff = pytest.importorskip("krippendorff")
    rng = np.random.default_rng(1)
    data = rng.choice([0.0, 1.0, 2.0], p=[0.5, 0.3, 0.2], size=(6, 30))
    data[rng.random(data.shape) < 0.3] = np.nan  # raters × units with missing values
    counts = np.stack([(data == c).sum(axis=0) for c in range(3)], axis=1)
    ref = krippendorff.alpha(reliability_data=data, level_of_measurement="nominal")
    assert krippendorff_alpha_nominal(counts) == pytest.approx(ref, abs=1e-12)


def test_position_bias_on_genai_arena() -> None:
    records = json.loads((GENAI_ARENA / "clean_battle_20240220.json").read_text())
    df = normalize_votes(pd.DataFrame(records))
    df = df[df.model_a.str.endswith("_generation") & df.anony.astype(bool)].assign(left=lambda d: d.model_a)
    (bias,) = position_bias(df)
    assert (bias.left_wins, bias.decisive) == (549, 1068)
    assert bias.p_value == pytest.approx(0.375, abs=5e-4)
    assert (round(bias.ci_low, 3), round(bias.ci_high, 3)) == (0.484, 0.544)


def test_simulated_position_bias_is_detected() -> None:
    votes = simulate_votes(SimulationSpec(n_votes=4000, position_bias=80.0), 0).votes
    (bias,) = position_bias(votes)
    assert bias.left_win_rate > 0.55 and bias.p_value < 1e-6


def test_annotator_quality_flags_spammers() -> None:
    spec = SimulationSpec(
        n_votes=3000, n_annotators=20, n_prompts=50, spammer_share=0.25, attention_checks=10, ratings=(1000.0, 1300.0)
    )
    study = simulate_votes(spec, 4)
    quality = {q.annotator: q for q in annotator_quality(study.votes)}
    spam = [quality[a] for a in study.spammers]
    honest = [q for a, q in quality.items() if a not in study.spammers]
    assert max(q.fast_share for q in honest) < 0.2 < min(q.fast_share for q in spam)
    assert np.mean([q.attention_pass_rate for q in honest]) > 0.9 > np.mean([q.attention_pass_rate for q in spam]) + 0.2
    assert np.mean([q.majority_agreement for q in honest]) > np.mean([q.majority_agreement for q in spam]) + 0.15


@pytest.mark.parametrize(
    ("policy", "all_caught"),
    [(ExclusionPolicy(), True), (ExclusionPolicy(max_fast_share=None), False)],
)
def test_exclusion_brings_contaminated_estimate_back(policy: ExclusionPolicy, all_caught: bool) -> None:
    spec = SimulationSpec(
        n_votes=6000,
        n_annotators=40,
        n_prompts=300,
        spammer_share=0.3,
        attention_checks=8,
        ratings=(1000.0, 1100.0),
        tie_rate=0.1,
    )
    study = simulate_votes(spec, 7)
    truth = true_win_rate(spec, "unclip", "glide")
    ordinary = study.votes[study.votes["expected"].isna()]
    (dirty,) = win_rates(ordinary, baseline="glide")
    assert not dirty.ci_low <= truth <= dirty.ci_high  # spammers pull the estimate towards 50%
    result = apply_exclusion_policy(study.votes, policy)
    excluded = {e.annotator for e in result.excluded}
    caught = len(excluded & set(study.spammers)) / len(study.spammers)
    assert caught == 1.0 if all_caught else caught >= 0.75
    assert all(e.reasons for e in result.excluded)
    (clean,) = win_rates(result.votes, baseline="glide")
    assert clean.ci_low <= truth <= clean.ci_high


def test_policy_without_annotator_column_only_drops_checks() -> None:
    votes = simulate_votes(SimulationSpec(n_votes=50, attention_checks=2), 0).votes.drop(columns=["annotator"])
    result = apply_exclusion_policy(votes)
    assert result.excluded == () and len(result.votes) == 50


def test_agreement_needs_prompt() -> None:
    with pytest.raises(ValueError, match="needs column.*prompt"):
        agreement(HAND.drop(columns=["prompt"]))
