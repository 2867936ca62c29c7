"""Simulated annotators, and the coverage of 95% intervals over many simulated studies."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from eval_protocols.human import intervals as iv
from eval_protocols.human.simulate import SimulationSpec, simulate_votes, true_win_rate
from eval_protocols.human.votes import orient, validate_votes


def test_simulated_table_is_valid_and_seeded() -> None:
    spec = SimulationSpec(
        systems=("a", "b", "c"),
        ratings=(900.0, 1000.0, 1100.0),
        n_votes=500,
        attention_checks=3,
        spammer_share=0.25,
        n_annotators=8,
        tie_rate=0.1,
    )
    one, two = simulate_votes(spec, 11), simulate_votes(spec, 11)
    assert one.votes.equals(two.votes) and one.spammers == two.spammers and len(one.spammers) == 2
    validate_votes(one.votes)
    assert len(one.votes) == 500 + 8 * 3
    assert set(one.votes.columns) >= {"model_a", "model_b", "winner", "annotator", "prompt", "protocol", "left"}


def test_true_win_rate_matches_large_simulation() -> None:
    spec = SimulationSpec(
        n_votes=200_000,
        n_annotators=2000,
        n_prompts=2000,
        annotator_sd=120.0,
        prompt_sd=80.0,
        position_bias=40.0,
        tie_rate=0.2,
    )
    votes = simulate_votes(spec, 0).votes
    estimate = orient(votes, baseline="glide")["score"].mean()
    assert estimate == pytest.approx(true_win_rate(spec, "unclip", "glide"), abs=0.005)
    no_effects = SimulationSpec()
    assert true_win_rate(no_effects, "unclip", "glide") == pytest.approx(1 / (1 + 10 ** (-100 / 400)))


def _coverage(low: np.ndarray, high: np.ndarray, truth: float) -> float:
    return float(np.mean((low <= truth) & (truth <= high)))


@pytest.mark.slow
@pytest.mark.parametrize(("n", "tie_rate"), [(1000, 0.0), (1000, 0.25), (200, 0.25)])
def test_closed_form_interval_coverage(n: int, tie_rate: float) -> None:
    """2,000 studies of n votes from the BT model with ties: normal (n = 1000) and Wilson cover 93–97%."""
    spec = SimulationSpec(tie_rate=tie_rate, n_votes=n)
    truth = true_win_rate(spec, "unclip", "glide")
    p_win = (truth - tie_rate / 2) / (1 - tie_rate) * (1 - tie_rate)
    counts = np.random.default_rng(n + int(100 * tie_rate)).multinomial(
        n, [p_win, 1 - tie_rate - p_win, tie_rate], size=2000
    )
    w, l, t = counts.T
    if n >= 1000:
        assert 0.93 <= _coverage(*iv.normal_interval(w, l, t), truth) <= 0.97
    assert 0.93 <= _coverage(*iv.count_interval(w, l, t, method="wilson"), truth) <= 0.97


@pytest.mark.slow
def test_clustered_bootstrap_coverage_when_annotators_differ() -> None:
    """1,000 studies with annotator-specific tastes: clustered bootstrap covers 93–97%, the normal interval does not.

    One simulation of 1,000 × 100 annotators (independent tastes) is cut into 1,000 studies of 100 annotators.
    """
    studies, per_study = 1000, 100
    spec = SimulationSpec(n_votes=1000 * studies, n_annotators=per_study * studies, annotator_sd=150.0, tie_rate=0.15)
    truth = true_win_rate(spec, "unclip", "glide")
    votes = simulate_votes(spec, 123).votes
    annotator = pd.factorize(votes["annotator"], sort=True)[0]  # ids sort in numeric order
    score = orient(votes, baseline="glide")["score"].to_numpy()
    order = np.argsort(annotator // per_study, kind="stable")
    bounds = np.searchsorted((annotator // per_study)[order], np.arange(studies + 1))
    rng = np.random.default_rng(7)
    boot, normal = [], []
    for i in range(studies):
        rows = order[bounds[i] : bounds[i + 1]]
        s = score[rows]
        low, high, _ = iv.cluster_bootstrap_interval(s, [annotator[rows]], n_bootstrap=400, rng=rng)
        boot.append((low, high))
        normal.append(iv.normal_interval((s == 1).sum(), (s == 0).sum(), (s == 0.5).sum()))
    assert 0.93 <= _coverage(*np.array(boot).T, truth) <= 0.97
    assert _coverage(*np.array(normal).T, truth) < 0.85
