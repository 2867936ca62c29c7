"""Time Bradley–Terry + 1,000 bootstrap replicates on synthetic vote tables of growing size.

Usage: python benchmarks/bench_stats.py [--votes 10000 100000 1000000] [--systems 5 20 50] [--bootstrap 1000]

Each case builds a vote table (not timed) with winners drawn from known BT ratings (20% ties, random sides),
then times (one BLAS thread): aggregation of the table to unique (a, b, outcome) rows, the L-BFGS-B fit, the batched-Newton
bootstrap, and the whole `bradley_terry(votes, n_bootstrap=B)` call. Results are printed as a Markdown table.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # a shared 2-core machine: one BLAS thread
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse
import time

import numpy as np
import pandas as pd

from eval_protocols.human.bradley_terry import aggregate_outcomes, bootstrap_outcomes, bradley_terry, fit_outcomes


def make_votes(n_votes: int, n_systems: int, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Synthetic vote table: ratings ~ N(1000, 100²), uniform pairs, ties (≤ 20%), random left side."""
    rng = np.random.default_rng(seed)
    names = np.array([f"system_{i:03d}" for i in range(n_systems)])
    ratings = rng.normal(1000.0, 100.0, n_systems)
    a = rng.integers(0, n_systems, n_votes)
    b = (a + rng.integers(1, n_systems, n_votes)) % n_systems
    p = 1.0 / (1.0 + 10.0 ** (-(ratings[a] - ratings[b]) / 400.0))
    tie = 0.4 * np.minimum(p, 1.0 - p)  # tie rate up to 20%, with P(a wins) + tie/2 = p: BT with ties as half holds
    u = rng.random(n_votes)
    winner = np.where(u < p - tie / 2, "model_a", np.where(u < p + tie / 2, "tie", "model_b"))
    left = np.where(rng.random(n_votes) < 0.5, names[a], names[b])
    return pd.DataFrame({"model_a": names[a], "model_b": names[b], "winner": winner, "left": left}), ratings


def _timed(fn, *args, **kwargs):  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--votes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--systems", type=int, nargs="+", default=[5, 20, 50])
    parser.add_argument("--bootstrap", type=int, default=1000)
    args = parser.parse_args()
    print(
        f"| votes | systems | unique rows | aggregate s | fit s | {args.bootstrap} bootstrap s | total s | max |ΔElo| vs truth |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for n_votes in args.votes:
        for n_systems in args.systems:
            votes, truth = make_votes(n_votes, n_systems)
            outcomes, t_agg = _timed(aggregate_outcomes, votes)
            (params, _), t_fit = _timed(fit_outcomes, outcomes)
            _, t_boot = _timed(bootstrap_outcomes, outcomes, params, n_bootstrap=args.bootstrap, seed=0)
            result, t_all = _timed(bradley_terry, votes, n_bootstrap=args.bootstrap, seed=0)
            est = np.array([result.rating_of(f"system_{i:03d}") for i in range(n_systems)])
            err = np.abs((est - est.mean()) - (truth - truth.mean())).max()
            print(
                f"| {n_votes:,} | {n_systems} | {len(outcomes.weight)} | {t_agg:.2f} | {t_fit:.3f} | {t_boot:.2f} "
                f"| {t_all:.2f} | {err:.1f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
