"""Which item an annotator gets next: the least-filled open item, in the annotator's own order, by index seeks only.

Order. The items of a study are shuffled once, at creation, into ``tour_rank`` ``0..n−1`` (`tour_ranks`, from the
study seed and the item positions). Annotator ``k`` reads that shuffled list cyclically from a cursor: the cursor
starts at ``⌊frac(k·φ⁻¹)·n⌋`` (`tour_start`; golden-ratio spacing puts consecutive annotators far apart on the
cycle) and moves to just past each item they are given. So annotators start in different places and see the items
in different orders, and no two concurrent annotators chase the same items.

Rule. Among the items that have a free slot (``n_active < votes_target``) and that the annotator was never given,
take those with the fewest active assignments (the lowest *level* ``n_active``), and among them the first at or
after the cursor, wrapping around. With the partial index ``ix_items_open (study_id, n_active, tour_rank)`` this is
two index seeks (from the cursor, then from the start) per level tried, plus one probe of the unique
``(item_id, annotator_id)`` index per item the annotator has already seen at that level: its cost does not grow
with the study.

Claim. `claim_statement` does the choice and takes the slot in one ``UPDATE items SET n_active = n_active + 1
WHERE item_id = (choice) RETURNING ...``. On PostgreSQL the choice locks the row it picks (``FOR NO KEY UPDATE``,
which other transactions' foreign-key checks do not conflict with) and, in the skipping form, passes over rows
other transactions hold (``SKIP LOCKED``), so writers on different items never wait for each other; a locked row
is re-checked after the lock, so the slot taken is still free. On SQLite the whole transaction runs alone
(``BEGIN IMMEDIATE``) and the locking clauses are left out.
"""

from __future__ import annotations

import hashlib
from typing import Any

from sqlalchemy import Select, Update, bindparam, exists, func, insert, literal, select, text, true, update

from harness.storage.schema import OPEN_ITEM, annotators, assignments, items

GOLDEN = 0.6180339887498949
"""φ⁻¹ = (√5 − 1)/2: the fractional parts of k·φ⁻¹ spread any run of consecutive k evenly over [0, 1)."""


def tour_ranks(seed: int, positions: list[int]) -> dict[int, int]:
    """position -> rank ``0..n−1`` of the study's shuffled order: positions sorted by BLAKE2b-64("seed:position")."""

    def key(position: int) -> tuple[bytes, int]:
        return hashlib.blake2b(f"{seed}:{position}".encode(), digest_size=8).digest(), position

    return {position: rank for rank, position in enumerate(sorted(positions, key=key))}


def tour_start(annotator_id: int, n_items: int) -> int:
    """The rank where annotator ``annotator_id`` starts reading a study of ``n_items`` items: ⌊frac(k·φ⁻¹)·n⌋."""
    return int((annotator_id * GOLDEN) % 1.0 * n_items) if n_items else 0


def _first_open(level: Any, cursor: Any, *, after_cursor: bool, skip_locked: bool) -> Any:
    """Scalar subquery: id of the first open item at ``level`` the annotator has not seen, from/before the cursor."""
    cand = items.alias("cand")
    seen = (  # a LIMIT keeps this a probe of uq_assignments_item_annotator per candidate: PostgreSQL would turn
        # NOT EXISTS into an anti-join that reads all of the annotator's assignments
        select(literal(1))
        .where(assignments.c.item_id == cand.c.item_id, assignments.c.annotator_id == bindparam("b_annotator"))
        .limit(1)
        .scalar_subquery()
    )
    rank = cand.c.tour_rank
    side = rank >= cursor if after_cursor else rank < cursor
    return (
        select(cand.c.item_id)
        .where(
            cand.c.study_id == bindparam("b_study"), cand.c.n_active == level, text(OPEN_ITEM), side, seen.is_(None)
        )
        .order_by(rank)
        .limit(1)
        .with_for_update(skip_locked=skip_locked, key_share=True)
        .scalar_subquery()
    )


def _lowest_level(*, above: bool = False) -> Any:
    """The lowest fill level among the study's open items (the first entry of ``ix_items_open``), or above ``:b_above``."""
    lvl = items.alias("lvl")
    stmt = select(func.min(lvl.c.n_active)).where(lvl.c.study_id == bindparam("b_study"), text(OPEN_ITEM))
    return stmt.where(lvl.c.n_active > bindparam("b_above")) if above else stmt


def claim_statement(*, lowest: bool, skip_locked: bool, cursor: Any = None) -> Update:
    """Take a slot of the annotator's next item at one level; returns the item's row, or no row when none is open.

    Parameters: ``b_study``, ``b_annotator``, ``b_cursor`` (unless ``cursor`` is given) and, unless ``lowest``,
    ``b_level``.

    Args:
        lowest: choose at the study's lowest open level (the common case, one statement) instead of ``level``.
        skip_locked: PostgreSQL: pass over rows other transactions hold instead of waiting for them.
        cursor: SQL expression of the annotator's cursor (default: the parameter ``b_cursor``).
    """
    level = _lowest_level().scalar_subquery() if lowest else bindparam("b_level")
    cursor = bindparam("b_cursor", type_=items.c.tour_rank.type) if cursor is None else cursor
    chosen = func.coalesce(
        _first_open(level, cursor, after_cursor=True, skip_locked=skip_locked),
        _first_open(level, cursor, after_cursor=False, skip_locked=skip_locked),
    )
    return (
        update(items)
        .where(items.c.item_id == chosen)
        .values(n_active=items.c.n_active + 1)
        .returning(*items.c)
    )


def claim_and_assign_statement(claim: Update) -> Select[Any]:
    """PostgreSQL: ``claim`` (`claim_statement`), the new pending assignment and the cursor move, in one statement.

    Returns the claimed item's row plus ``assignment_id``, or no row (and changes nothing) when nothing is open.
    Parameters: those of ``claim``, and ``b_now``. SQLite, which has no data-modifying ``WITH``, runs the three
    statements one after the other in its single-writer transaction instead.
    """
    claimed = claim.cte("claimed")
    added = (
        insert(assignments)
        .from_select(
            ["study_id", "item_id", "annotator_id", "status", "created_at", "holds_slot"],
            select(
                claimed.c.study_id,
                claimed.c.item_id,
                bindparam("b_annotator", type_=assignments.c.annotator_id.type),
                literal("pending"),
                bindparam("b_now", type_=assignments.c.created_at.type),
                true(),
            ),
        )
        .returning(assignments.c.assignment_id, assignments.c.item_id)
        .cte("added")
    )
    moved = (
        update(annotators)
        .where(annotators.c.annotator_id == bindparam("b_annotator"))
        .values(tour_cursor=select(claimed.c.tour_rank + 1).scalar_subquery())
        .where(exists(select(claimed.c.item_id)))
        .cte("moved")
    )
    return (
        select(*claimed.c, added.c.assignment_id)
        .select_from(claimed.join(added, added.c.item_id == claimed.c.item_id))
        .add_cte(moved)
    )


def next_level_statement() -> Any:
    """The lowest open level above ``:b_above`` in the study (``NULL`` when none): the levels tried one by one."""
    return _lowest_level(above=True)
