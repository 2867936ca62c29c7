"""Win rates per pair and protocol, and the analyze_votes pipeline."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from eval_protocols.human.analysis import AnalysisOptions, analyze_votes
from eval_protocols.human.quality import ExclusionPolicy
from eval_protocols.human.simulate import SimulationSpec, simulate_votes
from eval_protocols.human.winrates import pair_counts, win_rates


def _votes() -> pd.DataFrame:
    rows = (
        [("unclip", "glide", "model_a", "photo")] * 60
        + [("glide", "unclip", "model_b", "photo")] * 10
        + [("unclip", "glide", "model_b", "photo")] * 20
        + [("glide", "unclip", "tie", "photo")] * 10
        + [("unclip", "glide", "model_a", "caption")] * 40
        + [("unclip", "glide", "model_b", "caption")] * 45
        + [("unclip", "dalle", "model_a", "caption")] * 5
        + [("dalle", "glide", "tie", "caption")] * 5
    )
    return pd.DataFrame(rows, columns=["model_a", "model_b", "winner", "protocol"])


def test_counts_and_orientation_with_baseline() -> None:
    counts = pair_counts(_votes(), baseline="glide").set_index(["protocol", "system_a", "system_b"])
    assert counts.loc[("photo", "unclip", "glide")].tolist() == [70, 20, 10]
    assert counts.loc[("caption", "unclip", "glide")].tolist() == [40, 45, 0]
    assert counts.loc[("caption", "dalle", "unclip")].tolist() == [0, 5, 0]


def test_win_rate_ties_half_and_drop_and_sign_test() -> None:
    (half,) = [w for w in win_rates(_votes(), baseline="glide") if w.protocol == "photo"]
    assert half.win_rate == pytest.approx(75 / 100) and half.n == 100
    assert half.p_value == pytest.approx(stats.binomtest(70, 90).pvalue)
    (drop,) = [w for w in win_rates(_votes(), ties_mode="drop", baseline="glide") if w.protocol == "photo"]
    assert drop.win_rate == pytest.approx(70 / 90) and drop.n == 90


def test_holm_across_all_comparisons() -> None:
    rates = win_rates(_votes(), baseline="glide")
    p = np.array([w.p_value for w in rates])
    m = len(p)
    order = np.argsort(p)
    expected = np.maximum.accumulate(np.minimum(1, (m - np.arange(m)) * p[order]))
    np.testing.assert_allclose([rates[i].p_value_holm for i in order], expected)


def test_bootstrap_interval_is_seeded_and_pair_independent() -> None:
    votes = simulate_votes(
        SimulationSpec(systems=("a", "b", "c"), ratings=(1000.0, 1050.0, 1100.0), n_votes=900), 0
    ).votes
    one = win_rates(votes, ci="bootstrap", n_bootstrap=300, seed=4)
    two = win_rates(votes, ci="bootstrap", n_bootstrap=300, seed=4)
    assert one == two and one[0].cluster_by == ("prompt", "annotator")
    only_ab = votes[(votes.model_a != "c") & (votes.model_b != "c")]
    (ab,) = win_rates(only_ab, ci="bootstrap", n_bootstrap=300, seed=4)
    assert (ab.ci_low, ab.ci_high) == (one[0].ci_low, one[0].ci_high)


def test_analyze_votes_end_to_end() -> None:
    spec = SimulationSpec(n_votes=1500, spammer_share=0.2, attention_checks=5, tie_rate=0.2)
    study = simulate_votes(spec, 3)
    options = AnalysisOptions(ci="wilson", n_bootstrap=100, exclusion=ExclusionPolicy(), side_term=True)
    result = analyze_votes(study.votes, options)
    assert result == analyze_votes(study.votes, options)
    (proto,) = result.protocols
    assert proto.protocol == "photorealism"
    assert {e.annotator for e in result.excluded} >= set(study.spammers)
    assert proto.ratings.systems == ("unclip", "glide")
    assert proto.position_bias is not None
    doc = result.to_dict()
    assert doc["protocols"][0]["pairs"][0]["ci_method"] == "wilson"
    with pytest.raises(ValueError, match="protocol 'nope' has no votes; protocols in the table: photorealism"):
        analyze_votes(study.votes, AnalysisOptions(protocol="nope"))
    with pytest.raises(ValueError, match="unknown interval"):
        AnalysisOptions(ci="wald")
