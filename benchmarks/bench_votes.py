"""Sustained vote submissions through the store from several OS processes, as several app servers would make them.

``--processes P`` separate processes (spawned, like app servers) run ``--writers W`` writer threads in total, spread
over the processes; every writer opens its own `Repository` (its own engine and connection pool) and loops like an
annotator on the voting page: one *submission* is ``record_vote_and_next`` (record the answer to the current item
and get the next one, in one transaction: what a click does). Each writer is a pool of annotators of one study and
moves to its next annotator when one has seen every item, so the study never runs out during ``--seconds``.

The study has ``--items N`` items and ``votes_per_item`` chosen so that its quotas cannot be exhausted in the run
(at least 3; ``N × votes_per_item`` ≥ twice the votes that `ASSUMED_MAX_RATE` submissions/s would cast). After a
warm-up, submissions starting in a window of ``--seconds`` are timed (latency = the call's wall time). Afterwards
the store is read back: every acknowledged submission must be stored exactly once (``votes_lost``), and no
assignment may hold two votes, no annotator vote twice on an item and no item exceed its quota
(``votes_duplicated``).

Backends: an SQLite file in a temporary directory (WAL, the harness's engine settings), and a throwaway PostgreSQL
cluster started with ``initdb``/``pg_ctl`` on loopback (`tests/pg.py`) with its durable defaults (``fsync=on``,
``synchronous_commit=on``) unless ``--pg-setting`` says otherwise.

    .venv/bin/python benchmarks/bench_votes.py --backends sqlite postgresql --processes 4 --writers 32 \\
        --items 2000 --seconds 10 --json votes.json

Prints one line per case and writes ``{"cases": [{"backend", "processes", "writers", "items", "submissions_per_s",
"p50_ms", "p99_ms", "votes_lost", "votes_duplicated", ...}, ...]}``. Results: ``benchmarks/votes.md``.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import platform
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import numpy as np
import sqlalchemy as sa

from harness.storage.records import ItemRecord, StudyRecord
from harness.storage.repository import Repository
from harness.storage.schema import assignments, items, votes

ASSUMED_MAX_RATE = 1500.0
"""Submissions/s the study is sized for (twice over): far above what a 2-core machine reaches."""

WARMUP_S = 1.5
"""Submissions before the timed window (connections opened, statements prepared) are not timed."""


@dataclass(frozen=True)
class Plan:
    """One case: where the store is and how the study and the writers are laid out."""

    backend: str
    url: str
    processes: int
    writers: int
    items: int
    votes_per_item: int
    annotators_per_writer: int
    seconds: float
    think_s: float


@dataclass
class WriterResult:
    """What one writer saw: latencies (s) of timed submissions, and every acknowledged (assignment, vote) pair."""

    latencies: list[float] = field(default_factory=list)
    acknowledged: list[tuple[int, int]] = field(default_factory=list)
    error: str = ""


def size_study(n_items: int, writers: int, seconds: float) -> tuple[int, int]:
    """(votes per item, annotators per writer) so that neither quotas nor a writer's annotators run out."""
    votes_needed = 2 * ASSUMED_MAX_RATE * (seconds + WARMUP_S + 5)
    votes_per_item = max(3, math.ceil(votes_needed / n_items))
    per_writer = votes_needed / writers
    return votes_per_item, max(1, math.ceil(per_writer / n_items)) + 1


def create_study(url: str, plan: Plan) -> tuple[int, list[list[int]]]:
    """The study and, per writer, its pool of annotator ids."""
    study = StudyRecord(0, "bench", "photorealism", {"question": "Which image is more photorealistic?"}, "open",
                        plan.votes_per_item, True, datetime.now(UTC), 0)
    study_items = [
        ItemRecord(0, 0, k, f"p{k}", f"caption {k}", "unclip", "glide", (f"{k:064x}",),
                   (f"{k + plan.items:064x}",), "a" if k % 2 else "b")
        for k in range(plan.items)
    ]
    with Repository.open(url) as repo:
        study_id = repo.create_study(study, study_items)
        pools = [
            [repo.create_annotator(study_id, f"w{w}-{k}")[0].annotator_id for k in range(plan.annotators_per_writer)]
            for w in range(plan.writers)
        ]
    return study_id, pools


def writer(plan: Plan, study_id: int, pool: list[int], seed: int, ready: threading.Barrier, go: threading.Event,
           window: list[float], out: WriterResult) -> None:
    """Vote as the annotators of ``pool``, one after the other, until the window closes."""
    rng = np.random.default_rng(seed)
    try:
        with Repository.open(plan.url, pool_size=1, max_overflow=2) as repo:
            who = 0
            nxt = repo.next_item_for(pool[who], study_id)
            ready.wait()
            go.wait()
            t_begin, t_end = window
            while True:
                while nxt is None:
                    who += 1
                    if who == len(pool):
                        raise RuntimeError("a writer's annotators saw every item: raise --items")
                    nxt = repo.next_item_for(pool[who], study_id)
                started = time.time()
                if started >= t_end:
                    return
                t0 = time.perf_counter()
                choice = ("left", "right", "tie")[int(rng.integers(3))]
                vote, nxt = repo.record_vote_and_next(nxt[0].assignment_id, choice, 700, annotator_id=pool[who])
                elapsed = time.perf_counter() - t0
                out.acknowledged.append((vote.assignment_id, vote.vote_id))
                if started >= t_begin:
                    out.latencies.append(elapsed)
                if plan.think_s:
                    time.sleep(plan.think_s * (0.5 + rng.random()))
    except BaseException:  # noqa: BLE001 - reported to the parent, which fails the case
        out.error = traceback.format_exc(limit=6)
        ready.abort()


def process_main(plan: Plan, study_id: int, pools: list[list[int]], first_seed: int,
                 start: Any, window: Any, results: Any) -> None:
    """One app server: its writer threads, started together once every process is ready."""
    outs = [WriterResult() for _ in pools]
    shared_window = [0.0, 0.0]
    ready = threading.Barrier(len(pools) + 1)
    go = threading.Event()
    threads = [
        threading.Thread(target=writer,
                         args=(plan, study_id, pool, first_seed + k, ready, go, shared_window, outs[k]))
        for k, pool in enumerate(pools)
    ]
    for thread in threads:
        thread.start()
    try:
        ready.wait(timeout=300)  # every writer connected and holds its first item
    except threading.BrokenBarrierError:
        pass
    start.wait(timeout=600)  # every process is ready; the parent then sets the window
    start.wait(timeout=600)
    shared_window[:] = [window[0], window[1]]
    go.set()
    for thread in threads:
        thread.join()
    results.put([(o.latencies, o.acknowledged, o.error) for o in outs])


def run_case(plan: Plan) -> dict[str, Any]:
    """Run the writers of one case and check the store afterwards."""
    study_id, pools = create_study(plan.url, plan)
    ctx = mp.get_context("spawn")
    start = ctx.Barrier(plan.processes + 1)
    window = ctx.Array("d", 2)
    results = ctx.Queue()
    shares = [list(range(w, plan.writers, plan.processes)) for w in range(plan.processes)]
    procs = [
        ctx.Process(target=process_main,
                    args=(plan, study_id, [pools[w] for w in share], 1000 * p, start, window, results))
        for p, share in enumerate(shares)
    ]
    for proc in procs:
        proc.start()
    start.wait(timeout=600)
    now = time.time()
    window[0], window[1] = now + WARMUP_S, now + WARMUP_S + plan.seconds
    start.wait(timeout=600)
    start_load = os.getloadavg()
    per_process = [results.get(timeout=plan.seconds + 600) for _ in procs]
    for proc in procs:
        proc.join()
    end_load = os.getloadavg()
    writers = [w for per in per_process for w in per]
    errors = [e for _, _, e in writers if e]
    latencies = np.array([x for lat, _, _ in writers for x in lat]) * 1000
    acknowledged = [a for _, ack, _ in writers for a in ack]
    lost, duplicated = check_store(plan.url, study_id, acknowledged)
    return {
        "backend": plan.backend,
        "processes": plan.processes,
        "writers": plan.writers,
        "items": plan.items,
        "submissions_per_s": round(len(latencies) / plan.seconds, 1),
        "p50_ms": round(float(np.percentile(latencies, 50)), 1) if len(latencies) else None,
        "p99_ms": round(float(np.percentile(latencies, 99)), 1) if len(latencies) else None,
        "votes_lost": lost,
        "votes_duplicated": duplicated,
        "p90_ms": round(float(np.percentile(latencies, 90)), 1) if len(latencies) else None,
        "max_ms": round(float(latencies.max()), 1) if len(latencies) else None,
        "votes_per_item": plan.votes_per_item,
        "timed_submissions": len(latencies),
        "acknowledged_submissions": len(acknowledged),
        "seconds": plan.seconds,
        "think_ms": plan.think_s * 1000,
        "load_average_start": [round(x, 2) for x in start_load],
        "load_average_end": [round(x, 2) for x in end_load],
        "errors": errors[:3],
    }


def check_store(url: str, study_id: int, acknowledged: list[tuple[int, int]]) -> tuple[int, int]:
    """(votes lost, votes duplicated) of the study, read back from the store.

    Lost: acknowledged submissions whose vote is not stored under the acknowledged id. Duplicated: extra votes of an
    assignment, extra votes of an annotator on an item, votes past an item's quota, and acknowledgements that name
    the same assignment or vote twice.
    """
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            stored = conn.execute(
                sa.select(votes.c.vote_id, votes.c.assignment_id, votes.c.item_id, votes.c.annotator_id)
                .where(votes.c.study_id == study_id)
            ).all()
            targets = dict(conn.execute(sa.select(items.c.item_id, items.c.votes_target)
                                        .where(items.c.study_id == study_id)).all())
            completed = conn.execute(
                sa.select(sa.func.count()).where(assignments.c.study_id == study_id,
                                                 assignments.c.status == "completed")
            ).scalar_one()
    finally:
        engine.dispose()
    by_vote = {v.vote_id: v.assignment_id for v in stored}
    lost = sum(by_vote.get(vote_id) != assignment_id for assignment_id, vote_id in acknowledged)
    per_assignment = Counter(v.assignment_id for v in stored)
    per_pair = Counter((v.item_id, v.annotator_id) for v in stored)
    per_item = Counter(v.item_id for v in stored)
    duplicated = (
        sum(n - 1 for n in per_assignment.values())
        + sum(n - 1 for n in per_pair.values())
        + sum(max(0, n - targets[i]) for i, n in per_item.items())
        + (len(acknowledged) - len(set(acknowledged)))
        + abs(completed - len(stored))
    )
    return lost, duplicated


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", nargs="+", default=["sqlite", "postgresql"], choices=["sqlite", "postgresql"])
    parser.add_argument("--processes", type=int, default=4, help="OS processes (app servers) running the writers")
    parser.add_argument("--writers", type=int, default=32, help="writers in total, spread over the processes")
    parser.add_argument("--items", type=int, nargs="+", default=[2000], help="items of the study (one case each)")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the timed window")
    parser.add_argument("--think-ms", type=float, default=0.0,
                        help="mean pause of a writer between submissions (0: back to back, saturating the store)")
    parser.add_argument("--pg-setting", action="append", default=[], metavar="NAME=VALUE",
                        help="extra setting of the benchmark's PostgreSQL server (e.g. synchronous_commit=off)")
    parser.add_argument("--json", type=Path, default=None, help="write the cases to this file")
    args = parser.parse_args()
    if args.processes < 1 or args.writers < args.processes:
        parser.error("need --processes >= 1 and --writers >= --processes")
    cases = []
    for backend in args.backends:
        for n_items in args.items:
            cases.append(run_backend(backend, n_items, args))
            c = cases[-1]
            print(f"{c['backend']:>10} items={c['items']:>6} P={c['processes']} W={c['writers']}: "
                  f"{c['submissions_per_s']:.0f} submissions/s, p50 {c['p50_ms']} ms, p99 {c['p99_ms']} ms, "
                  f"lost {c['votes_lost']}, duplicated {c['votes_duplicated']}, load {c['load_average_end'][0]}"
                  + (f", ERRORS: {c['errors'][0]}" if c["errors"] else ""), flush=True)
    report = {"cases": cases, "machine": platform.platform(), "python": platform.python_version(),
              "date": datetime.now(UTC).isoformat(timespec="seconds")}
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 1 if any(c["errors"] for c in cases) else 0


def run_backend(backend: str, n_items: int, args: argparse.Namespace) -> dict[str, Any]:
    """One case on a fresh store of ``backend``."""
    votes_per_item, per_writer = size_study(n_items, args.writers, args.seconds)
    with tempfile.TemporaryDirectory(prefix="bench-votes-") as tmp:
        server = None
        if backend == "postgresql":
            from pg import PostgresServer

            server = PostgresServer(durable=True, max_connections=max(100, 3 * args.writers + 20),
                                    settings=dict(s.split("=", 1) for s in args.pg_setting))
            server.start()
        try:
            url = server.create_database("bench") if server else f"sqlite:///{tmp}/votes.db"
            plan = Plan(backend, url, args.processes, args.writers, n_items, votes_per_item, per_writer,
                        args.seconds, args.think_ms / 1000)
            return run_case(plan)
        finally:
            if server is not None:
                server.stop()


if __name__ == "__main__":
    sys.exit(main())
