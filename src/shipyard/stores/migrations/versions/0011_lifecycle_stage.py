"""Runs and experiments get a lifecycle stage, "active" or "deleted": MLflow's clients delete
and restore both (a soft delete; shipyard's own `experiments delete` stays permanent).
Existing rows are active.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ("runs", "experiments"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(
                sa.Column(
                    "lifecycle_stage", sa.String(length=16), nullable=False, server_default="active"
                )
            )


def downgrade() -> None:
    for table in ("runs", "experiments"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("lifecycle_stage")
