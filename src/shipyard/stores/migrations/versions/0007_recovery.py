"""Recovery after a crash: who owns a run (and its heartbeat), who is converting a version
(a claim with a lease) and how many attempts were made

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("owner", sa.String(length=300), nullable=True))
        batch.add_column(sa.Column("heartbeat_at", sa.BigInteger(), nullable=True))
    op.create_index("ix_runs_status", "runs", ["status"])
    with op.batch_alter_table("model_versions") as batch:
        batch.add_column(sa.Column("onnx_claimed_by", sa.String(length=300), nullable=True))
        batch.add_column(sa.Column("onnx_claimed_at", sa.BigInteger(), nullable=True))
        batch.add_column(
            sa.Column("onnx_attempts", sa.Integer(), nullable=False, server_default="0")
        )
    op.create_index("ix_model_versions_onnx_status", "model_versions", ["onnx_status"])


def downgrade() -> None:
    op.drop_index("ix_model_versions_onnx_status", table_name="model_versions")
    with op.batch_alter_table("model_versions") as batch:
        batch.drop_column("onnx_attempts")
        batch.drop_column("onnx_claimed_at")
        batch.drop_column("onnx_claimed_by")
    op.drop_index("ix_runs_status", table_name="runs")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("heartbeat_at")
        batch.drop_column("owner")
