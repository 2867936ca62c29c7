"""Bradley–Terry ratings on the Elo scale, fitted by maximum likelihood, with seeded bootstrap intervals.

Model (FastChat ``rating_systems.compute_bt``): for a vote between systems a and b,

    P(a beats b) = σ(z),   z = ln(base)·(r_a − r_b + η·side),   R = scale·r + init  (Elo points),

with base 10, scale 400, init 1000, so P(a beats b) = 1/(1 + 10^{−(R_a − R_b)/400}). A tie counts as half a
win and half a loss (outcome y = ½), which is FastChat's fractional-outcome fit and identical to GenAI-Arena's
"duplicate every vote, a tie gives one win to each side" logistic regression. The negative log-likelihood

    ℓ(r, η) = −Σ_u w_u [y_u log σ(z_u) + (1 − y_u) log σ(−z_u)] + ‖r‖²/(4C)

runs over the unique (a, b, y, side) rows u with their vote counts w_u; the optional L2 term with
scikit-learn's C reproduces ``LogisticRegression(fit_intercept=False, C=C)`` on the duplicated rows (the
GenAI-Arena recipe uses C = 1). side = +1 when a was shown on the left, −1 when b was, 0 when unknown; the
optional side term η (reported in Elo points, scale·η) measures position bias. Ratings are centred so they
average ``init`` (the L2 solution and the unregularised L-BFGS path from zero are already centred).

Bootstrap (FastChat ``compute_bootstrap_bt``): replicate weights are drawn over the unique rows,
w* ~ Multinomial(n_votes, w/n_votes), which resamples votes i.i.d.; all replicates are then solved together by
a batched Newton method warm-started at the point estimate, and the interval is the percentile interval.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import optimize, sparse
from scipy.sparse import csgraph
from scipy.special import expit

from eval_protocols.human.votes import SCORE_OF_WINNER, left_sign

SCALE = 400.0
BASE = 10.0
INIT_RATING = 1000.0


@dataclass(frozen=True)
class Outcomes:
    """A vote table reduced to unique (a, b, y, side) rows with counts: all the fit needs."""

    systems: tuple[str, ...]
    """System ids; indices below refer to this order (sorted)."""
    a: np.ndarray
    """Index of the first system per row; int64, shape [U]."""
    b: np.ndarray
    """Index of the second system per row; int64, shape [U]."""
    y: np.ndarray
    """Score of ``a``: 1 win, ½ tie, 0 loss; float64, shape [U]."""
    side: np.ndarray
    """+1 ``a`` shown left, −1 right, 0 unknown (all 0 when sides are ignored); float64, shape [U]."""
    weight: np.ndarray
    """Number of votes with this row; float64, shape [U]."""

    @property
    def n_votes(self) -> int:
        """Total votes Σ_u w_u."""
        return round(float(self.weight.sum()))


@dataclass(frozen=True)
class BTRatings:
    """Bradley–Terry ratings on the Elo scale, with bootstrap intervals when requested."""

    systems: tuple[str, ...]
    """System ids, sorted by rating, best first."""
    ratings: tuple[float, ...]
    """R = scale·r + init per system (same order as ``systems``)."""
    ci_low: tuple[float, ...] | None
    """Lower percentile bound per system, or None without bootstrap."""
    ci_high: tuple[float, ...] | None
    """Upper percentile bound per system, or None without bootstrap."""
    side_advantage: float | None
    """Elo points added to the left-shown system (scale·η), or None when the side term is off."""
    side_ci: tuple[float, float] | None
    """Bootstrap interval of ``side_advantage``."""
    n_votes: int
    """Votes fitted."""
    n_bootstrap: int
    """Bootstrap replicates behind the intervals (0: none)."""
    level: float
    """Confidence level of the intervals."""
    C: float | None
    """Inverse L2 strength (scikit-learn's C), or None for the plain maximum-likelihood fit."""
    converged: bool
    """L-BFGS-B met its tolerance and, without L2, the maximum-likelihood estimate exists (see `mle_exists`)."""

    def rating_of(self, system: str) -> float:
        """Rating of ``system``; ValueError naming the known systems if it is absent."""
        if system not in self.systems:
            raise ValueError(f"no rating for system '{system}'; rated systems: {', '.join(self.systems)}")
        return self.ratings[self.systems.index(system)]

    def to_dict(self) -> dict[str, object]:
        """JSON-ready dict: one entry per system plus the fit settings."""
        rows = []
        for i, name in enumerate(self.systems):
            row: dict[str, object] = {"system": name, "rating": self.ratings[i]}
            if self.ci_low is not None and self.ci_high is not None:
                row.update(ci_low=self.ci_low[i], ci_high=self.ci_high[i])
            rows.append(row)
        return {
            "ratings": rows,
            "side_advantage": self.side_advantage,
            "side_ci": list(self.side_ci) if self.side_ci else None,
            "n_votes": self.n_votes,
            "n_bootstrap": self.n_bootstrap,
            "level": self.level,
            "C": self.C,
            "converged": self.converged,
            "scale": SCALE,
            "base": BASE,
            "init": INIT_RATING,
        }


def aggregate_outcomes(votes: pd.DataFrame, *, use_side: bool = False) -> Outcomes:
    """Reduce a vote table to unique (a, b, y, side) rows with counts.

    Without the side term every row is oriented a < b (y flipped accordingly), so at most 3 rows per pair.

    Raises:
        ValueError: a vote compares a system with itself.
    """
    n = len(votes)
    codes, systems = pd.factorize(pd.concat([votes["model_a"], votes["model_b"]], ignore_index=True), sort=True)
    a, b = codes[:n].astype(np.int64), codes[n:].astype(np.int64)
    same = np.flatnonzero(a == b)
    if same.size:
        raise ValueError(
            f"Bradley–Terry: identical-system pairs in row(s) {', '.join(map(str, same[:5]))}; "
            "drop votes where model_a == model_b before fitting"
        )
    y2 = votes["winner"].map(SCORE_OF_WINNER).to_numpy(dtype=np.float64) * 2.0
    if np.isnan(y2).any():
        raise ValueError("Bradley–Terry: winner values outside model_a/model_b/tie; validate the vote table first")
    side = left_sign(votes) if use_side else np.zeros(n)
    if not use_side:
        flip = a > b
        a, b, y2 = np.where(flip, b, a), np.where(flip, a, b), np.where(flip, 2.0 - y2, y2)
    m = len(systems)
    key = ((a * m + b) * 3 + y2.astype(np.int64)) * 3 + (side + 1).astype(np.int64)
    uniq, counts = np.unique(key, return_counts=True)
    side_u, rest = uniq % 3 - 1, uniq // 3
    y_u, rest = rest % 3, rest // 3
    return Outcomes(
        systems=tuple(str(s) for s in systems),
        a=rest // m,
        b=rest % m,
        y=y_u / 2.0,
        side=side_u.astype(np.float64),
        weight=counts.astype(np.float64),
    )


def bradley_terry(
    votes: pd.DataFrame,
    *,
    C: float | None = None,
    side_term: bool = False,
    n_bootstrap: int = 0,
    seed: int = 0,
    level: float = 0.95,
    anchor: tuple[str, float] | None = None,
) -> BTRatings:
    """Fit Bradley–Terry ratings (Elo scale) to a vote table, optionally with bootstrap intervals.

    Args:
        votes: a validated vote table (one protocol; model_a/model_b never equal).
        C: scikit-learn's inverse L2 strength on the duplicated-vote logistic regression (GenAI-Arena: 1.0);
            None fits the plain maximum likelihood.
        side_term: also fit a position advantage η from the ``left`` column.
        n_bootstrap: bootstrap replicates (0: no intervals).
        seed: seed of the multinomial bootstrap.
        level: confidence level of the percentile intervals.
        anchor: ``(system, rating)`` to shift every rating so that system has that rating (default: mean = init).

    Returns:
        `BTRatings`, systems sorted by rating, best first.
    """
    outcomes = aggregate_outcomes(votes, use_side=side_term)
    params, converged = fit_outcomes(outcomes, C=C, side_term=side_term)
    converged = converged and (C is not None or mle_exists(outcomes))
    m = len(outcomes.systems)
    shift = _anchor_shift(params[None, :m], outcomes.systems, anchor)[0]
    ratings = SCALE * params[:m] + shift
    low = high = side_ci = None
    if n_bootstrap > 0:
        reps = bootstrap_outcomes(outcomes, params, C=C, side_term=side_term, n_bootstrap=n_bootstrap, seed=seed)
        rep_ratings = SCALE * reps[:, :m] + _anchor_shift(reps[:, :m], outcomes.systems, anchor)[:, None]
        q = [(1.0 - level) / 2.0, (1.0 + level) / 2.0]
        low, high = np.quantile(rep_ratings, q, axis=0)
        if side_term:
            side_low, side_high = np.quantile(SCALE * reps[:, m], q)
            side_ci = (float(side_low), float(side_high))
    order = np.argsort(-ratings, kind="stable")
    return BTRatings(
        systems=tuple(outcomes.systems[i] for i in order),
        ratings=tuple(float(ratings[i]) for i in order),
        ci_low=None if low is None else tuple(float(low[i]) for i in order),
        ci_high=None if high is None else tuple(float(high[i]) for i in order),
        side_advantage=float(SCALE * params[m]) if side_term else None,
        side_ci=side_ci,
        n_votes=outcomes.n_votes,
        n_bootstrap=n_bootstrap,
        level=level,
        C=C,
        converged=converged,
    )


def _anchor_shift(r: np.ndarray, systems: tuple[str, ...], anchor: tuple[str, float] | None) -> np.ndarray:
    """Offset per row of r [B, M] that centres the ratings at init, or puts ``anchor`` at its rating."""
    if anchor is None:
        centred: np.ndarray = INIT_RATING - SCALE * r.mean(axis=1)
        return centred
    name, value = anchor
    if name not in systems:
        raise ValueError(f"anchor system '{name}' has no votes; anchor one of: {', '.join(systems)}")
    return value - SCALE * r[:, systems.index(name)]


def mle_exists(outcomes: Outcomes) -> bool:
    """Whether the unpenalised BT maximum likelihood is finite (Zermelo / Ford condition).

    Draw an edge i → j when i beat or tied j at least once; the MLE exists iff this graph is strongly
    connected. Otherwise some group of systems never lost to the rest and its ratings run off to infinity
    (use the L2 term C, or collect more votes).
    """
    m = len(outcomes.systems)
    won = outcomes.y > 0.0
    lost = outcomes.y < 1.0
    src = np.concatenate([outcomes.a[won], outcomes.b[lost]])
    dst = np.concatenate([outcomes.b[won], outcomes.a[lost]])
    graph = sparse.csr_matrix((np.ones(src.size), (src, dst)), shape=(m, m))
    n_components, _ = csgraph.connected_components(graph, directed=True, connection="strong")
    return bool(n_components == 1)


def negative_log_likelihood(
    params: np.ndarray, outcomes: Outcomes, C: float | None = None, side_term: bool = False
) -> tuple[float, np.ndarray]:
    """ℓ(r, η) / n_votes and its gradient (the L-BFGS-B objective).

    Args:
        params: r (shape [M]) followed by η when ``side_term``; units of log_base odds (R = scale·r + init).

    Returns:
        ``(loss, grad)`` divided by the total vote weight, so tolerances do not depend on the number of votes.
    """
    m = len(outcomes.systems)
    alpha = math.log(BASE)
    r = params[:m]
    eta = params[m] if side_term else 0.0
    z = alpha * (r[outcomes.a] - r[outcomes.b] + eta * outcomes.side)
    w, y = outcomes.weight, outcomes.y
    total = w.sum()
    loss = float(np.sum(w * (y * np.logaddexp(0.0, -z) + (1.0 - y) * np.logaddexp(0.0, z))))
    g_z = alpha * w * (expit(z) - y)
    grad = np.zeros_like(params)
    grad[:m] = np.bincount(outcomes.a, g_z, m) - np.bincount(outcomes.b, g_z, m)
    if side_term:
        grad[m] = float(np.sum(g_z * outcomes.side))
    if C is not None:
        loss += float(r @ r) / (4.0 * C)
        grad[:m] += r / (2.0 * C)
    return loss / total, grad / total


def fit_outcomes(outcomes: Outcomes, *, C: float | None = None, side_term: bool = False) -> tuple[np.ndarray, bool]:
    """Minimise `negative_log_likelihood` with scipy L-BFGS-B from r = 0 (FastChat ``fit_bt``).

    Returns:
        ``(params, converged)``: r centred to mean 0 (then η if ``side_term``), and L-BFGS-B's success flag.
    """
    if C is not None and C <= 0:
        raise ValueError(f"L2 parameter C = {C} must be positive; use e.g. 1.0, or None for no penalty")
    k = len(outcomes.systems) + int(side_term)
    result = optimize.minimize(
        negative_log_likelihood,
        np.zeros(k),
        args=(outcomes, C, side_term),
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": 1000, "gtol": 1e-10, "ftol": 1e-15},
    )
    params = np.asarray(result.x, dtype=np.float64)
    m = len(outcomes.systems)
    params[:m] -= params[:m].mean()
    grad_ok = float(np.abs(negative_log_likelihood(params, outcomes, C=C, side_term=side_term)[1]).max()) < 1e-6
    return params, bool(result.success) or grad_ok


def bootstrap_outcomes(
    outcomes: Outcomes,
    params: np.ndarray,
    *,
    C: float | None = None,
    side_term: bool = False,
    n_bootstrap: int = 1000,
    seed: int = 0,
    max_iter: int = 100,
    tol: float = 1e-9,
) -> np.ndarray:
    """Refit on ``n_bootstrap`` multinomial resamples of the votes, all replicates at once.

    Replicate weights w* ~ Multinomial(n_votes, w/n_votes) over the unique rows (seeded). Each replicate is
    solved by Newton's method on the same (normalised) objective as `fit_outcomes`, batched over replicates:
    gradient G = (w*·(σ(z) − y)) X, Hessian H = Xᵀ diag(w*·σ(z)(1 − σ(z))) X (one sparse product for all
    replicates), steps capped at 1 unit of r (400 Elo) per iteration. Without L2 the shift-invariant direction
    is fixed by adding 11ᵀ/M to the rating block of H (the gradient is orthogonal to it).

    Returns:
        Replicate parameters, shape [B, M (+1)], ratings centred per replicate.
    """
    m = len(outcomes.systems)
    k = m + int(side_term)
    u = len(outcomes.weight)
    rng = np.random.default_rng(seed)
    n_votes = outcomes.n_votes
    w_star = rng.multinomial(n_votes, outcomes.weight / outcomes.weight.sum(), size=n_bootstrap) / n_votes
    alpha = math.log(BASE)
    # Row u of the design matrix X has ≤ 3 non-zeros: +α at a, −α at b, α·side at η.
    cols = np.stack([outcomes.a, outcomes.b] + ([np.full(u, m)] if side_term else []), axis=1)
    vals = np.stack([np.full(u, alpha), np.full(u, -alpha)] + ([alpha * outcomes.side] if side_term else []), axis=1)
    rows = np.repeat(np.arange(u), cols.shape[1])
    x = sparse.csr_matrix((vals.ravel(), (rows, cols.ravel())), shape=(u, k))
    # Row u of `outer` is vec(x_u x_uᵀ), so H = Σ_u h_u x_u x_uᵀ for all replicates is one sparse product.
    pairs = [(i, j) for i in range(cols.shape[1]) for j in range(cols.shape[1])]
    outer = sparse.csr_matrix(
        (
            np.concatenate([vals[:, i] * vals[:, j] for i, j in pairs]),
            (np.tile(np.arange(u), len(pairs)), np.concatenate([cols[:, i] * k + cols[:, j] for i, j in pairs])),
        ),
        shape=(u, k * k),
    )
    l2 = 0.0 if C is None else 1.0 / (2.0 * C * n_votes)
    fixed = np.zeros((k, k))
    fixed[:m, :m] = (1.0 if C is None else 0.0) / m
    fixed[np.arange(k), np.arange(k)] += 1e-12
    penalty = np.zeros(k)
    penalty[:m] = l2
    theta = np.tile(params, (n_bootstrap, 1))
    for _ in range(max_iter):
        z = np.asarray(x @ theta.T).T
        p = expit(z)
        grad = np.asarray(x.T @ (w_star * (p - outcomes.y)).T).T + penalty * theta
        if np.abs(grad).max() < tol:
            break
        hess = np.asarray(outer.T @ (w_star * p * (1.0 - p)).T).T.reshape(n_bootstrap, k, k)
        hess = hess + np.diag(penalty) + fixed
        step = np.linalg.solve(hess, grad[:, :, None])[:, :, 0]
        step /= np.maximum(1.0, np.abs(step).max(axis=1, keepdims=True))
        theta = theta - step
    theta[:, :m] -= theta[:, :m].mean(axis=1, keepdims=True)
    return theta


def win_probability(rating_a: float, rating_b: float) -> float:
    """P(a beats b) = 1/(1 + base^{−(R_a − R_b)/scale}) for Elo-scale ratings."""
    odds: float = BASE ** (-(rating_a - rating_b) / SCALE)
    return 1.0 / (1.0 + odds)
