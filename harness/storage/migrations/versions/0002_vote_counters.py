"""Vote counters: per-item slot counters, the study's shuffled tour, per-annotator cursors, slot-holding flag.

Adds ``items.n_active`` / ``items.n_done`` / ``items.tour_rank``, ``annotators.tour_cursor``,
``assignments.holds_slot`` and the partial indexes ``ix_items_open`` and ``ix_assignments_held``, then fills them
from the existing rows, so a store carries its votes forward:

- ``holds_slot``: true for completed assignments; pending ones hold a slot newest first up to the item's free
  capacity (``votes_target − completed``), older ones are released (they had gone stale and lost their slot);
  skipped, broken and expired ones hold none;
- ``n_active`` = holding assignments, ``n_done`` = completed ones (the item's votes);
- ``tour_rank``: the items of each study in a shuffled order, ``0..n−1``, from (study seed, position);
- ``tour_cursor``: the rank after the annotator's last assigned item, or their starting point;
- ``uq_assignments_pending``: at most one pending assignment per annotator, which the code has always kept (a
  pending assignment is shown again before a new one is made); should a store hold more, the later ones, never
  shown, become ``expired``.

Columns are added in place (``ALTER TABLE ... ADD COLUMN``), never by rebuilding a table: on SQLite a rebuild of
``items`` would drop the table under ``PRAGMA foreign_keys=ON`` and cascade the delete to its votes.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

from __future__ import annotations

import hashlib
from collections import defaultdict

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

OPEN_ITEM = "n_active < votes_target"
HELD_PENDING = "status = 'pending' AND holds_slot"
PENDING = "status = 'pending'"
GOLDEN = 0.6180339887498949


def tour_ranks(seed: int, positions: list[int]) -> dict[int, int]:
    """position -> rank in the study's shuffled order (copy of `harness.storage.tour.tour_ranks` at 0002)."""
    def key(position: int) -> tuple[bytes, int]:
        return hashlib.blake2b(f"{seed}:{position}".encode(), digest_size=8).digest(), position

    return {position: rank for rank, position in enumerate(sorted(positions, key=key))}


def tour_start(annotator_id: int, n_items: int) -> int:
    """Starting rank of an annotator (copy of `harness.storage.tour.tour_start` at 0002)."""
    return int((annotator_id * GOLDEN) % 1.0 * n_items) if n_items else 0


def upgrade() -> None:
    op.add_column("items", sa.Column("n_active", sa.Integer(), server_default=sa.text("0"), nullable=False))
    op.add_column("items", sa.Column("n_done", sa.Integer(), server_default=sa.text("0"), nullable=False))
    op.add_column("items", sa.Column("tour_rank", sa.BigInteger(), server_default=sa.text("0"), nullable=False))
    op.add_column("annotators", sa.Column("tour_cursor", sa.BigInteger(), server_default=sa.text("0"), nullable=False))
    op.add_column(
        "assignments", sa.Column("holds_slot", sa.Boolean(), server_default=sa.text("true"), nullable=False)
    )
    connection = op.get_bind()
    _backfill(connection)
    for name, table, columns, predicate, unique in (
        ("ix_items_open", "items", ["study_id", "n_active", "tour_rank"], OPEN_ITEM, False),
        ("ix_assignments_held", "assignments", ["study_id", "created_at"], HELD_PENDING, False),
        ("uq_assignments_pending", "assignments", ["annotator_id"], PENDING, True),
    ):
        where = sa.text(predicate)
        op.create_index(name, table, columns, unique=unique, sqlite_where=where, postgresql_where=where)

def _backfill(connection: sa.Connection) -> None:
    items = sa.table(
        "items", sa.column("item_id"), sa.column("study_id"), sa.column("position"), sa.column("votes_target"),
        sa.column("n_active"), sa.column("n_done"), sa.column("tour_rank"),
    )
    studies = sa.table("studies", sa.column("study_id"), sa.column("seed"))
    annotators = sa.table("annotators", sa.column("annotator_id"), sa.column("study_id"), sa.column("tour_cursor"))
    assignments = sa.table(
        "assignments", sa.column("assignment_id"), sa.column("item_id"), sa.column("annotator_id"),
        sa.column("status"), sa.column("created_at"), sa.column("completed_at"), sa.column("holds_slot"),
    )
    seeds = dict(connection.execute(sa.select(studies.c.study_id, studies.c.seed)).all())
    per_study: dict[int, list[tuple[int, int]]] = defaultdict(list)
    targets: dict[int, int] = {}
    for item_id, study_id, position, target in connection.execute(
        sa.select(items.c.item_id, items.c.study_id, items.c.position, items.c.votes_target)
    ):
        per_study[study_id].append((item_id, position))
        targets[item_id] = target
    rank_of: dict[int, int] = {}
    for study_id, members in per_study.items():
        ranks = tour_ranks(int(seeds[study_id]), [p for _, p in members])
        rank_of.update({item_id: ranks[p] for item_id, p in members})

    rows = connection.execute(
        sa.select(assignments.c.assignment_id, assignments.c.item_id, assignments.c.annotator_id,
                  assignments.c.status, assignments.c.created_at)
        .order_by(assignments.c.item_id, assignments.c.created_at.desc(), assignments.c.assignment_id.desc())
    ).all()
    first_pending: dict[int, int] = {}
    for row in sorted(rows, key=lambda r: r.assignment_id):  # at most one pending per annotator from now on:
        if row.status == "pending":  # the first is the one the old code showed; later ones (never shown) expire
            first_pending.setdefault(row.annotator_id, row.assignment_id)
    extra = {r.assignment_id for r in rows if r.status == "pending" and first_pending[r.annotator_id] != r.assignment_id}
    for start in range(0, len(extra), 500):
        connection.execute(
            sa.update(assignments)
            .where(assignments.c.assignment_id.in_(sorted(extra)[start : start + 500]))
            .values(status="expired", completed_at=assignments.c.created_at)
        )
    rows = [r for r in rows if r.assignment_id not in extra]
    done: dict[int, int] = defaultdict(int)
    for row in rows:
        done[row.item_id] += row.status == "completed"
    active = dict(done)
    released = []
    for row in rows:  # newest pending first: they keep the item's free slots
        if row.status != "pending":
            continue
        if active.get(row.item_id, 0) < targets[row.item_id]:
            active[row.item_id] = active.get(row.item_id, 0) + 1
        else:
            released.append(row.assignment_id)
    connection.execute(
        sa.update(assignments).where(assignments.c.status.not_in(("pending", "completed"))).values(holds_slot=False)
    )
    for start in range(0, len(released), 500):
        connection.execute(
            sa.update(assignments)
            .where(assignments.c.assignment_id.in_(released[start : start + 500]))
            .values(holds_slot=False)
        )
    if targets:
        connection.execute(
            sa.update(items).where(items.c.item_id == sa.bindparam("b_item"))
            .values(n_active=sa.bindparam("b_active"), n_done=sa.bindparam("b_done"), tour_rank=sa.bindparam("b_rank")),
            [{"b_item": i, "b_active": active.get(i, 0), "b_done": done.get(i, 0), "b_rank": rank_of[i]} for i in targets],
        )

    last_item: dict[int, int] = {}
    for row in sorted(rows, key=lambda r: r.assignment_id):
        last_item[row.annotator_id] = row.item_id
    cursors = [
        {"b_annotator": annotator_id,
         "b_cursor": rank_of[last_item[annotator_id]] + 1 if annotator_id in last_item
         else tour_start(annotator_id, len(per_study.get(study_id, ())))}
        for annotator_id, study_id in connection.execute(sa.select(annotators.c.annotator_id, annotators.c.study_id))
    ]
    if cursors:
        connection.execute(
            sa.update(annotators).where(annotators.c.annotator_id == sa.bindparam("b_annotator"))
            .values(tour_cursor=sa.bindparam("b_cursor")),
            cursors,
        )


def downgrade() -> None:
    op.drop_index("uq_assignments_pending", table_name="assignments")
    op.drop_index("ix_assignments_held", table_name="assignments")
    op.drop_index("ix_items_open", table_name="items")
    for table, column in (("assignments", "holds_slot"), ("annotators", "tour_cursor"), ("items", "tour_rank"),
                          ("items", "n_done"), ("items", "n_active")):
        op.execute(f"ALTER TABLE {table} DROP COLUMN {column}")  # in place on SQLite >= 3.35 too: no rebuild
