"""How far each view version is materialized is kept per online store (its identity: kind and
location, never credentials), so switching stores (SQLite to Redis) loads everything again
into the new one. Marks from before have no store ("") and are not used for incremental runs.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_COLUMNS = '"view", "version", "materialized_until", "rows", "updated_at"'


def upgrade() -> None:
    op.create_table(
        "online_materializations",
        sa.Column("store", sa.String(length=512), nullable=False),
        sa.Column("view", sa.String(length=256), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("materialized_until", sa.BigInteger(), nullable=False),
        sa.Column("rows", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "store", "view", "version", name=op.f("pk_online_materializations")
        ),
    )
    op.execute(
        f'INSERT INTO online_materializations ("store", {_COLUMNS}) '
        f"SELECT '', {_COLUMNS} FROM feature_materializations"
    )
    op.drop_table("feature_materializations")


def downgrade() -> None:
    op.create_table(
        "feature_materializations",
        sa.Column("view", sa.String(length=256), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("materialized_until", sa.BigInteger(), nullable=False),
        sa.Column("rows", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("view", "version", name=op.f("pk_feature_materializations")),
    )
    # one mark per view version survives: the earliest, so no store skips what it lacks
    op.execute(
        f"INSERT INTO feature_materializations ({_COLUMNS}) "
        'SELECT "view", "version", MIN("materialized_until"), MAX("rows"), MAX("updated_at") '
        'FROM online_materializations GROUP BY "view", "version"'
    )
    op.drop_table("online_materializations")
