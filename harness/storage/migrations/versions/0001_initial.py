"""Initial schema: runs, images, metric results, studies, items, annotators, assignments, votes.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("run_id", sa.String(200), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("run_dir", sa.Text(), nullable=False),
        sa.Column("config", JSON, nullable=False),
        sa.Column("provenance", JSON, nullable=False),
        sa.PrimaryKeyConstraint("run_id", name="pk_runs"),
    )
    op.create_table(
        "studies",
        sa.Column("study_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("protocol_name", sa.String(100), nullable=False),
        sa.Column("protocol", JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("votes_per_item", sa.Integer(), nullable=False),
        sa.Column("allow_tie", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("seed", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("study_id", name="pk_studies"),
        sa.UniqueConstraint("name", name="uq_studies_name"),
    )
    op.create_table(
        "images",
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("run_id", sa.String(200), nullable=False),
        sa.Column("prompt_id", sa.String(200), nullable=False),
        sa.Column("prompt", sa.Text(), nullable=False),
        sa.Column("model_id", sa.String(200), nullable=False),
        sa.Column("seed", sa.BigInteger(), nullable=False),
        sa.Column("settings", JSON, nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.run_id"], name="fk_images_run_id_runs", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("sha256", "run_id", name="pk_images"),
    )
    op.create_index("ix_images_run_model", "images", ["run_id", "model_id"])
    op.create_table(
        "metric_results",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(200), nullable=False),
        sa.Column("metric", sa.String(100), nullable=False),
        sa.Column("model_id", sa.String(200), nullable=False),
        sa.Column("group_key", sa.String(1000), nullable=False),
        sa.Column("group", JSON, nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("ci_low", sa.Float(), nullable=True),
        sa.Column("ci_high", sa.Float(), nullable=True),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("extractor_id", sa.String(200), nullable=False),
        sa.Column("inputs_hash", sa.String(200), nullable=False),
        sa.Column("details", JSON, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.run_id"], name="fk_metric_results_run_id_runs", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_metric_results"),
        sa.UniqueConstraint("run_id", "metric", "model_id", "group_key", "extractor_id", name="uq_metric_results_key"),
    )
    op.create_table(
        "items",
        sa.Column("item_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("prompt_id", sa.String(200), nullable=False),
        sa.Column("prompt", sa.Text(), nullable=False),
        sa.Column("system_a", sa.String(200), nullable=False),
        sa.Column("system_b", sa.String(200), nullable=False),
        sa.Column("images_a", JSON, nullable=False),
        sa.Column("images_b", JSON, nullable=False),
        sa.Column("left", sa.String(1), nullable=False),
        sa.Column("is_attention_check", sa.Boolean(), nullable=False),
        sa.Column("expected", sa.String(8), nullable=True),
        sa.Column("votes_target", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["study_id"], ["studies.study_id"], name="fk_items_study_id_studies", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("item_id", name="pk_items"),
        sa.UniqueConstraint("study_id", "position", name="uq_items_study_position"),
    )
    op.create_table(
        "annotators",
        sa.Column("annotator_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("token_sha256", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["study_id"], ["studies.study_id"], name="fk_annotators_study_id_studies", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("annotator_id", name="pk_annotators"),
        sa.UniqueConstraint("token_sha256", name="uq_annotators_token_sha256"),
    )
    op.create_index("ix_annotators_study_id", "annotators", ["study_id"])
    op.create_table(
        "assignments",
        sa.Column("assignment_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("annotator_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["annotator_id"],
            ["annotators.annotator_id"],
            name="fk_assignments_annotator_id_annotators",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["item_id"], ["items.item_id"], name="fk_assignments_item_id_items", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["study_id"], ["studies.study_id"], name="fk_assignments_study_id_studies", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("assignment_id", name="pk_assignments"),
        sa.UniqueConstraint("item_id", "annotator_id", name="uq_assignments_item_annotator"),
    )
    op.create_index("ix_assignments_study_item", "assignments", ["study_id", "item_id", "status", "created_at"])
    op.create_index("ix_assignments_annotator_status", "assignments", ["annotator_id", "status"])
    op.create_table(
        "votes",
        sa.Column("vote_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("assignment_id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("annotator_id", sa.Integer(), nullable=False),
        sa.Column("protocol", sa.String(100), nullable=False),
        sa.Column("choice", sa.String(8), nullable=False),
        sa.Column("winner", sa.String(8), nullable=False),
        sa.Column("model_a", sa.String(200), nullable=False),
        sa.Column("model_b", sa.String(200), nullable=False),
        sa.Column("left_model", sa.String(200), nullable=False),
        sa.Column("prompt", sa.Text(), nullable=False),
        sa.Column("response_ms", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["annotator_id"], ["annotators.annotator_id"], name="fk_votes_annotator_id_annotators", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["assignment_id"],
            ["assignments.assignment_id"],
            name="fk_votes_assignment_id_assignments",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(["item_id"], ["items.item_id"], name="fk_votes_item_id_items", ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["study_id"], ["studies.study_id"], name="fk_votes_study_id_studies", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("vote_id", name="pk_votes"),
        sa.UniqueConstraint("assignment_id", name="uq_votes_assignment_id"),
    )
    op.create_index("ix_votes_study_id", "votes", ["study_id"])


def downgrade() -> None:
    for table in ("votes", "assignments", "annotators", "items", "metric_results", "images", "studies", "runs"):
        op.drop_table(table)
