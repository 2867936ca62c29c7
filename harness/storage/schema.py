"""SQLAlchemy 2.x declarative tables of the store (SQLite and PostgreSQL).

The Alembic migrations in ``harness/storage/migrations/versions`` create exactly these tables (a test compares them);
change both together and add a new revision, never edit a released one.

Invariants the database itself enforces:

- ``images``: key ``(sha256, run_id)``; the same PNG may belong to several runs.
- ``metric_results``: one row per ``(run_id, metric, model_id, group_key, extractor_id)``, ``group_key`` being the
  canonical JSON of the group (JSON columns are not comparable in SQL).
- ``assignments``: unique ``(item_id, annotator_id)``: an annotator never gets the same item twice.
- ``votes``: unique ``assignment_id``: a vote is never counted twice.
- ``assignments``: at most one ``pending`` assignment per annotator (partial unique index): a second tab gets the
  annotator's current item, never a second one.

Maintained counters (kept exact by `harness.storage.assign`, in the transaction that changes an assignment; a test
recounts them from the rows): ``items.n_active`` = the item's assignments that hold a slot (``completed``, and
``pending`` with ``holds_slot``), never above ``votes_target``; ``items.n_done`` = its ``completed`` assignments
(= its votes). The partial index ``ix_items_open`` (open items by fill level, then by ``tour_rank``) makes handing
out the next item an index seek whatever the size of the study, and ``ix_assignments_held`` finds pending
assignments that have gone stale without scanning the study.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

JSONType = JSON().with_variant(JSONB(), "postgresql")


class UTCDateTime(TypeDecorator[datetime]):
    """An aware UTC `datetime` on both backends (SQLite stores naive UTC text, PostgreSQL ``timestamptz``)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r} given to the store; pass an aware datetime (UTC)")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_name)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base of every table of the store (constraint names fixed by `NAMING_CONVENTION`)."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class RunRow(Base):
    __tablename__ = "runs"

    run_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    run_dir: Mapped[str] = mapped_column(Text)
    config: Mapped[dict[str, Any]] = mapped_column(JSONType)
    provenance: Mapped[dict[str, Any]] = mapped_column(JSONType)


class ImageRow(Base):
    __tablename__ = "images"
    __table_args__ = (Index("ix_images_run_model", "run_id", "model_id"),)

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True)
    prompt_id: Mapped[str] = mapped_column(String(200))
    prompt: Mapped[str] = mapped_column(Text)
    model_id: Mapped[str] = mapped_column(String(200))
    seed: Mapped[int] = mapped_column(BigInteger)
    settings: Mapped[dict[str, Any]] = mapped_column(JSONType)
    path: Mapped[str] = mapped_column(Text)


class MetricResultRow(Base):
    __tablename__ = "metric_results"
    __table_args__ = (
        UniqueConstraint("run_id", "metric", "model_id", "group_key", "extractor_id", name="uq_metric_results_key"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.run_id", ondelete="CASCADE"))
    metric: Mapped[str] = mapped_column(String(100))
    model_id: Mapped[str] = mapped_column(String(200))
    group_key: Mapped[str] = mapped_column(String(1000))
    group: Mapped[dict[str, Any]] = mapped_column(JSONType)
    value: Mapped[float] = mapped_column(Float)
    ci_low: Mapped[float | None] = mapped_column(Float, nullable=True)
    ci_high: Mapped[float | None] = mapped_column(Float, nullable=True)
    n: Mapped[int] = mapped_column(Integer)
    extractor_id: Mapped[str] = mapped_column(String(200))
    inputs_hash: Mapped[str] = mapped_column(String(200))
    details: Mapped[dict[str, Any]] = mapped_column(JSONType)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class StudyRow(Base):
    __tablename__ = "studies"

    study_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    protocol_name: Mapped[str] = mapped_column(String(100))
    protocol: Mapped[dict[str, Any]] = mapped_column(JSONType)
    status: Mapped[str] = mapped_column(String(16))
    votes_per_item: Mapped[int] = mapped_column(Integer)
    allow_tie: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    seed: Mapped[int] = mapped_column(BigInteger)


OPEN_ITEM = "n_active < votes_target"
"""Predicate of the partial index ``ix_items_open``: the item has a free slot (queries repeat it verbatim)."""

HELD_PENDING = "status = 'pending' AND holds_slot"
"""Predicate of the partial index ``ix_assignments_held``: a pending assignment holding its item's slot."""

PENDING = "status = 'pending'"
"""Predicate of the partial unique index ``uq_assignments_pending``: at most one pending assignment per annotator."""


class ItemRow(Base):
    __tablename__ = "items"
    __table_args__ = (
        UniqueConstraint("study_id", "position", name="uq_items_study_position"),
        Index(
            "ix_items_open",
            "study_id",
            "n_active",
            "tour_rank",
            sqlite_where=text(OPEN_ITEM),
            postgresql_where=text(OPEN_ITEM),
        ),
    )

    item_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.study_id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    prompt_id: Mapped[str] = mapped_column(String(200))
    prompt: Mapped[str] = mapped_column(Text)
    system_a: Mapped[str] = mapped_column(String(200))
    system_b: Mapped[str] = mapped_column(String(200))
    images_a: Mapped[list[str]] = mapped_column(JSONType)
    images_b: Mapped[list[str]] = mapped_column(JSONType)
    left: Mapped[str] = mapped_column(String(1))
    is_attention_check: Mapped[bool] = mapped_column(Boolean)
    expected: Mapped[str | None] = mapped_column(String(8), nullable=True)
    votes_target: Mapped[int] = mapped_column(Integer)
    n_active: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    n_done: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    tour_rank: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))


class AnnotatorRow(Base):
    __tablename__ = "annotators"

    annotator_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.study_id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    tour_cursor: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))


class AssignmentRow(Base):
    __tablename__ = "assignments"
    __table_args__ = (
        UniqueConstraint("item_id", "annotator_id", name="uq_assignments_item_annotator"),
        Index("ix_assignments_study_item", "study_id", "item_id", "status", "created_at"),
        Index("ix_assignments_annotator_status", "annotator_id", "status"),
        Index(
            "ix_assignments_held",
            "study_id",
            "created_at",
            sqlite_where=text(HELD_PENDING),
            postgresql_where=text(HELD_PENDING),
        ),
        Index(
            "uq_assignments_pending",
            "annotator_id",
            unique=True,
            sqlite_where=text(PENDING),
            postgresql_where=text(PENDING),
        ),
    )

    assignment_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.study_id", ondelete="CASCADE"))
    item_id: Mapped[int] = mapped_column(ForeignKey("items.item_id", ondelete="CASCADE"))
    annotator_id: Mapped[int] = mapped_column(ForeignKey("annotators.annotator_id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    holds_slot: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))


class VoteRow(Base):
    __tablename__ = "votes"

    vote_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    assignment_id: Mapped[int] = mapped_column(ForeignKey("assignments.assignment_id", ondelete="CASCADE"), unique=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.study_id", ondelete="CASCADE"), index=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.item_id", ondelete="CASCADE"))
    annotator_id: Mapped[int] = mapped_column(ForeignKey("annotators.annotator_id", ondelete="CASCADE"))
    protocol: Mapped[str] = mapped_column(String(100))
    choice: Mapped[str] = mapped_column(String(8))
    winner: Mapped[str] = mapped_column(String(8))
    model_a: Mapped[str] = mapped_column(String(200))
    model_b: Mapped[str] = mapped_column(String(200))
    left_model: Mapped[str] = mapped_column(String(200))
    prompt: Mapped[str] = mapped_column(Text)
    response_ms: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


metadata = Base.metadata
runs = cast(Table, RunRow.__table__)
images = cast(Table, ImageRow.__table__)
metric_results = cast(Table, MetricResultRow.__table__)
studies = cast(Table, StudyRow.__table__)
items = cast(Table, ItemRow.__table__)
annotators = cast(Table, AnnotatorRow.__table__)
assignments = cast(Table, AssignmentRow.__table__)
votes = cast(Table, VoteRow.__table__)
