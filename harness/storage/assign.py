"""Handing items to annotators and recording their answers, safely under concurrency.

Every function here runs inside the caller's write transaction (`harness.storage.engine.write_transaction`) and
starts by locking the study (`lock_study`): on PostgreSQL a ``SELECT ... FOR NO KEY UPDATE`` of the study row
(which does not block foreign-key checks of other inserts), on SQLite the transaction's ``BEGIN IMMEDIATE``.
So the read-count-then-insert of `next_item` and the check-then-insert of `record_vote` run one at a time per
study, and their invariants hold whatever the number of app processes:

- an item is never handed out beyond its quota: its *active* assignments (completed, plus pending ones younger than
  the assignment timeout) stay ``<= votes_target``;
- no item is skipped: the next item is always one with the fewest active assignments that is below quota and that
  this annotator has never been assigned (unique ``(item_id, annotator_id)``);
- one vote per assignment (unique ``votes.assignment_id``), written in the transaction that completes it.

Pending assignments older than the timeout are reclaimable: they stop counting toward the quota, so their slot can
go to another annotator. If the late annotator then answers and the slot is still free, the vote counts; if the
slot was taken, the assignment becomes ``expired`` and the vote is refused (`AssignmentError`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Connection, Row, and_, case, cast, exists, func, insert, literal, or_, select, update

from harness.errors import HarnessError
from harness.storage import rows
from harness.storage.records import (
    CHOICES,
    AnnotatorProgress,
    AssignmentRecord,
    AssignmentStatus,
    ItemProgress,
    ItemRecord,
    StudyProgress,
    StudyRecord,
    VoteRecord,
)
from harness.storage.schema import annotators, assignments, items, studies, votes

_TOUR_MODULUS = 2147483647
"""Among equally-filled items, annotator ``k`` takes them in the order of ``(position * m_k + o_k) mod p`` (p prime,
``m_k`` and ``o_k`` derived from ``k``): a pseudo-random permutation of the positions per annotator, so annotators
do not all see the items in the same order (computed in SQL, no extra query)."""


def _tour_key(annotator_id: int) -> Any:
    multiplier = 1 + (annotator_id * 2654435761) % (_TOUR_MODULUS - 1)  # in [1, p-1]: one-to-one mod p
    offset = (annotator_id * 1640531527) % _TOUR_MODULUS
    position = cast(items.c.position, BigInteger)
    return (position * literal(multiplier, BigInteger) + literal(offset, BigInteger)) % _TOUR_MODULUS


class AssignmentError(HarnessError):
    """An answer that cannot be recorded: unknown, finished or expired assignment, wrong annotator, bad choice."""


class StudyNotOpenError(AssignmentError):
    """The study is not open for votes (draft or closed)."""


def lock_study(conn: Connection, study_id: int) -> StudyRecord:
    """Lock the study against concurrent assignment changes (PostgreSQL row lock) and return it.

    Raises:
        AssignmentError: no such study.
    """
    stmt = select(studies).where(studies.c.study_id == study_id).with_for_update(key_share=True)
    row = conn.execute(stmt).first()
    if row is None:
        raise AssignmentError(
            f"study {study_id} does not exist; check the study id (studies are listed on the admin page)"
        )
    return rows.study_record(row)


def _lock_study_of(conn: Connection, assignment_id: int) -> StudyRecord:
    """`lock_study` for the study of an assignment (one statement)."""
    stmt = (
        select(studies)
        .join(assignments, assignments.c.study_id == studies.c.study_id)
        .where(assignments.c.assignment_id == assignment_id)
        .with_for_update(of=studies, key_share=True)
    )
    row = conn.execute(stmt).first()
    if row is None:
        raise AssignmentError(f"assignment {assignment_id} does not exist; reload the page to get the next item")
    return rows.study_record(row)


def _require_open(study: StudyRecord) -> None:
    if study.status != "open":
        raise StudyNotOpenError(
            f"study {study.name!r} is {study.status}, not open for votes; ask the study's admin to open it"
        )


def _active(cutoff: datetime) -> Any:
    """SQL condition: an assignment that counts toward its item's quota."""
    return or_(
        assignments.c.status == "completed",
        and_(assignments.c.status == "pending", assignments.c.created_at >= cutoff),
    )


def _open_items(study_id: int, annotator_id: int, cutoff: datetime) -> tuple[Any, Any]:
    """(select of the ids of items open to the annotator, their active-assignment count column)."""
    active = (
        select(assignments.c.item_id, func.count().label("n"))
        .where(assignments.c.study_id == study_id, _active(cutoff))
        .group_by(assignments.c.item_id)
        .subquery()
    )
    n_active = func.coalesce(active.c.n, 0)
    seen = exists().where(assignments.c.item_id == items.c.item_id, assignments.c.annotator_id == annotator_id)
    stmt = (
        select(items.c.item_id)
        .outerjoin(active, active.c.item_id == items.c.item_id)
        .where(items.c.study_id == study_id, n_active < items.c.votes_target, ~seen)
    )
    return stmt, n_active


def remaining_for(conn: Connection, study_id: int, annotator_id: int, cutoff: datetime) -> int:
    """Number of items the annotator could still be given (below quota, never assigned to them)."""
    stmt, _ = _open_items(study_id, annotator_id, cutoff)
    return int(conn.execute(select(func.count()).select_from(stmt.subquery())).scalar_one())


def _slot_free(conn: Connection, item_id: int, votes_target: int, cutoff: datetime, exclude: int) -> bool:
    """Whether the item has room for one more active assignment besides assignment ``exclude``."""
    stmt = select(func.count()).where(
        assignments.c.item_id == item_id, assignments.c.assignment_id != exclude, _active(cutoff)
    )
    return int(conn.execute(stmt).scalar_one()) < votes_target


def _item(conn: Connection, item_id: int) -> ItemRecord:
    return rows.item_record(conn.execute(select(items).where(items.c.item_id == item_id)).one())


def _assignment_row(conn: Connection, assignment_id: int) -> Row[Any]:
    row = conn.execute(select(assignments).where(assignments.c.assignment_id == assignment_id)).first()
    if row is None:
        raise AssignmentError(f"assignment {assignment_id} does not exist; reload the page to get the next item")
    return row


def next_item(
    conn: Connection, annotator_id: int, study_id: int, now: datetime, cutoff: datetime
) -> tuple[AssignmentRecord, ItemRecord] | None:
    """The annotator's current assignment, or a new one for the least-voted open item; ``None`` when none is left.

    A pending assignment of the annotator is returned again (a rerun or a second tab shows the same item); if it
    is older than ``cutoff`` it is refreshed when its slot is still free, and expired otherwise.

    Raises:
        AssignmentError: unknown study or annotator, or an annotator of another study.
        StudyNotOpenError: the study is not open.
    """
    study = lock_study(conn, study_id)
    _require_open(study)
    owner = conn.execute(select(annotators.c.study_id).where(annotators.c.annotator_id == annotator_id)).first()
    if owner is None or owner.study_id != study_id:
        raise AssignmentError(f"annotator {annotator_id} is not invited to study {study_id}; use your invite link")
    pending = conn.execute(
        select(assignments)
        .where(assignments.c.annotator_id == annotator_id, assignments.c.status == "pending")
        .order_by(assignments.c.assignment_id)
    ).all()
    for row in pending:
        item = _item(conn, row.item_id)
        if row.created_at >= cutoff:
            return rows.assignment_record(row), item
        fresh = _slot_free(conn, row.item_id, item.votes_target, cutoff, exclude=row.assignment_id)
        values: dict[str, Any] = {"created_at": now} if fresh else {"status": "expired", "completed_at": now}
        conn.execute(update(assignments).where(assignments.c.assignment_id == row.assignment_id).values(**values))
        if fresh:
            return rows.assignment_record(_assignment_row(conn, row.assignment_id)), item
    return _assign_new(conn, study_id, annotator_id, now, cutoff)


def _assign_new(
    conn: Connection, study_id: int, annotator_id: int, now: datetime, cutoff: datetime
) -> tuple[AssignmentRecord, ItemRecord] | None:
    stmt, n_active = _open_items(study_id, annotator_id, cutoff)
    row = conn.execute(stmt.order_by(n_active, _tour_key(annotator_id), items.c.position).limit(1)).first()
    if row is None:
        return None
    values = {
        "study_id": study_id,
        "item_id": row.item_id,
        "annotator_id": annotator_id,
        "status": "pending",
        "created_at": now,
        "completed_at": None,
    }
    assignment_id = conn.execute(insert(assignments).values(**values)).inserted_primary_key[0]  # type: ignore[index]
    return AssignmentRecord(assignment_id=int(assignment_id), **values), _item(conn, row.item_id)


def _check_owner(row: Row[Any], annotator_id: int | None) -> None:
    if annotator_id is not None and row.annotator_id != annotator_id:
        raise AssignmentError(
            f"assignment {row.assignment_id} belongs to another annotator; reload the page from your own invite link"
        )


def existing_vote(conn: Connection, assignment_id: int) -> VoteRecord | None:
    """The vote that completed the assignment, if any."""
    row = conn.execute(select(votes).where(votes.c.assignment_id == assignment_id)).first()
    return None if row is None else rows.vote_record(row)


def record_vote(
    conn: Connection,
    assignment_id: int,
    choice: str,
    response_ms: int,
    annotator_id: int | None,
    now: datetime,
    cutoff: datetime,
) -> VoteRecord | None:
    """Store the vote and complete its assignment; returns the existing vote when it was already recorded.

    Returns ``None`` when the assignment had gone stale and its slot was taken: it is marked ``expired`` (commit,
    then tell the annotator with `AssignmentError`).

    Raises:
        AssignmentError: unknown assignment, another annotator's, skipped/broken/expired, a bad choice, or a tie in
            a study without the tie option.
        StudyNotOpenError: the study is not open.
    """
    if choice not in CHOICES:
        raise AssignmentError(f"choice {choice!r} is not one of {', '.join(CHOICES)}")
    study = _lock_study_of(conn, assignment_id)
    row = _assignment_row(conn, assignment_id)  # read under the lock
    _check_owner(row, annotator_id)
    if row.status == "completed":
        return existing_vote(conn, assignment_id)
    if row.status != "pending":
        raise AssignmentError(f"assignment {assignment_id} was {row.status}; reload the page to get the next item")
    _require_open(study)
    if choice == "tie" and not study.allow_tie:
        raise AssignmentError(f"study {study.name!r} has no 'Not sure' option; choose left or right")
    item = _item(conn, row.item_id)
    if row.created_at < cutoff and not _slot_free(conn, item.item_id, item.votes_target, cutoff, assignment_id):
        _finish(conn, assignment_id, "expired", now)
        return None
    left_model, right_model = (item.system_a, item.system_b) if item.left == "a" else (item.system_b, item.system_a)
    winner_model = {"left": left_model, "right": right_model}.get(choice)
    winner = "tie" if winner_model is None else ("model_a" if winner_model == item.system_a else "model_b")
    values = {
        "assignment_id": assignment_id,
        "study_id": row.study_id,
        "item_id": row.item_id,
        "annotator_id": row.annotator_id,
        "protocol": study.protocol_name,
        "choice": choice,
        "winner": winner,
        "model_a": item.system_a,
        "model_b": item.system_b,
        "left_model": left_model,
        "prompt": item.prompt,
        "response_ms": int(response_ms),
        "created_at": now,
    }
    vote_id = conn.execute(insert(votes).values(**values)).inserted_primary_key[0]  # type: ignore[index]
    _finish(conn, assignment_id, "completed", now)
    return VoteRecord(vote_id=int(vote_id), **values)


def _finish(conn: Connection, assignment_id: int, status: AssignmentStatus, now: datetime) -> None:
    conn.execute(
        update(assignments).where(assignments.c.assignment_id == assignment_id).values(status=status, completed_at=now)
    )


def close_assignment(
    conn: Connection, assignment_id: int, status: AssignmentStatus, annotator_id: int | None, now: datetime
) -> AssignmentRecord:
    """Mark a pending assignment ``skipped`` or ``broken`` (idempotent: the same call twice is a no-op).

    Raises:
        AssignmentError: unknown assignment, another annotator's, or one already finished otherwise.
    """
    _lock_study_of(conn, assignment_id)
    row = _assignment_row(conn, assignment_id)
    _check_owner(row, annotator_id)
    if row.status == "pending":
        _finish(conn, assignment_id, status, now)
        row = _assignment_row(conn, assignment_id)
    elif row.status != status:
        raise AssignmentError(f"assignment {assignment_id} was already {row.status}; reload the page")
    return rows.assignment_record(row)


def _status_counts(conn: Connection, study_id: int, key: Any) -> dict[int, dict[str, int]]:
    stmt = (
        select(key, assignments.c.status, func.count())
        .where(assignments.c.study_id == study_id)
        .group_by(key, assignments.c.status)
    )
    counts: dict[int, dict[str, int]] = {}
    for owner, status, n in conn.execute(stmt):
        counts.setdefault(int(owner), {})[status] = int(n)
    return counts


def _attention_counts(conn: Connection, study_id: int) -> dict[int, tuple[int, int]]:
    """annotator id -> (attention-check votes, of which passed)."""
    passed = func.sum(case((votes.c.choice == items.c.expected, 1), else_=0))
    stmt = (
        select(votes.c.annotator_id, func.count(), passed)
        .join(items, items.c.item_id == votes.c.item_id)
        .where(votes.c.study_id == study_id, items.c.is_attention_check.is_(True))
        .group_by(votes.c.annotator_id)
    )
    return {int(a): (int(n), int(p or 0)) for a, n, p in conn.execute(stmt)}


def annotator_progress(conn: Connection, annotator_id: int, cutoff: datetime) -> AnnotatorProgress:
    """Counts of one annotator (see `AnnotatorProgress`).

    Raises:
        AssignmentError: unknown annotator.
    """
    row = conn.execute(select(annotators).where(annotators.c.annotator_id == annotator_id)).first()
    if row is None:
        raise AssignmentError(f"annotator {annotator_id} does not exist; use your invite link")
    counts = _status_counts(conn, row.study_id, assignments.c.annotator_id).get(annotator_id, {})
    checks, passed = _attention_counts(conn, row.study_id).get(annotator_id, (0, 0))
    return _annotator_progress(row, counts, remaining_for(conn, row.study_id, annotator_id, cutoff), checks, passed)


def _annotator_progress(
    row: Row[Any], counts: dict[str, int], remaining: int, checks: int, passed: int
) -> AnnotatorProgress:
    return AnnotatorProgress(
        annotator_id=int(row.annotator_id),
        name=row.name,
        completed=counts.get("completed", 0),
        skipped=counts.get("skipped", 0),
        broken=counts.get("broken", 0),
        pending=counts.get("pending", 0),
        remaining=remaining,
        attention_checks=checks,
        attention_passed=passed,
    )


def study_progress(conn: Connection, study_id: int, cutoff: datetime) -> StudyProgress:
    """Totals, per-annotator and per-item counts of a study (see `StudyProgress`)."""
    item_counts = _status_counts(conn, study_id, assignments.c.item_id)
    per_item = tuple(
        ItemProgress(
            item_id=int(r.item_id),
            position=int(r.position),
            votes_target=int(r.votes_target),
            completed=item_counts.get(r.item_id, {}).get("completed", 0),
            pending=item_counts.get(r.item_id, {}).get("pending", 0),
            skipped=item_counts.get(r.item_id, {}).get("skipped", 0),
            broken=item_counts.get(r.item_id, {}).get("broken", 0),
        )
        for r in conn.execute(select(items).where(items.c.study_id == study_id).order_by(items.c.position))
    )
    annotator_counts = _status_counts(conn, study_id, assignments.c.annotator_id)
    attention = _attention_counts(conn, study_id)
    people = tuple(
        _annotator_progress(
            r,
            annotator_counts.get(r.annotator_id, {}),
            remaining_for(conn, study_id, r.annotator_id, cutoff),
            *attention.get(r.annotator_id, (0, 0)),
        )
        for r in conn.execute(
            select(annotators).where(annotators.c.study_id == study_id).order_by(annotators.c.annotator_id)
        )
    )
    return StudyProgress(
        study_id=study_id,
        items=len(per_item),
        votes_target=sum(p.votes_target for p in per_item),
        votes=sum(p.completed for p in per_item),
        attention_checks=sum(c for c, _ in attention.values()),
        attention_passed=sum(p for _, p in attention.values()),
        annotators=people,
        per_item=per_item,
    )
