"""The per-item counters stay equal to a recount of the rows: under concurrent writers, across expiry and reclaim,
through the batch path; on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from conftest import FakeClock
from storage_helpers import counter_mismatches, make_items, make_study

from harness.storage.records import Answer
from harness.storage.repository import AssignmentError, Repository


def _churn(url: str, study_id: int, annotator_id: int, seed: int, barrier: threading.Barrier) -> int:
    """Vote, skip, report broken and abandon items (left pending past a 0.2 s timeout, answered late) until none is
    left; returns the votes that were acknowledged."""
    rng = np.random.default_rng(seed)
    acknowledged = 0
    with Repository.open(url, pool_size=1, assignment_timeout=timedelta(seconds=0.2)) as repo:
        barrier.wait()
        nxt = repo.next_item_for(annotator_id, study_id)
        while nxt is not None:
            assignment, _ = nxt
            action = rng.choice(["vote", "vote", "vote", "skip", "broken", "late"])
            if action in ("skip", "broken"):
                close = repo.skip if action == "skip" else repo.report_broken
                close(assignment.assignment_id, annotator_id=annotator_id)
                nxt = repo.next_item_for(annotator_id, study_id)
                continue
            if action == "late":
                time.sleep(0.25)  # stale: its slot may be released and taken meanwhile
            try:
                _, nxt = repo.record_vote_and_next(assignment.assignment_id, "left", 10, annotator_id=annotator_id)
                acknowledged += 1
            except AssignmentError as exc:  # the slot went to someone else: expired, not counted
                assert "expired" in str(exc)
                nxt = repo.next_item_for(annotator_id, study_id)
    return acknowledged


def test_counters_match_the_rows_under_concurrent_writers(store_url: str) -> None:
    with Repository.open(store_url) as repo:
        study_id = repo.create_study(make_study(votes_per_item=3), make_items(30, attention_every=7))
        people = [repo.create_annotator(study_id, f"a{k}")[0].annotator_id for k in range(12)]
    barrier = threading.Barrier(len(people))
    with ThreadPoolExecutor(len(people)) as pool:
        acknowledged = sum(pool.map(lambda k: _churn(store_url, study_id, people[k], k, barrier), range(len(people))))

    assert counter_mismatches(store_url, study_id) == []
    with Repository.open(store_url) as repo:
        votes = repo.load_votes(study_id)
        progress = repo.progress(study_id)
    assert acknowledged == len(votes) == len({v.assignment_id for v in votes})  # none lost, none twice
    assert max(Counter(v.item_id for v in votes).values()) <= 3
    assert all(p.completed <= p.votes_target for p in progress.per_item)
    assert sum(p.completed for p in progress.per_item) == progress.votes == len(votes)


def test_release_and_reclaim_keep_the_counters(repo: Repository, clock: FakeClock, store_url: str) -> None:
    study_id = repo.create_study(make_study(votes_per_item=2), make_items(1))
    a, b, c, d = (repo.create_annotator(study_id, name)[0].annotator_id for name in "abcd")
    first, item = repo.next_item_for(a, study_id)  # type: ignore[misc]
    second, _ = repo.next_item_for(b, study_id)  # type: ignore[misc]
    assert repo.next_item_for(c, study_id) is None  # both slots held

    clock.advance(minutes=31)
    third, same = repo.next_item_for(c, study_id)  # type: ignore[misc]  # a's and b's stale slots are released
    assert same.item_id == item.item_id
    assert counter_mismatches(store_url, study_id) == []
    assert repo.record_vote(first.assignment_id, "left", 1).item_id == item.item_id  # late, but a slot was free
    with pytest.raises(AssignmentError, match="expired"):
        repo.record_vote(second.assignment_id, "right", 1)  # late, and the last slot is c's
    assert repo.next_item_for(d, study_id) is None
    repo.record_vote(third.assignment_id, "tie", 1)
    assert counter_mismatches(store_url, study_id) == []
    per_item = repo.progress(study_id).per_item[0]
    assert (per_item.completed, per_item.pending) == (2, 0)


def test_skipping_a_released_assignment_frees_nothing_twice(repo: Repository, clock: FakeClock, store_url: str) -> None:
    study_id = repo.create_study(make_study(votes_per_item=1), make_items(1))
    a, b = (repo.create_annotator(study_id, name)[0].annotator_id for name in "ab")
    stale, _ = repo.next_item_for(a, study_id)  # type: ignore[misc]
    clock.advance(hours=1)
    taken, _ = repo.next_item_for(b, study_id)  # type: ignore[misc]  # releases a's slot, takes it
    repo.skip(stale.assignment_id, annotator_id=a)  # a's assignment held no slot any more
    assert counter_mismatches(store_url, study_id) == []
    assert repo.next_item_for(a, study_id) is None  # b's slot is not free
    repo.record_vote(taken.assignment_id, "left", 1)
    assert counter_mismatches(store_url, study_id) == []


def test_a_returning_annotator_takes_back_a_released_slot(repo: Repository, clock: FakeClock, store_url: str) -> None:
    study_id = repo.create_study(make_study(votes_per_item=1), make_items(2))
    a, b = (repo.create_annotator(study_id, name)[0].annotator_id for name in "ab")
    held, item = repo.next_item_for(a, study_id)  # type: ignore[misc]
    clock.advance(hours=1)
    _, other = repo.next_item_for(b, study_id)  # type: ignore[misc]  # releases a's slot, takes the other item
    assert other.item_id != item.item_id
    again, same = repo.next_item_for(a, study_id)  # type: ignore[misc]  # a's slot is free: a gets it back
    assert (again.assignment_id, same.item_id, again.created_at) == (held.assignment_id, item.item_id, clock.now)
    assert counter_mismatches(store_url, study_id) == []


@pytest.fixture
def other_store_url(store_url: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A second empty store on the same backend."""
    if store_url.startswith("sqlite"):
        return f"sqlite:///{tmp_path / 'other' / 'harness.db'}"
    return str(request.getfixturevalue("postgres_server").create_database())


def test_batch_of_answers_equals_one_call_per_answer(store_url: str, other_store_url: str) -> None:
    outcomes = []
    for url, batched in ((store_url, False), (other_store_url, True)):
        with Repository.open(url) as repo:
            study_id = repo.create_study(make_study(votes_per_item=2), make_items(7, attention_every=4))
            people = [repo.create_annotator(study_id, f"sim-{k}")[0].annotator_id for k in range(3)]
            current = {a: repo.next_item_for(a, study_id) for a in people}
            rounds = []
            while active := [a for a in people if current[a] is not None]:
                answers = [Answer(current[a][0].assignment_id, ("left", "right", "tie")[a % 3], 100 + a, a)  # type: ignore[index]
                           for a in active]
                if batched:
                    results = repo.record_votes_and_next(answers)
                else:
                    results = [repo.record_vote_and_next(x.assignment_id, x.choice, x.response_ms,
                                                         annotator_id=x.annotator_id) for x in answers]
                for a, (_, nxt) in zip(active, results, strict=True):
                    current[a] = nxt
                rounds.append([(v.item_id, v.annotator_id, v.choice, v.winner) for v, _ in results if v is not None])
            outcomes.append(rounds)
            assert counter_mismatches(url, study_id) == []
    assert outcomes[0] == outcomes[1]
    assert sum(map(len, outcomes[0])) == 14  # every quota met


def test_a_refused_answer_stores_none_of_its_batch(repo: Repository, store_url: str) -> None:
    study_id = repo.create_study(make_study(votes_per_item=1), make_items(4))
    a, b = (repo.create_annotator(study_id, name)[0].annotator_id for name in "ab")
    first, _ = repo.next_item_for(a, study_id)  # type: ignore[misc]
    second, _ = repo.next_item_for(b, study_id)  # type: ignore[misc]
    with pytest.raises(AssignmentError, match="another annotator"):
        repo.record_votes_and_next([Answer(first.assignment_id, "left", 1, a), Answer(second.assignment_id, "left", 1, a)])
    assert repo.load_votes(study_id) == []
    assert counter_mismatches(store_url, study_id) == []


def test_an_expired_answer_in_a_batch_gives_no_vote_and_the_next_item(repo: Repository, clock: FakeClock, store_url: str) -> None:
    study_id = repo.create_study(make_study(votes_per_item=1), make_items(2))
    a, b = (repo.create_annotator(study_id, name)[0].annotator_id for name in "ab")
    stale, item = repo.next_item_for(a, study_id)  # type: ignore[misc]
    clock.advance(hours=1)
    taken, _ = repo.next_item_for(b, study_id)  # type: ignore[misc]
    while taken.item_id != item.item_id:  # let b vote until b holds a's released item
        _, nxt = repo.record_vote_and_next(taken.assignment_id, "left", 1, annotator_id=b)
        assert nxt is not None
        taken = nxt[0]
    [(vote, nxt)] = repo.record_votes_and_next([Answer(stale.assignment_id, "left", 1, a)])
    assert vote is None and nxt is None  # expired; nothing else is open to a
    assert counter_mismatches(store_url, study_id) == []


def test_tabs_asking_at_once_get_the_same_item(store_url: str) -> None:
    with Repository.open(store_url) as repo:
        study_id = repo.create_study(make_study(votes_per_item=1), make_items(5))
        annotator = repo.create_annotator(study_id, "tabs")[0].annotator_id
    barrier = threading.Barrier(8)

    def ask(_: int) -> int:
        with Repository.open(store_url, pool_size=1) as tab:
            barrier.wait()
            nxt = tab.next_item_for(annotator, study_id)
            assert nxt is not None
            return nxt[0].assignment_id

    with ThreadPoolExecutor(8) as pool:
        assert len(set(pool.map(ask, range(8)))) == 1
    with Repository.open(store_url) as repo:
        assert repo.annotator_progress(annotator).pending == 1
        assert counter_mismatches(store_url, study_id) == []


def test_winner_when_an_attention_check_shows_one_system_twice(repo: Repository) -> None:
    check = replace(make_items(1, attention_every=1)[0], system_a="real", system_b="real", left="b")
    study_id = repo.create_study(make_study(votes_per_item=3), [check])
    winners = []
    for choice in ("left", "right", "tie"):
        annotator = repo.create_annotator(study_id, choice)[0].annotator_id
        assignment, _ = repo.next_item_for(annotator, study_id)  # type: ignore[misc]
        winners.append(repo.record_vote(assignment.assignment_id, choice, 1, annotator_id=annotator).winner)
    assert winners == ["model_a", "model_a", "tie"]  # the shown system is system_a whichever side it is on


def test_failing_answers_do_not_spoil_the_commit_they_share(store_url: str) -> None:
    with Repository.open(store_url) as repo:
        study_id = repo.create_study(make_study(votes_per_item=1, allow_tie=False), make_items(16))
        people = [repo.create_annotator(study_id, f"a{k}")[0].annotator_id for k in range(16)]
        held = [repo.next_item_for(a, study_id)[0].assignment_id for a in people]  # type: ignore[index]
    barrier = threading.Barrier(16)

    def answer(k: int) -> str:
        with Repository.open(store_url, pool_size=1) as tab:
            barrier.wait()
            try:  # odd annotators choose "Not sure", which this study does not offer
                tab.record_vote(held[k], "tie" if k % 2 else "left", 1, annotator_id=people[k])
            except AssignmentError:
                return "refused"
            return "stored"

    with ThreadPoolExecutor(16) as pool:
        outcomes = list(pool.map(answer, range(16)))
    assert outcomes == ["stored", "refused"] * 8
    with Repository.open(store_url) as repo:
        assert sorted(v.assignment_id for v in repo.load_votes(study_id)) == sorted(held[0::2])
    assert counter_mismatches(store_url, study_id) == []


def test_progress_can_reuse_a_recent_open_item_count(repo: Repository) -> None:
    study_id = repo.create_study(make_study(votes_per_item=1), make_items(3))
    a, b = (repo.create_annotator(study_id, name)[0].annotator_id for name in "ab")
    assert repo.annotator_progress(b, max_age_s=3600).remaining == 3
    repo.next_item_for(a, study_id)  # fills one item's only slot
    assert repo.annotator_progress(b, max_age_s=3600).remaining == 3  # the study's count from a moment ago
    assert repo.annotator_progress(b).remaining == 2  # exact (the default)
    assert repo.annotator_progress(a, max_age_s=3600).pending == 1  # the annotator's own counts are always fresh
