"""Handing out items and recording votes: quotas, uniqueness, idempotence, stale assignments, progress."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import pytest
from conftest import FakeClock
from storage_helpers import make_items, make_study

from harness.storage.repository import Answer, AssignmentError, Repository, StudyNotOpenError


def invite(repo: Repository, study_id: int, n: int) -> list[int]:
    return [repo.create_annotator(study_id, f"annotator-{k}")[0].annotator_id for k in range(n)]


def vote_all(repo: Repository, study_id: int, annotator_id: int, choice: str = "left") -> list[int]:
    """Vote until nothing is left; returns the item ids voted on, in order."""
    seen = []
    while (nxt := repo.next_item_for(annotator_id, study_id)) is not None:
        assignment, item = nxt
        repo.record_vote(assignment.assignment_id, choice, 900, annotator_id=annotator_id)
        seen.append(item.item_id)
    return seen


def test_quota_and_no_repeats(repo: Repository) -> None:
    study_id = repo.create_study(make_study(votes_per_item=2), make_items(5))
    people = invite(repo, study_id, 3)
    per_person = [vote_all(repo, study_id, a) for a in people]
    for seen in per_person:
        assert len(seen) == len(set(seen))  # never the same item twice
    counts = Counter(i for seen in per_person for i in seen)
    assert sorted(counts.values()) == [2] * 5  # every item exactly at quota, none past it
    assert sum(map(len, per_person)) == 10 == len(repo.load_votes(study_id))
    assert len(per_person[0]) == 5  # the first annotator could see every item


def test_least_voted_item_first(repo: Repository) -> None:
    study_id = repo.create_study(make_study(votes_per_item=3), make_items(4))
    a, b, c = invite(repo, study_id, 3)
    first, voted = repo.next_item_for(a, study_id)  # type: ignore[misc]
    repo.record_vote(first.assignment_id, "left", 1)
    for annotator in (b, c):  # each starts on an item nobody voted on, and a different one
        assignment, item = repo.next_item_for(annotator, study_id)  # type: ignore[misc]
        assert item.item_id != voted.item_id
        repo.record_vote(assignment.assignment_id, "left", 1)
    votes_per_item = Counter(v.item_id for v in repo.load_votes(study_id))
    assert len(votes_per_item) == 3
    _, fourth = repo.next_item_for(a, study_id)  # type: ignore[misc]
    assert votes_per_item[fourth.item_id] == 0  # the one item still without a vote


def test_pending_assignment_is_returned_again(repo: Repository) -> None:
    study_id = repo.create_study(make_study(), make_items(3))
    (a,) = invite(repo, study_id, 1)
    first = repo.next_item_for(a, study_id)
    assert repo.next_item_for(a, study_id) == first  # rerun / second tab: same item, no new assignment
    assert repo.progress(study_id).annotators[0].pending == 1


def test_record_vote_is_idempotent_and_maps_sides(repo: Repository) -> None:
    study_id = repo.create_study(make_study(), make_items(2))
    (a,) = invite(repo, study_id, 1)
    assignment, item = repo.next_item_for(a, study_id)  # type: ignore[misc]
    vote = repo.record_vote(assignment.assignment_id, "right", 1234, annotator_id=a)
    again = repo.record_vote(assignment.assignment_id, "left", 99, annotator_id=a)  # double click / second tab
    assert again == vote and repo.load_votes(study_id) == [vote]
    right_system = item.system_b if item.left == "a" else item.system_a
    assert vote.winner == ("model_a" if right_system == item.system_a else "model_b")
    assert vote.left_model == (item.system_a if item.left == "a" else item.system_b)
    assert (vote.model_a, vote.model_b, vote.protocol, vote.prompt) == (
        item.system_a,
        item.system_b,
        "photorealism",
        item.prompt,
    )
    assert vote.response_ms == 1234 and vote.annotator_id == a and vote.item_id == item.item_id
    assert repo.next_item_for(a, study_id)[1].item_id != item.item_id  # type: ignore[index]


@pytest.mark.parametrize("left", ["a", "b"])
def test_winner_in_model_space(repo: Repository, left: str) -> None:
    items = [replace(i, left=left) for i in make_items(3)]
    study_id = repo.create_study(make_study(votes_per_item=1), items)
    (a,) = invite(repo, study_id, 1)
    winners = []
    for choice in ("left", "right", "tie"):
        assignment, _ = repo.next_item_for(a, study_id)  # type: ignore[misc]
        winners.append(repo.record_vote(assignment.assignment_id, choice, 1).winner)
    flip = {"model_a": "model_b", "model_b": "model_a", "tie": "tie"}
    expected = ["model_a", "model_b", "tie"]
    assert winners == (expected if left == "a" else [flip[w] for w in expected])


def test_vote_refusals(repo: Repository) -> None:
    study_id = repo.create_study(make_study(allow_tie=False), make_items(3))
    a, b = invite(repo, study_id, 2)
    assignment, _ = repo.next_item_for(a, study_id)  # type: ignore[misc]
    with pytest.raises(AssignmentError, match="another annotator"):
        repo.record_vote(assignment.assignment_id, "left", 1, annotator_id=b)
    with pytest.raises(AssignmentError, match="no 'Not sure' option"):
        repo.record_vote(assignment.assignment_id, "tie", 1)
    with pytest.raises(AssignmentError, match="not one of"):
        repo.record_vote(assignment.assignment_id, "up", 1)
    with pytest.raises(AssignmentError, match="does not exist"):
        repo.record_vote(10**6, "left", 1)
    with pytest.raises(AssignmentError, match="study 1000 does not exist"):
        repo.next_item_for(a, 1000)
    other = repo.create_study(make_study("other"), make_items(1))
    with pytest.raises(AssignmentError, match="not invited"):
        repo.next_item_for(a, other)
    assert repo.skip(assignment.assignment_id).status == "skipped"
    assert repo.skip(assignment.assignment_id).status == "skipped"  # idempotent
    with pytest.raises(AssignmentError, match="was skipped"):
        repo.record_vote(assignment.assignment_id, "left", 1)
    with pytest.raises(AssignmentError, match="already skipped"):
        repo.report_broken(assignment.assignment_id)
    assert repo.load_votes(study_id) == []


def test_closed_study_takes_no_votes(repo: Repository) -> None:
    study_id = repo.create_study(make_study(), make_items(2))
    (a,) = invite(repo, study_id, 1)
    assignment, _ = repo.next_item_for(a, study_id)  # type: ignore[misc]
    repo.set_study_status(study_id, "closed")
    with pytest.raises(StudyNotOpenError, match="closed"):
        repo.next_item_for(a, study_id)
    with pytest.raises(StudyNotOpenError, match="closed"):
        repo.record_vote(assignment.assignment_id, "left", 1)
    repo.set_study_status(study_id, "open")
    assert repo.record_vote(assignment.assignment_id, "left", 1).choice == "left"


def test_skipped_and_broken_items_return_to_the_pool(repo: Repository) -> None:
    study_id = repo.create_study(make_study(votes_per_item=1), make_items(2))
    a, b = invite(repo, study_id, 2)
    first, item = repo.next_item_for(a, study_id)  # type: ignore[misc]
    repo.report_broken(first.assignment_id, annotator_id=a)
    second, other = repo.next_item_for(a, study_id)  # type: ignore[misc]
    assert other.item_id != item.item_id
    repo.record_vote(second.assignment_id, "left", 1)
    assert repo.next_item_for(a, study_id) is None  # the broken item is never shown to a again
    _, for_b = repo.next_item_for(b, study_id)  # type: ignore[misc]
    assert for_b.item_id == item.item_id
    per_item = {p.item_id: p for p in repo.progress(study_id).per_item}
    assert per_item[item.item_id].broken == 1 and per_item[item.item_id].pending == 1


def test_stale_assignment_is_reclaimed(repo: Repository, clock: FakeClock) -> None:
    study_id = repo.create_study(make_study(votes_per_item=1), make_items(1))
    a, b, c = invite(repo, study_id, 3)
    stale, item = repo.next_item_for(a, study_id)  # type: ignore[misc]
    assert repo.next_item_for(b, study_id) is None  # the only slot is held
    clock.advance(minutes=31)
    taken, same = repo.next_item_for(b, study_id)  # type: ignore[misc]
    assert same.item_id == item.item_id  # a's stale slot went to b
    repo.record_vote(taken.assignment_id, "left", 1)
    with pytest.raises(AssignmentError, match="expired"):
        repo.record_vote(stale.assignment_id, "right", 1)
    assert repo.next_item_for(a, study_id) is None  # expired, not pending any more
    assert len(repo.load_votes(study_id)) == 1 and repo.next_item_for(c, study_id) is None


def test_stale_assignment_still_counts_when_its_slot_is_free(repo: Repository, clock: FakeClock) -> None:
    study_id = repo.create_study(make_study(votes_per_item=1), make_items(2))
    (a,) = invite(repo, study_id, 1)
    first = repo.next_item_for(a, study_id)
    clock.advance(hours=2)
    again = repo.next_item_for(a, study_id)
    assert again is not None and first is not None and again[0].assignment_id == first[0].assignment_id
    assert again[0].created_at == clock.now  # refreshed
    clock.advance(hours=2)
    assert repo.record_vote(first[0].assignment_id, "left", 1).vote_id > 0


def test_progress_and_attention_checks(repo: Repository) -> None:
    study_id = repo.create_study(make_study(votes_per_item=2), make_items(6, attention_every=3))
    a, b = invite(repo, study_id, 2)
    vote_all(repo, study_id, a, choice="left")  # attention checks expect 'left': all pass
    vote_all(repo, study_id, b, choice="right")  # all fail
    progress = repo.progress(study_id)
    assert (progress.items, progress.votes_target, progress.votes) == (6, 12, 12)
    assert (progress.attention_checks, progress.attention_passed) == (4, 2)
    by_name = {p.name: p for p in progress.annotators}
    assert by_name["annotator-0"].attention_checks == 2 and by_name["annotator-0"].attention_passed == 2
    assert by_name["annotator-1"].attention_passed == 0
    assert all(p.completed == 6 and p.remaining == 0 and p.pending == 0 for p in progress.annotators)
    assert [p.completed for p in progress.per_item] == [2] * 6
    assert repo.annotator_progress(a) == by_name["annotator-0"]


def test_remaining_counts_for_the_progress_bar(repo: Repository) -> None:
    study_id = repo.create_study(make_study(votes_per_item=1), make_items(4))
    a, b = invite(repo, study_id, 2)
    assert repo.annotator_progress(a).remaining == 4
    assignment, _ = repo.next_item_for(a, study_id)  # type: ignore[misc]
    assert (repo.annotator_progress(a).pending, repo.annotator_progress(a).remaining) == (1, 3)
    assert repo.annotator_progress(b).remaining == 3  # a's pending item holds the only slot
    repo.record_vote(assignment.assignment_id, "left", 1)
    assert repo.annotator_progress(a).completed == 1


def test_record_vote_and_next_in_one_transaction(repo: Repository, clock: FakeClock) -> None:
    study_id = repo.create_study(make_study(votes_per_item=1), make_items(2))  # a's next item: the only one left
    a, b = invite(repo, study_id, 2)
    assignment, item = repo.next_item_for(a, study_id)  # type: ignore[misc]
    vote, nxt = repo.record_vote_and_next(assignment.assignment_id, "left", 10, annotator_id=a)
    assert vote.item_id == item.item_id and nxt is not None and nxt[1].item_id != item.item_id
    again, same_next = repo.record_vote_and_next(assignment.assignment_id, "right", 10, annotator_id=a)
    assert again == vote and same_next == nxt  # double click: same vote, same next item, nothing new
    assert len(repo.load_votes(study_id)) == 1
    clock.advance(hours=1)
    _, taken = repo.next_item_for(b, study_id)  # type: ignore[misc]
    assert taken.item_id == nxt[1].item_id  # a's stale slot went to b
    repo.record_vote(repo.next_item_for(b, study_id)[0].assignment_id, "left", 1)  # type: ignore[index]
    with pytest.raises(AssignmentError, match="expired"):
        repo.record_vote_and_next(nxt[0].assignment_id, "left", 10, annotator_id=a)
    assert len(repo.load_votes(study_id)) == 2


def test_submit_says_whether_the_answer_was_counted(repo: Repository) -> None:
    study_id = repo.create_study(make_study(votes_per_item=1), make_items(3))
    (a,) = invite(repo, study_id, 1)
    assignment, _ = repo.next_item_for(a, study_id)  # type: ignore[misc]
    first = repo.submit(Answer(assignment.assignment_id, "left", 900, a))
    assert first.counted and first.vote.choice == "left" and first.next is not None
    stale = repo.submit(Answer(assignment.assignment_id, "right", 400, a))  # a second tab answers it again
    assert not stale.counted and stale.vote == first.vote and stale.next == first.next
    assert [v.choice for v in repo.load_votes(study_id)] == ["left"]
    second = repo.submit(Answer(first.next[0].assignment_id, "right", 700, a))  # type: ignore[index]
    assert second.counted and second.vote.vote_id != first.vote.vote_id


def test_annotators_tour_equally_filled_items_in_different_orders(repo: Repository) -> None:
    study_id = repo.create_study(make_study(votes_per_item=5), make_items(12))
    tours = [vote_all(repo, study_id, a) for a in invite(repo, study_id, 3)]
    assert all(sorted(t) == sorted(tours[0]) and len(t) == 12 for t in tours)
    assert len({tuple(t) for t in tours}) == 3  # same items, three different orders
