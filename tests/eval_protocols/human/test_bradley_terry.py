"""Bradley–Terry: brute-force likelihood, GenAI-Arena leaderboards, bootstrap, side term, errors."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import optimize

from eval_protocols.human.bradley_terry import (
    aggregate_outcomes,
    bootstrap_outcomes,
    bradley_terry,
    fit_outcomes,
    win_probability,
)
from eval_protocols.human.simulate import SimulationSpec, simulate_votes
from eval_protocols.human.votes import normalize_votes

GENAI_ARENA = Path(__file__).resolve().parents[2] / "data" / "genai_arena"  # tests/data/genai_arena (README there)


def _votes(rows: list[tuple[str, str, str]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["model_a", "model_b", "winner"])


SMALL = _votes(
    [("a", "b", "model_a")] * 7
    + [("b", "a", "model_a")] * 3
    + [("a", "b", "tie")] * 4
    + [("b", "c", "model_a")] * 5
    + [("c", "b", "model_a")] * 4
    + [("c", "b", "tie")] * 2
    + [("a", "c", "model_b")] * 2
    + [("c", "a", "model_b")] * 6
)


def _brute_force_elo(votes: pd.DataFrame, l2: float = 0.0) -> dict[str, float]:
    """Independent likelihood (one term per vote, tie = half win + half loss) maximised by Nelder–Mead."""
    systems = sorted(set(votes.model_a) | set(votes.model_b))

    fixed = [0.0] if l2 == 0 else []  # without L2 only differences are identified: pin the first system

    def nll(free: np.ndarray) -> float:
        r = dict(zip(systems, np.concatenate([fixed, free])))
        total = 0.0
        for a, b, w in votes.itertuples(index=False):
            p = 1.0 / (1.0 + 10.0 ** (-(r[a] - r[b]) / 400.0))
            y = {"model_a": 1.0, "model_b": 0.0, "tie": 0.5}[w]
            total -= y * math.log(p) + (1 - y) * math.log(1 - p)
        return total + l2 * sum(v * v for v in r.values())

    res = optimize.minimize(
        nll,
        np.zeros(len(systems) - len(fixed)),
        method="Nelder-Mead",
        options={"xatol": 1e-6, "fatol": 1e-12, "maxiter": 20000},
    )
    r = np.concatenate([fixed, res.x])
    return dict(zip(systems, r - r.mean() + 1000.0))


def test_matches_brute_force_maximiser() -> None:
    fit = bradley_terry(SMALL)
    ref = _brute_force_elo(SMALL)
    for name, value in ref.items():
        assert fit.rating_of(name) == pytest.approx(value, abs=1e-3)
    assert fit.converged
    assert np.mean(fit.ratings) == pytest.approx(1000.0)


def test_two_systems_closed_form() -> None:
    votes = _votes([("u", "g", "model_a")] * 705 + [("u", "g", "model_b")] * 295)
    fit = bradley_terry(votes)
    assert fit.rating_of("u") - fit.rating_of("g") == pytest.approx(400 * math.log10(705 / 295), abs=1e-4)
    assert win_probability(fit.rating_of("u"), fit.rating_of("g")) == pytest.approx(0.705, abs=1e-7)


def _genai_arena(task: str) -> pd.DataFrame:
    records = json.loads((GENAI_ARENA / "clean_battle_20240220.json").read_text())
    df = normalize_votes(pd.DataFrame(records))
    df = df[df.model_a.str.endswith(task) & (df.model_a != df.model_b)]
    return df.assign(model_a=df.model_a.str.split("_").str[1], model_b=df.model_b.str.split("_").str[1])


@pytest.mark.parametrize(("task", "csv"), [("_generation", "t2i_lb.csv"), ("_edition", "ie_lb.csv")])
@pytest.mark.parametrize("column", ["anony", "full"])
def test_reproduces_genai_arena_leaderboard(task: str, csv: str, column: str) -> None:
    votes = _genai_arena(task)
    if column == "anony":
        votes = votes[votes["anony"].astype(bool)]
    published = pd.read_csv(GENAI_ARENA / csv).set_index("key")[f"Arena Elo rating ({column})"]
    fit = bradley_terry(votes, C=1.0)
    assert set(fit.systems) == set(published.index)
    for name, value in published.items():
        assert fit.rating_of(str(name)) == pytest.approx(value, abs=0.2), name


def test_unregularised_genai_arena_reference_values() -> None:
    votes = _genai_arena("_generation")
    fit = bradley_terry(votes[votes["anony"].astype(bool)])
    ref = {
        "PlayGroundV2": 1151.31,
        "PixArtAlpha": 1078.40,
        "SDXL": 1027.21,
        "SDXLTurbo": 972.13,
        "OpenJourney": 921.31,
        "LCM": 849.64,
    }
    for name, value in ref.items():
        assert fit.rating_of(name) == pytest.approx(value, abs=0.05)


def test_l2_matches_brute_force_with_penalty() -> None:
    fit = bradley_terry(SMALL, C=0.5)
    # ‖r‖²/(4C) with r in units of 400 Elo: penalty per squared Elo point = 1/(4C·400²)
    ref = _brute_force_elo(SMALL, l2=1.0 / (4 * 0.5 * 400.0**2))
    for name, value in ref.items():
        assert fit.rating_of(name) == pytest.approx(value, abs=1e-2)


def test_identical_pair_rejected() -> None:
    with pytest.raises(ValueError, match=r"identical-system pairs in row\(s\) 1"):
        bradley_terry(_votes([("a", "b", "model_a"), ("a", "a", "tie")]))


def test_batched_newton_bootstrap_equals_lbfgs_per_replicate() -> None:
    outcomes = aggregate_outcomes(SMALL)
    params, _ = fit_outcomes(outcomes, C=2.0)
    reps = bootstrap_outcomes(outcomes, params, C=2.0, n_bootstrap=20, seed=5)
    rng = np.random.default_rng(5)
    weights = rng.multinomial(outcomes.n_votes, outcomes.weight / outcomes.weight.sum(), size=20)
    for b in range(5):
        ref, _ = fit_outcomes(dataclasses.replace(outcomes, weight=weights[b].astype(float)), C=2.0)
        np.testing.assert_allclose(reps[b], ref, atol=1e-6)


def test_bootstrap_interval_seeded_and_covers_estimate() -> None:
    study = simulate_votes(SimulationSpec(systems=("a", "b", "c"), ratings=(900.0, 1000.0, 1150.0), n_votes=3000), 1)
    one = bradley_terry(study.votes, n_bootstrap=300, seed=3)
    two = bradley_terry(study.votes, n_bootstrap=300, seed=3)
    assert one == two
    assert one.systems == ("c", "b", "a")
    assert one.ci_low is not None and one.ci_high is not None
    for r, lo, hi in zip(one.ratings, one.ci_low, one.ci_high):
        assert lo < r < hi and hi - lo < 80


def test_side_term_recovers_position_bias() -> None:
    spec = SimulationSpec(systems=("a", "b", "c"), ratings=(950.0, 1000.0, 1050.0), n_votes=20000, position_bias=60.0)
    fit = bradley_terry(simulate_votes(spec, 2).votes, side_term=True, n_bootstrap=200)
    assert fit.side_advantage == pytest.approx(60.0, abs=12.0)
    assert fit.side_ci is not None and fit.side_ci[0] < 60.0 < fit.side_ci[1]
    assert fit.rating_of("c") - fit.rating_of("a") == pytest.approx(100.0, abs=15.0)


def test_anchor() -> None:
    fit = bradley_terry(SMALL, anchor=("b", 1114.0))
    assert fit.rating_of("b") == pytest.approx(1114.0)
    with pytest.raises(ValueError, match="anchor system 'zz'"):
        bradley_terry(SMALL, anchor=("zz", 1.0))


def test_divergent_mle_is_flagged_and_l2_fixes_it() -> None:
    votes = _votes([("a", "b", "model_a")] * 5 + [("b", "c", "tie")] * 3 + [("c", "b", "model_a")] * 2)
    assert not bradley_terry(votes).converged  # a never lost: its MLE rating is infinite
    assert bradley_terry(votes, C=1.0).converged
    assert bradley_terry(SMALL).converged
