"""ONNX conversion result per model version (converted after registration)

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("model_versions") as batch:
        batch.add_column(
            sa.Column("onnx_status", sa.String(length=16), nullable=False, server_default="off")
        )
        batch.add_column(sa.Column("onnx_digest", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("onnx_detail", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("model_versions") as batch:
        batch.drop_column("onnx_detail")
        batch.drop_column("onnx_digest")
        batch.drop_column("onnx_status")
