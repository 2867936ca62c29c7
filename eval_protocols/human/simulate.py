"""Simulated annotators: vote tables with a known truth, for tests, demos and planning.

Generative model of one vote (all randomness from one seeded generator):
1. an annotator (uniform), a prompt (uniform), a pair of systems (uniform over ``pairs``), the order
   (model_a, model_b) and the side model_a is shown on (fair coins);
2. an honest annotator answers "tie" with probability ``tie_rate``; otherwise model_a wins with
   P = 1/(1 + 10^{−(R'_a − R'_b + β·side)/400}), where R' = R + u_annotator + v_prompt with per-(annotator, system)
   effects u ~ N(0, ``annotator_sd``²) and per-(prompt, system) effects v ~ N(0, ``prompt_sd``²), β the
   ``position_bias`` in Elo points and side = +1 when model_a is on the left, −1 otherwise;
3. a spammer (a ``spammer_share`` of the annotators) clicks left or right at random and answers fast.
Attention checks are extra rows comparing ``ATTENTION_GOOD`` with ``ATTENTION_BAD`` with ``expected`` set;
honest annotators fail them with probability ``attention_lapse``, spammers half the time.

The truth is the honest population's expected score (ties as half) over annotators, prompts and sides,
`true_win_rate`, computed by Gauss–Hermite quadrature.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

ATTENTION_GOOD = "attention_good"
ATTENTION_BAD = "attention_bad"


@dataclass(frozen=True)
class SimulationSpec:
    """Systems, annotator population and study size of a simulated study."""

    systems: tuple[str, ...] = ("glide", "unclip")
    """System ids."""
    ratings: tuple[float, ...] = (1000.0, 1100.0)
    """True Bradley–Terry strengths on the Elo scale, one per system."""
    n_votes: int = 1000
    """Ordinary votes (attention checks come on top)."""
    n_annotators: int = 20
    n_prompts: int = 200
    protocol: str = "photorealism"
    tie_rate: float = 0.0
    """Probability that an honest annotator answers "Not sure"."""
    annotator_sd: float = 0.0
    """Elo s.d. of each annotator's per-system taste (makes votes of one annotator correlated)."""
    prompt_sd: float = 0.0
    """Elo s.d. of per-prompt system effects."""
    position_bias: float = 0.0
    """Elo points added to the left-shown system by honest annotators."""
    spammer_share: float = 0.0
    """Share of annotators who answer at random."""
    attention_checks: int = 0
    """Attention-check rows per annotator."""
    attention_lapse: float = 0.03
    """Probability that an honest annotator fails a check."""
    latency_ms: float = 4000.0
    """Median response time of honest annotators (log-normal, σ = 0.5)."""
    spammer_latency_ms: float = 400.0
    """Median response time of spammers."""
    pairs: tuple[tuple[str, str], ...] | None = None
    """Pairs to compare; None: every unordered pair."""

    def __post_init__(self) -> None:
        if len(self.systems) != len(self.ratings) or len(self.systems) < 2:
            raise ValueError("simulation needs at least two systems and one rating per system")
        if len(set(self.systems)) != len(self.systems):
            raise ValueError(f"duplicate system ids in {self.systems}; give each system a unique id")
        if not 0.0 <= self.spammer_share <= 1.0 or not 0.0 <= self.tie_rate < 1.0:
            raise ValueError("spammer_share must be in [0, 1] and tie_rate in [0, 1)")


@dataclass(frozen=True)
class SimulatedStudy:
    """A simulated vote table with its ground truth."""

    votes: pd.DataFrame
    """Vote table: model_a, model_b, winner, annotator, prompt, protocol, left, latency_ms, expected
    (string columns as pandas categoricals, which keeps a million-vote simulation fast)."""
    spammers: tuple[str, ...]
    """Annotator ids of the spammers."""
    spec: SimulationSpec


def simulate_votes(spec: SimulationSpec, seed: int | np.random.Generator = 0) -> SimulatedStudy:
    """Draw one simulated study (see the module docstring for the model).

    Args:
        spec: the study.
        seed: an int seed or a Generator.

    Returns:
        `SimulatedStudy` whose ``votes`` has ``n_votes + n_annotators·attention_checks`` rows.
    """
    rng = np.random.default_rng(seed)
    systems = np.array(spec.systems)
    index = {s: i for i, s in enumerate(spec.systems)}
    pairs = np.array(
        [(index[a], index[b]) for a, b in (spec.pairs or itertools.combinations(spec.systems, 2))], dtype=np.int64
    )
    n, m = spec.n_votes, len(systems)
    annot_ids = _ids("annotator", spec.n_annotators)
    is_spammer = np.zeros(spec.n_annotators, dtype=bool)
    is_spammer[rng.permutation(spec.n_annotators)[: round(spec.spammer_share * spec.n_annotators)]] = True
    u = (
        rng.normal(0.0, spec.annotator_sd, size=(spec.n_annotators, m))
        if spec.annotator_sd > 0
        else np.zeros((spec.n_annotators, m))
    )
    v = (
        rng.normal(0.0, spec.prompt_sd, size=(spec.n_prompts, m))
        if spec.prompt_sd > 0
        else np.zeros((spec.n_prompts, m))
    )

    annot = rng.integers(0, spec.n_annotators, n)
    prompt = rng.integers(0, spec.n_prompts, n)
    pair = pairs[rng.integers(0, len(pairs), n)]
    swap = rng.random(n) < 0.5
    a, b = np.where(swap, pair[:, 1], pair[:, 0]), np.where(swap, pair[:, 0], pair[:, 1])
    side = np.where(rng.random(n) < 0.5, 1.0, -1.0)
    r = np.asarray(spec.ratings)
    diff = r[a] - r[b] + u[annot, a] - u[annot, b] + v[prompt, a] - v[prompt, b] + spec.position_bias * side
    a_wins = rng.random(n) < 1.0 / (1.0 + 10.0 ** (-diff / 400.0))
    tie = rng.random(n) < spec.tie_rate
    winner = np.where(tie, 2, np.where(a_wins, 0, 1))  # codes into WINNERS
    spam = is_spammer[annot]
    spam_left = rng.random(n) < 0.5
    winner = np.where(spam, np.where(spam_left == (side > 0), 0, 1), winner)
    latency = _latency(rng, spam, spec)
    votes = pd.DataFrame(
        {
            "model_a": pd.Categorical.from_codes(a, categories=systems),
            "model_b": pd.Categorical.from_codes(b, categories=systems),
            "winner": pd.Categorical.from_codes(winner, categories=["model_a", "model_b", "tie"]),
            "annotator": pd.Categorical.from_codes(annot, categories=annot_ids),
            "prompt": pd.Categorical.from_codes(prompt, categories=_ids("prompt", spec.n_prompts)),
            "protocol": spec.protocol,
            "left": pd.Categorical.from_codes(np.where(side > 0, a, b), categories=systems),
            "latency_ms": latency,
            "expected": pd.Series([None] * n, dtype=object),
        }
    )
    if spec.attention_checks > 0:
        votes = pd.concat([votes, _attention_rows(rng, spec, annot_ids, is_spammer)], ignore_index=True)
    return SimulatedStudy(votes, tuple(annot_ids[is_spammer]), spec)


def _ids(prefix: str, n: int) -> np.ndarray:
    """``prefix_000`` … zero-padded ids that sort in numeric order."""
    width = max(3, len(str(n - 1)))
    return np.array([f"{prefix}_{i:0{width}d}" for i in range(n)])


def _latency(rng: np.random.Generator, spam: np.ndarray, spec: SimulationSpec) -> np.ndarray:
    """Log-normal response times (ms): honest median ``latency_ms``, spammers ``spammer_latency_ms``."""
    median = np.where(spam, spec.spammer_latency_ms, spec.latency_ms)
    return np.round(median * np.exp(0.5 * rng.standard_normal(spam.shape)))


def _attention_rows(
    rng: np.random.Generator, spec: SimulationSpec, annot_ids: np.ndarray, is_spammer: np.ndarray
) -> pd.DataFrame:
    """``attention_checks`` check rows per annotator: good vs bad, random sides and order."""
    k = spec.attention_checks
    annot = np.repeat(np.arange(len(annot_ids)), k)
    n = annot.size
    good_first = rng.random(n) < 0.5
    good_left = rng.random(n) < 0.5
    spam = is_spammer[annot]
    correct = np.where(spam, rng.random(n) < 0.5, rng.random(n) >= spec.attention_lapse)
    good_wins = correct
    model_a = np.where(good_first, ATTENTION_GOOD, ATTENTION_BAD)
    model_b = np.where(good_first, ATTENTION_BAD, ATTENTION_GOOD)
    winner = np.where(good_wins == good_first, "model_a", "model_b")
    return pd.DataFrame(
        {
            "model_a": model_a,
            "model_b": model_b,
            "winner": winner,
            "annotator": annot_ids[annot],
            "prompt": "attention_check",
            "protocol": spec.protocol,
            "left": np.where(good_left, ATTENTION_GOOD, ATTENTION_BAD),
            "latency_ms": _latency(rng, spam, spec),
            "expected": ATTENTION_GOOD,
        }
    )


def true_win_rate(spec: SimulationSpec, system_a: str, system_b: str, *, nodes: int = 80) -> float:
    """Honest-population P(system_a beats system_b) with ties as half.

    p = τ/2 + (1 − τ)·½ Σ_{side=±1} E_δ[σ(ln10·(R_a − R_b + δ + β·side)/400)], δ ~ N(0, 2(s_u² + s_v²)),
    the expectation by Gauss–Hermite quadrature (τ = tie rate, β = position bias).
    """
    r = dict(zip(spec.systems, spec.ratings))
    sd = math.sqrt(2.0 * (spec.annotator_sd**2 + spec.prompt_sd**2))
    x, w = np.polynomial.hermite_e.hermegauss(nodes)
    w = w / w.sum()
    mean = 0.0
    for side in (1.0, -1.0):
        d = r[system_a] - r[system_b] + sd * x + spec.position_bias * side
        mean += 0.5 * float(w @ (1.0 / (1.0 + 10.0 ** (-d / 400.0))))
    return spec.tie_rate / 2.0 + (1.0 - spec.tie_rate) * mean
