"""Many annotators voting at once, each through its own `Repository` (as separate app processes would).

Invariants checked on SQLite and PostgreSQL: exactly one vote per completed assignment, no item past its quota,
every item filled (none lost or skipped), no annotator given an item twice, double submissions counted once.

"Every item filled" needs the annotators to come back once: an annotator who finds nothing left may leave while
the last open slot of an item is still held by another's pending assignment, which that one then skips; the slot
goes back to the pool, but only an annotator who asks again can take it (as in a real study, where people return
to their invite link). So a second, unhurried round follows the concurrent one.
"""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import sqlalchemy as sa
from storage_helpers import make_items, make_study

from harness.storage.repository import Repository
from harness.storage.schema import assignments

N_ANNOTATORS = 16
N_ITEMS = 24
VOTES_PER_ITEM = 4


def _annotate(
    url: str, study_id: int, annotator_id: int, seed: int, barrier: threading.Barrier | None, skip_p: float = 0.1
) -> int:
    """Vote (or, now and then, skip) until nothing is left; every vote is submitted twice. Returns votes cast."""
    rng = np.random.default_rng(seed)
    cast = 0
    with Repository.open(url, pool_size=1, max_overflow=2) as repo:
        if barrier is not None:
            barrier.wait()
        nxt = repo.next_item_for(annotator_id, study_id)
        while nxt is not None:
            assignment, _ = nxt
            if rng.random() < skip_p:
                repo.skip(assignment.assignment_id, annotator_id=annotator_id)
                nxt = repo.next_item_for(annotator_id, study_id)
                continue
            choice = str(rng.choice(["left", "right", "tie"]))
            if seed % 2:  # half the annotators use the one-transaction call of the voting page
                first, nxt = repo.record_vote_and_next(assignment.assignment_id, choice, 5, annotator_id=annotator_id)
            else:
                first = repo.record_vote(assignment.assignment_id, choice, 500, annotator_id=annotator_id)
                nxt = repo.next_item_for(annotator_id, study_id)
            assert repo.record_vote(assignment.assignment_id, "left", 1, annotator_id=annotator_id) == first
            cast += 1
    return cast


def test_concurrent_annotators_fill_every_quota_exactly(store_url: str) -> None:
    with Repository.open(store_url) as repo:
        study_id = repo.create_study(make_study(votes_per_item=VOTES_PER_ITEM), make_items(N_ITEMS))
        people = [repo.create_annotator(study_id, f"a{k}")[0].annotator_id for k in range(N_ANNOTATORS)]
    barrier = threading.Barrier(N_ANNOTATORS)
    with ThreadPoolExecutor(N_ANNOTATORS) as pool:
        futures = [pool.submit(_annotate, store_url, study_id, a, k, barrier) for k, a in enumerate(people)]
        cast = sum(f.result(timeout=300) for f in futures)
    assert cast <= N_ITEMS * VOTES_PER_ITEM
    cast += sum(_annotate(store_url, study_id, a, 100 + k, None, skip_p=0.0) for k, a in enumerate(people))

    with Repository.open(store_url) as repo:
        votes = repo.load_votes(study_id)
        with repo.engine.connect() as conn:
            rows = conn.execute(sa.select(assignments).where(assignments.c.study_id == study_id)).all()
    completed = {r.assignment_id for r in rows if r.status == "completed"}
    assert cast == len(votes) == N_ITEMS * VOTES_PER_ITEM  # none lost, every quota filled
    assert sorted(v.assignment_id for v in votes) == sorted(completed)  # one vote per completed assignment
    assert set(Counter(v.item_id for v in votes).values()) == {VOTES_PER_ITEM}  # none past its quota
    assert len({(r.item_id, r.annotator_id) for r in rows}) == len(rows)  # nobody got an item twice
    assert not [r for r in rows if r.status == "pending"]


def test_two_tabs_submitting_the_same_assignment_count_once(store_url: str) -> None:
    with Repository.open(store_url) as repo:
        study_id = repo.create_study(make_study(votes_per_item=1), make_items(1))
        annotator, _ = repo.create_annotator(study_id, "tabs")
        assignment, _ = repo.next_item_for(annotator.annotator_id, study_id)  # type: ignore[misc]
    barrier = threading.Barrier(8)

    def submit(k: int) -> int:
        with Repository.open(store_url, pool_size=1) as tab:
            barrier.wait()
            return tab.record_vote(assignment.assignment_id, ("left", "right")[k % 2], k).vote_id

    with ThreadPoolExecutor(8) as pool:
        ids = set(pool.map(submit, range(8)))
    with Repository.open(store_url) as repo:
        assert len(ids) == 1 and len(repo.load_votes(study_id)) == 1
