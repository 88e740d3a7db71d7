"""MLflow 3's logged models: a model an MLflow client logs (its files, params, tags, status)
before or without registering it, and the files under it (content-addressed, like a run's);
and experiments' tags (MLflow clients set them; the UI shows them).

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "logged_models",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("experiment_id", sa.Integer, sa.ForeignKey("experiments.id"), nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("model_type", sa.String(256), nullable=True),
        sa.Column("source_run_id", sa.String(32), nullable=True),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("status_message", sa.Text, nullable=True),
        sa.Column("creator", sa.String(256), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sa.Column("lifecycle_stage", sa.String(16), nullable=False, server_default="active"),
        sa.Column("tags", sa.JSON, nullable=False),
        sa.Column("params", sa.JSON, nullable=False),
        sa.Index("ix_logged_models_experiment", "experiment_id", "created_at"),
        sa.Index("ix_logged_models_run", "source_run_id"),
    )
    op.create_table(
        "logged_model_artifacts",
        sa.Column("model_id", sa.String(64), sa.ForeignKey("logged_models.id"), primary_key=True),
        sa.Column("path", sa.String(1024), primary_key=True),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "experiment_tags",
        sa.Column("experiment_id", sa.Integer, sa.ForeignKey("experiments.id"), primary_key=True),
        sa.Column("key", sa.String(250), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("experiment_tags")
    op.drop_table("logged_model_artifacts")
    op.drop_table("logged_models")
