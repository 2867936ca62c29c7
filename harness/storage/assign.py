"""Handing items to annotators and recording their answers, with per-item counters, safely under concurrency.

Every function here runs inside the caller's write transaction (`harness.storage.writes`). Nothing aggregates a
study's assignments: each item carries ``n_active`` (assignments holding one of its ``votes_target`` slots: the
completed ones and the pending ones with ``holds_slot``) and ``n_done`` (its votes), changed in the transaction
that changes an assignment, and the next item is found by index seeks (`harness.storage.tour`). Invariants, on
SQLite and PostgreSQL, whatever the number of app processes:

- an item never has more than ``votes_target`` active assignments (``n_active <= votes_target``), so it never
  gets more votes than its quota;
- the next item is one with the fewest active assignments that is below quota and that this annotator has never
  been given (unique ``(item_id, annotator_id)``), in the annotator's own order;
- one vote per assignment (unique ``votes.assignment_id``), written in the transaction that completes it; a second
  submission of the same assignment returns the first vote.

Concurrency. On SQLite a write transaction runs alone (``BEGIN IMMEDIATE``). On PostgreSQL the common case of a
vote and of a claim each runs as one statement (`harness.storage.onestep`), with the same locks. Writers take row locks
in one order, annotator → assignment → item, and never a study-wide one: a writer locks its annotator row (so two
tabs of one annotator run one after the other), the assignment it answers, and the items whose counters it
changes; the next item is claimed with ``FOR UPDATE SKIP LOCKED`` (`harness.storage.tour`), so writers on
different items do not wait for each other. Only when that finds nothing does a claim wait for locked items, so an
annotator is never told "nothing left" while a slot is merely being written.

Stale assignments. A pending assignment older than the timeout (``created_at < cutoff``) keeps its slot until it is
*released* (`release_stale`: ``holds_slot`` false, ``n_active − 1``); then another annotator can take the slot.
Releases happen when a claim finds nothing and at most every `SWEEP_EVERY` of a repository's clock otherwise. If
the late annotator then answers (or asks again) and the item still has a free slot, the assignment takes it back
and the vote counts; if the slot was taken, the assignment becomes ``expired`` and the vote is refused
(`AssignmentError`).
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, text, update

from harness.errors import HarnessError
from harness.storage import onestep, rows, tour
from harness.storage.prepared import Prepared
from harness.storage.records import CHOICES, AssignmentRecord, AssignmentStatus, ItemRecord, StudyRecord, VoteRecord
from harness.storage.schema import HELD_PENDING, OPEN_ITEM, annotators, assignments, items, studies, votes

SWEEP_EVERY = timedelta(seconds=10)
"""How often (at most, per repository) a claim first releases the study's stale assignments."""

SWEEP_BATCH = 500
"""Stale assignments released per sweep (the rest at the next one)."""


class SweepSchedule:
    """When a repository's next claim in a study should first release stale slots: at its first claim there, then
    at most every `SWEEP_EVERY` of its clock (claims that find nothing always release first)."""

    def __init__(self) -> None:
        self._last: dict[int, datetime] = {}

    def due(self, study_id: int, now: datetime) -> bool:
        last = self._last.get(study_id)
        if last is not None and abs(now - last) < SWEEP_EVERY:
            return False
        self._last[study_id] = now
        return True


class AssignmentError(HarnessError):
    """An answer that cannot be recorded: unknown, finished or expired assignment, wrong annotator, bad choice."""


class StudyNotOpenError(AssignmentError):
    """The study is not open for votes (draft or closed)."""


# ------------------------------------------------------------------ statements (compiled once, see `prepared`)

_CLAIM_LOWEST = Prepared(tour.claim_statement(lowest=True, skip_locked=True))
_CLAIM_AND_ASSIGN = Prepared(tour.claim_and_assign_statement(tour.claim_statement(lowest=True, skip_locked=True)))
_CLAIM_AT_LEVEL = Prepared(tour.claim_statement(lowest=False, skip_locked=True))
_CLAIM_AT_LEVEL_WAITING = Prepared(tour.claim_statement(lowest=False, skip_locked=False))
_NEXT_LEVEL = Prepared(tour.next_level_statement())

_ANNOTATOR_HEAD = Prepared(
    select(
        annotators.c.study_id.label("owner"),
        annotators.c.tour_cursor,
        studies.c.status.label("study_status"),
        studies.c.name.label("study_name"),
        assignments.c.assignment_id,
        assignments.c.item_id,
        assignments.c.created_at,
        assignments.c.holds_slot,
    )
    .select_from(
        annotators.join(studies, studies.c.study_id == annotators.c.study_id).outerjoin(
            assignments,
            (assignments.c.annotator_id == annotators.c.annotator_id) & (assignments.c.status == "pending"),
        )
    )
    .where(annotators.c.annotator_id == bindparam("b_annotator"))
    .order_by(assignments.c.assignment_id)
    .with_for_update(of=annotators, key_share=True)
)
"""The annotator (locked) and their study, with their pending assignments (normally none or one)."""

_VOTE_HEAD = Prepared(
    select(
        assignments,
        studies.c.status.label("study_status"),
        studies.c.allow_tie,
        studies.c.name.label("study_name"),
        studies.c.protocol_name,
    )
    .join(studies, studies.c.study_id == assignments.c.study_id)
    .join(annotators, annotators.c.annotator_id == assignments.c.annotator_id)
    .where(assignments.c.assignment_id == bindparam("b_assignment"))
    .with_for_update(of=[annotators, assignments], key_share=True)
)
"""An assignment with its study; the assignment and its annotator locked."""

_COUNT_VOTE = Prepared(
    update(items).where(items.c.item_id == bindparam("b_item")).values(n_done=items.c.n_done + 1).returning(*items.c)
)
_TAKE_SLOT_STMT = (
    update(items)
    .where(items.c.item_id == bindparam("b_item"), text(OPEN_ITEM))
    .values(n_active=items.c.n_active + 1)
    .returning(*items.c)
)
_TAKE_SLOT = Prepared(_TAKE_SLOT_STMT)
_TAKE_SLOT_AND_COUNT = Prepared(_TAKE_SLOT_STMT.values(n_done=items.c.n_done + 1))
_FREE_SLOTS = (
    update(items).where(items.c.item_id == bindparam("b_item")).values(n_active=items.c.n_active - bindparam("b_n"))
)
_NEW_ASSIGNMENT = Prepared(
    insert(assignments)
    .values(
        study_id=bindparam("b_study"),
        item_id=bindparam("b_item"),
        annotator_id=bindparam("b_annotator"),
        status="pending",
        created_at=bindparam("b_now", type_=assignments.c.created_at.type),
        holds_slot=True,
    )
    .returning(assignments.c.assignment_id)
)
_VOTE_FIELDS = {c.name: bindparam(f"b_{c.name}", type_=c.type) for c in votes.c if c.name != "vote_id"}
_NEW_VOTE = Prepared(insert(votes).values(_VOTE_FIELDS).returning(votes.c.vote_id))
_FINISH = Prepared(
    update(assignments)
    .where(assignments.c.assignment_id == bindparam("b_assignment"))
    .values(
        status=bindparam("b_status"),
        completed_at=bindparam("b_now", type_=assignments.c.completed_at.type),
        holds_slot=bindparam("b_holds", type_=assignments.c.holds_slot.type),
    )
)
_STORED = insert(votes).values(_VOTE_FIELDS).returning(votes.c.vote_id).cte("stored")
_STORE_VOTE = Prepared(  # PostgreSQL: the vote and the completed assignment in one statement
    update(assignments)
    .where(assignments.c.assignment_id == bindparam("b_assignment"))
    .values(status="completed", completed_at=bindparam("b_now", type_=assignments.c.completed_at.type), holds_slot=True)
    .returning(select(_STORED.c.vote_id).scalar_subquery().label("vote_id"))
    .add_cte(_STORED)
)
_MOVE_CURSOR = Prepared(
    update(annotators)
    .where(annotators.c.annotator_id == bindparam("b_annotator"))
    .values(tour_cursor=bindparam("b_cursor"))
)
_STALE = Prepared(
    select(assignments.c.assignment_id, assignments.c.item_id)
    .where(
        assignments.c.study_id == bindparam("b_study"),
        text(HELD_PENDING),
        assignments.c.created_at < bindparam("b_cutoff", type_=assignments.c.created_at.type),
    )
    .order_by(assignments.c.created_at)
    .limit(SWEEP_BATCH)
    .with_for_update(skip_locked=True)
)


# ------------------------------------------------------------------ handing out items


def next_item(
    conn: Connection, annotator_id: int, study_id: int, now: datetime, cutoff: datetime, *, sweep: bool = False
) -> tuple[AssignmentRecord, ItemRecord] | None:
    """The annotator's current assignment, or a new one for the least-filled open item; ``None`` when none is left.

    A pending assignment of the annotator is returned again (a rerun or a second tab shows the same item); if it
    is older than ``cutoff`` it is refreshed when it still holds its slot or can take a free one, and expired
    otherwise.

    Args:
        sweep: release the study's stale assignments before claiming (see the module docstring).

    Raises:
        AssignmentError: unknown study or annotator, or an annotator of another study.
        StudyNotOpenError: the study is not open.
    """
    postgresql = conn.dialect.name == "postgresql"
    if postgresql and not sweep and (claimed := onestep.claim(conn, annotator_id, study_id, now)) is not None:
        return claimed
    head = _ANNOTATOR_HEAD.rows(conn, {"b_annotator": annotator_id})
    if not head or head[0].owner != study_id:
        _require_open(_study(conn, study_id))  # the errors of the study come first
        raise AssignmentError(f"annotator {annotator_id} is not invited to study {study_id}; use your invite link")
    _require_open(head[0])
    for row in head:
        if row.assignment_id is not None and (kept := _keep_pending(conn, row, now, cutoff)) is not None:
            return kept
    return _assign_new(conn, study_id, annotator_id, int(head[0].tour_cursor), now, cutoff, sweep)


def _study(conn: Connection, study_id: int) -> StudyRecord:
    row = conn.execute(select(studies).where(studies.c.study_id == study_id)).first()
    if row is None:
        raise AssignmentError(
            f"study {study_id} does not exist; check the study id (studies are listed on the admin page)"
        )
    return rows.study_record(row)


def _require_open(study: StudyRecord | Any) -> None:
    status = study.status if isinstance(study, StudyRecord) else study.study_status
    name = study.name if isinstance(study, StudyRecord) else study.study_name
    if status != "open":
        raise StudyNotOpenError(f"study {name!r} is {status}, not open for votes; ask the study's admin to open it")


def _keep_pending(
    conn: Connection, row: Any, now: datetime, cutoff: datetime
) -> tuple[AssignmentRecord, ItemRecord] | None:
    """The annotator's pending assignment ``row`` if it may stay theirs (refreshed when stale), else expire it."""
    assignment_id = int(row.assignment_id)
    if row.created_at >= cutoff:
        return _assignment(conn, assignment_id), _item(conn, int(row.item_id))
    keep = update(assignments).where(assignments.c.assignment_id == assignment_id)
    if row.holds_slot and conn.execute(keep.where(assignments.c.holds_slot).values(created_at=now)).rowcount == 1:
        return _assignment(conn, assignment_id), _item(conn, int(row.item_id))
    item = _TAKE_SLOT.first(conn, {"b_item": row.item_id})  # released: take a free slot if any
    if item is None:
        conn.execute(keep.values(status="expired", completed_at=now, holds_slot=False))
        return None
    conn.execute(keep.values(created_at=now, holds_slot=True))
    return _assignment(conn, assignment_id), rows.item_record(item)


def _assign_new(
    conn: Connection, study_id: int, annotator_id: int, cursor: int, now: datetime, cutoff: datetime, sweep: bool
) -> tuple[AssignmentRecord, ItemRecord] | None:
    params = {"b_study": study_id, "b_annotator": annotator_id, "b_cursor": cursor, "b_now": now}
    if sweep:
        release_stale(conn, study_id, cutoff)
    if conn.dialect.name == "postgresql":  # claim, assignment and cursor in one statement (the common case)
        if (row := _CLAIM_AND_ASSIGN.first(conn, params)) is not None:
            return _new_assignment(row, int(row.assignment_id), annotator_id, now)
        item = None
    else:
        item = _CLAIM_LOWEST.first(conn, params)
    item = item or _claim(conn, params)
    if item is None and not sweep and release_stale(conn, study_id, cutoff):
        item = _claim(conn, params)
    if item is None:
        return None
    assignment_id = _NEW_ASSIGNMENT.rows(conn, {**params, "b_item": int(item.item_id)})[0][0]
    _MOVE_CURSOR.run(conn, {"b_annotator": annotator_id, "b_cursor": int(item.tour_rank) + 1})
    return _new_assignment(item, int(assignment_id), annotator_id, now)


def _new_assignment(
    item: Any, assignment_id: int, annotator_id: int, now: datetime
) -> tuple[AssignmentRecord, ItemRecord]:
    record = AssignmentRecord(assignment_id, int(item.study_id), int(item.item_id), annotator_id, "pending", now, None)
    return record, rows.item_record(item)


def _claim(conn: Connection, params: dict[str, Any]) -> Any | None:
    """The slow path of a claim: every open level from the lowest up, first passing over rows other writers hold,
    then (PostgreSQL only) waiting for them, so that "nothing left" is only said when nothing is."""
    passes = (_CLAIM_AT_LEVEL,) if conn.dialect.name == "sqlite" else (_CLAIM_AT_LEVEL, _CLAIM_AT_LEVEL_WAITING)
    for claim in passes:
        level = -1
        while (level := _NEXT_LEVEL.rows(conn, {"b_study": params["b_study"], "b_above": level})[0][0]) is not None:
            if (item := claim.first(conn, {**params, "b_level": level})) is not None:
                return item
    return None


def release_stale(conn: Connection, study_id: int, cutoff: datetime) -> int:
    """Release the slots of the study's pending assignments created before ``cutoff``; returns how many.

    Rows other transactions hold (an answer being written, another sweep) are left for a later sweep.
    """
    stale = _STALE.rows(conn, {"b_study": study_id, "b_cutoff": cutoff})
    if not stale:
        return 0
    held = sorted({r.item_id for r in stale})
    lockable = select(items.c.item_id).where(items.c.item_id.in_(held)).order_by(items.c.item_id)
    free = set(conn.execute(lockable.with_for_update(skip_locked=True)).scalars())
    released = [r for r in stale if r.item_id in free]
    if not released:
        return 0
    conn.execute(
        update(assignments)
        .where(assignments.c.assignment_id.in_([r.assignment_id for r in released]))
        .values(holds_slot=False)
    )
    per_item = Counter(r.item_id for r in released)
    conn.execute(_FREE_SLOTS, [{"b_item": i, "b_n": n} for i, n in sorted(per_item.items())])
    return len(released)


# ------------------------------------------------------------------ answers


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
) -> tuple[VoteRecord | None, bool]:
    """Store the vote and complete its assignment: ``(vote, True)``; ``(existing vote, False)`` when an earlier
    call had recorded it already (a double click, a second tab), storing nothing.

    Returns ``(None, False)`` when the assignment had been released (stale) and its item has no free slot any more:
    it is marked ``expired`` (commit, then tell the annotator with `AssignmentError`).

    Raises:
        AssignmentError: unknown assignment, another annotator's, skipped/broken/expired, a bad choice, or a tie in
            a study without the tie option.
        StudyNotOpenError: the study is not open.
    """
    if choice not in CHOICES:
        raise AssignmentError(f"choice {choice!r} is not one of {', '.join(CHOICES)}")
    postgresql = conn.dialect.name == "postgresql"
    if postgresql and (stored := onestep.vote(conn, assignment_id, choice, response_ms, annotator_id, now)) is not None:
        return stored, True
    head = _VOTE_HEAD.first(conn, {"b_assignment": assignment_id})
    if head is None:
        raise AssignmentError(f"assignment {assignment_id} does not exist; reload the page to get the next item")
    _check_owner(head, annotator_id)
    if head.status == "completed":
        return existing_vote(conn, assignment_id), False
    if head.status != "pending":
        raise AssignmentError(f"assignment {assignment_id} was {head.status}; reload the page to get the next item")
    _require_open(head)
    if choice == "tie" and not head.allow_tie:
        raise AssignmentError(f"study {head.study_name!r} has no 'Not sure' option; choose left or right")
    count = _COUNT_VOTE if head.holds_slot else _TAKE_SLOT_AND_COUNT
    item = count.first(conn, {"b_item": head.item_id})
    if item is None:  # released, and the slot went to someone else
        _finish(conn, assignment_id, "expired", now)
        return None, False
    left_model, right_model = (item.system_a, item.system_b) if item.left == "a" else (item.system_b, item.system_a)
    winner_model = {"left": left_model, "right": right_model}.get(choice)
    winner = "tie" if winner_model is None else ("model_a" if winner_model == item.system_a else "model_b")
    values = {
        "assignment_id": assignment_id,
        "study_id": head.study_id,
        "item_id": head.item_id,
        "annotator_id": head.annotator_id,
        "protocol": head.protocol_name,
        "choice": choice,
        "winner": winner,
        "model_a": item.system_a,
        "model_b": item.system_b,
        "left_model": left_model,
        "prompt": item.prompt,
        "response_ms": int(response_ms),
        "created_at": now,
    }
    return VoteRecord(vote_id=_store_vote(conn, values), **values), True


def _store_vote(conn: Connection, values: dict[str, Any]) -> int:
    """Insert the vote and complete its assignment; returns the vote id (one statement on PostgreSQL)."""
    params = {f"b_{k}": v for k, v in values.items()}
    if conn.dialect.name == "postgresql":
        return int(_STORE_VOTE.rows(conn, {**params, "b_assignment": values["assignment_id"], "b_now": values["created_at"]})[0][0])
    vote_id = _NEW_VOTE.rows(conn, params)[0][0]
    _finish(conn, values["assignment_id"], "completed", values["created_at"])
    return int(vote_id)


def _check_owner(row: Any, annotator_id: int | None) -> None:
    if annotator_id is not None and row.annotator_id != annotator_id:
        raise AssignmentError(
            f"assignment {row.assignment_id} belongs to another annotator; reload the page from your own invite link"
        )


def _finish(conn: Connection, assignment_id: int, status: AssignmentStatus, now: datetime) -> None:
    values = {"b_assignment": assignment_id, "b_status": status, "b_now": now, "b_holds": status == "completed"}
    _FINISH.run(conn, values)


def close_assignment(
    conn: Connection, assignment_id: int, status: AssignmentStatus, annotator_id: int | None, now: datetime
) -> AssignmentRecord:
    """Mark a pending assignment ``skipped`` or ``broken``, freeing its slot (idempotent: a second call is a no-op).

    Raises:
        AssignmentError: unknown assignment, another annotator's, or one already finished otherwise.
    """
    head = _VOTE_HEAD.first(conn, {"b_assignment": assignment_id})
    if head is None:
        raise AssignmentError(f"assignment {assignment_id} does not exist; reload the page to get the next item")
    _check_owner(head, annotator_id)
    if head.status == "pending":
        if head.holds_slot:
            conn.execute(_FREE_SLOTS, {"b_item": head.item_id, "b_n": 1})
        _finish(conn, assignment_id, status, now)
    elif head.status != status:
        raise AssignmentError(f"assignment {assignment_id} was already {head.status}; reload the page")
    return _assignment(conn, assignment_id)


# ------------------------------------------------------------------ rows


def _item(conn: Connection, item_id: int) -> ItemRecord:
    return rows.item_record(conn.execute(select(items).where(items.c.item_id == item_id)).one())


def _assignment(conn: Connection, assignment_id: int) -> AssignmentRecord:
    return rows.assignment_record(
        conn.execute(select(assignments).where(assignments.c.assignment_id == assignment_id)).one()
    )
