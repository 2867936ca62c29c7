"""Sustained vote submissions of the store: ``record_vote`` + ``next_item_for`` with 1, 8 and 32 concurrent writers.

One *submission* is what the voting page does per click: record the vote for the current assignment, then fetch
the next item, either as two calls (``record_vote`` then ``next_item_for``: two transactions, two commits) or as
``record_vote_and_next`` (one transaction). Each writer is an annotator in its own thread, all sharing one `Repository` (one engine and pool),
as Streamlit sessions of one app process do. Measured for ``--seconds`` after a short warm-up, on SQLite (WAL,
``synchronous=FULL``: every vote is fsynced) and on a PostgreSQL server started from the apt binaries with its
durable defaults (``fsync=on``, ``synchronous_commit=on``).

    .venv/bin/python benchmarks/bench_votes.py                      # both backends, 1/8/32 writers, 5 s each
    .venv/bin/python benchmarks/bench_votes.py --backends sqlite --writers 1 8 --seconds 2

Results and the machine they came from: ``benchmarks/votes.md``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from pg import PostgresServer

from harness.storage.records import ItemRecord, StudyRecord
from harness.storage.repository import Repository


def make_study(repo: Repository, n_items: int, n_annotators: int) -> tuple[int, list[int]]:
    """A photorealism study with ``n_items`` items (3 votes each) and ``n_annotators`` invites."""
    study = StudyRecord(
        0,
        "bench",
        "photorealism",
        {"question": "Which image is more photorealistic?"},
        "open",
        3,
        True,
        datetime.now(UTC),
        0,
    )
    items = [
        ItemRecord(
            0,
            0,
            k,
            f"p{k}",
            f"caption {k}",
            "unclip",
            "glide",
            (f"{k:064x}",),
            (f"{k + n_items:064x}",),
            "a" if k % 2 else "b",
        )
        for k in range(n_items)
    ]
    study_id = repo.create_study(study, items)
    return study_id, [repo.create_annotator(study_id, f"w{k}")[0].annotator_id for k in range(n_annotators)]


def writer(
    repo: Repository,
    study_id: int,
    annotator_id: int,
    seed: int,
    start: threading.Barrier,
    window: list[float],
    latencies: list[float],
    combined: bool,
    think_s: float,
) -> None:
    """Vote until ``window[1]`` (pausing ``think_s`` on average); keeps latencies of submissions after ``window[0]``."""
    rng = np.random.default_rng(seed)
    nxt = repo.next_item_for(annotator_id, study_id)
    start.wait()
    t_begin, t_end = window
    while nxt is not None:
        t0 = time.perf_counter()
        if t0 >= t_end:
            return
        choice = ("left", "right", "tie")[int(rng.integers(3))]
        if combined:
            _, nxt = repo.record_vote_and_next(nxt[0].assignment_id, choice, 700, annotator_id=annotator_id)
        else:
            repo.record_vote(nxt[0].assignment_id, choice, 700, annotator_id=annotator_id)
            nxt = repo.next_item_for(annotator_id, study_id)
        if t0 >= t_begin:
            latencies.append(time.perf_counter() - t0)
        if think_s:
            time.sleep(think_s * (0.5 + rng.random()))  # an annotator looks at the next item
    raise RuntimeError("a writer ran out of items: raise --items")


def measure(
    url: str, n_writers: int, seconds: float, n_items: int, combined: bool, think_s: float = 0.0
) -> dict[str, float]:
    """Submissions/s and latency percentiles (ms) of ``n_writers`` concurrent annotators on the store at ``url``."""
    with Repository.open(url, pool_size=n_writers, max_overflow=8) as repo:
        study_id, people = make_study(repo, n_items, n_writers)
        start = threading.Barrier(n_writers + 1)
        per_writer: list[list[float]] = [[] for _ in people]
        warmup = min(1.0, seconds / 4)
        window = [0.0, 0.0]
        threads = [
            threading.Thread(
                target=writer, args=(repo, study_id, a, k, start, window, per_writer[k], combined, think_s)
            )
            for k, a in enumerate(people)
        ]
        for thread in threads:
            thread.start()
        window[:] = [time.perf_counter() + warmup, time.perf_counter() + warmup + seconds]
        start.wait()
        for thread in threads:
            thread.join()
        latencies = np.array([x for lat in per_writer for x in lat]) * 1000
        votes = len(repo.load_votes(study_id))
        assert votes >= len(latencies), "lost votes"
    return {
        "per_s": len(latencies) / seconds,
        "p50": float(np.percentile(latencies, 50)),
        "p99": float(np.percentile(latencies, 99)),
        "n": float(len(latencies)),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", nargs="+", default=["sqlite", "postgresql"], choices=["sqlite", "postgresql"])
    parser.add_argument("--writers", nargs="+", type=int, default=[1, 8, 32])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--items", type=int, default=2000, help="items per study (each writer needs one per vote)")
    parser.add_argument(
        "--modes",
        nargs="+",
        default=["two-calls", "combined"],
        choices=["two-calls", "combined"],
        help="two-calls: record_vote then next_item_for (2 transactions); combined: "
        "record_vote_and_next (1 transaction)",
    )
    parser.add_argument(
        "--think-ms",
        type=float,
        default=0.0,
        help="mean pause of each annotator between submissions (0: saturate the store)",
    )
    args = parser.parse_args()
    print("| backend | mode | writers | submissions/s | p50 ms | p99 ms | submissions |")
    print("|---|---|---|---|---|---|---|")
    for backend in args.backends:
        server = None
        with tempfile.TemporaryDirectory() as tmp:
            if backend == "postgresql":
                server = PostgresServer(durable=True, max_connections=200)
                server.start()
            try:
                for mode in args.modes:
                    for n in args.writers:
                        url = server.create_database() if server else f"sqlite:///{tmp}/votes-{mode}-{n}.db"
                        r = measure(url, n, args.seconds, args.items, mode == "combined", args.think_ms / 1000)
                        print(
                            f"| {backend} | {mode} | {n} | {r['per_s']:.0f} | {r['p50']:.1f} | {r['p99']:.1f} "
                            f"| {r['n']:.0f} |",
                            flush=True,
                        )
            finally:
                if server is not None:
                    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
