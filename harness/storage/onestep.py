"""PostgreSQL: the common case of a vote, and of handing out the next item, each in one statement.

A click on PostgreSQL costs a network round trip per statement, and each round trip costs ~0.15 ms of client CPU
(psycopg) and as much in the server; the general logic of `harness.storage.assign` takes five statements per click.
These two statements do the same work with data-modifying ``WITH`` clauses when nothing unusual is going on, and
*change nothing* otherwise, so the caller then runs the general logic (which also gives the precise error):

- `vote`: the assignment is pending, the study open, the annotator its owner (when given), a tie allowed (when
  chosen), and the item's slot is held, or free to be taken back. It locks the assignment and its annotator (as
  `assign.record_vote` does, annotator → assignment → item), counts the vote on the item, inserts the vote (sides
  mapped to models exactly as `assign.record_vote` maps them) and completes the assignment. An assignment being
  answered concurrently (a second tab) is re-checked after its lock: it is no longer pending, so nothing happens
  and the general logic returns the first vote.
- `claim`: the annotator belongs to the open study and has no pending assignment, and the study's lowest level has
  an item for them that no other transaction holds. It locks the annotator, then claims as
  `tour.claim_and_assign_statement` does.

SQLite runs the general logic only: its statements cost microseconds and its transactions run one at a time.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, and_, bindparam, exists, select, text

from harness.storage import rows, tour
from harness.storage.prepared import Prepared
from harness.storage.records import AssignmentRecord, ItemRecord, VoteRecord
from harness.storage.schema import annotators, assignments, studies, votes

_VOTE_SQL = """
WITH head AS (
    SELECT a.assignment_id, a.study_id, a.item_id, a.annotator_id, a.holds_slot, s.protocol_name
    FROM assignments AS a
    JOIN studies AS s ON s.study_id = a.study_id
    JOIN annotators AS n ON n.annotator_id = a.annotator_id
    WHERE a.assignment_id = :b_assignment
      AND a.status = 'pending'
      AND s.status = 'open'
      AND (a.annotator_id = :b_owner OR CAST(:b_owner AS INTEGER) IS NULL)
      AND (s.allow_tie OR :b_choice <> 'tie')
    FOR NO KEY UPDATE OF a, n
), counted AS (
    UPDATE items
    SET n_done = items.n_done + 1,
        n_active = items.n_active + CASE WHEN head.holds_slot THEN 0 ELSE 1 END
    FROM head
    WHERE items.item_id = head.item_id AND (head.holds_slot OR items.n_active < items.votes_target)
    RETURNING items.item_id, items.system_a, items.system_b, items.prompt,
              CASE WHEN items."left" = 'a' THEN items.system_a ELSE items.system_b END AS left_model,
              CASE WHEN items."left" = 'a' THEN items.system_b ELSE items.system_a END AS right_model
), stored AS (
    INSERT INTO votes (assignment_id, study_id, item_id, annotator_id, protocol, choice, winner,
                       model_a, model_b, left_model, prompt, response_ms, created_at)
    SELECT head.assignment_id, head.study_id, head.item_id, head.annotator_id, head.protocol_name, :b_choice,
           CASE WHEN :b_choice = 'tie' THEN 'tie'
                WHEN (CASE WHEN :b_choice = 'left' THEN counted.left_model ELSE counted.right_model END)
                     = counted.system_a THEN 'model_a'
                ELSE 'model_b' END,
           counted.system_a, counted.system_b, counted.left_model, counted.prompt, :b_ms, :b_now
    FROM head JOIN counted ON counted.item_id = head.item_id
    RETURNING *
), finished AS (
    UPDATE assignments SET status = 'completed', completed_at = :b_now, holds_slot = true
    FROM stored WHERE assignments.assignment_id = stored.assignment_id
)
SELECT * FROM stored
"""

_VOTE = Prepared(
    text(_VOTE_SQL)
    .bindparams(
        bindparam("b_assignment", type_=assignments.c.assignment_id.type),
        bindparam("b_owner", type_=assignments.c.annotator_id.type),
        bindparam("b_choice", type_=votes.c.choice.type),
        bindparam("b_ms", type_=votes.c.response_ms.type),
        bindparam("b_now", type_=votes.c.created_at.type),
    )
    .columns(*votes.c)
)

_WHO = (
    select(annotators.c.tour_cursor)
    .join(studies, studies.c.study_id == annotators.c.study_id)
    .where(
        annotators.c.annotator_id == bindparam("b_annotator"),
        annotators.c.study_id == bindparam("b_study"),
        studies.c.status == "open",
        ~exists().where(
            and_(assignments.c.annotator_id == annotators.c.annotator_id, assignments.c.status == "pending")
        ),
    )
    .with_for_update(of=annotators, key_share=True)
    .cte("who")
)
_CLAIM = Prepared(
    tour.claim_and_assign_statement(
        tour.claim_statement(lowest=True, skip_locked=True, cursor=select(_WHO.c.tour_cursor).scalar_subquery())
    )
)


def vote(
    conn: Connection, assignment_id: int, choice: str, response_ms: int, annotator_id: int | None, now: datetime
) -> VoteRecord | None:
    """Record the vote in one statement; ``None`` (nothing changed) when the general logic must decide."""
    params = {"b_assignment": assignment_id, "b_owner": annotator_id, "b_choice": choice, "b_ms": int(response_ms),
              "b_now": now}
    row = _VOTE.first(conn, params)
    return None if row is None else rows.vote_record(row)


def claim(
    conn: Connection, annotator_id: int, study_id: int, now: datetime
) -> tuple[AssignmentRecord, ItemRecord] | None:
    """Hand out the annotator's next item in one statement; ``None`` (nothing changed) when the general logic must."""
    row = _CLAIM.first(conn, {"b_annotator": annotator_id, "b_study": study_id, "b_now": now})
    if row is None:
        return None
    assignment = AssignmentRecord(int(row.assignment_id), study_id, int(row.item_id), annotator_id, "pending", now, None)
    return assignment, rows.item_record(row)
