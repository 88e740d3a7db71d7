"""Endpoint policies in their validated shape: every row's `config` rewritten as the typed
policy of its kind stores it (`shipyard.policy`), so readers parse it strictly

Settings no policy of the row's kind has are dropped, defaults are filled in (a rollout's
thresholds, `auto`, …), numbers get their types. A row that does not validate even so is
left as it is, with a warning: reading it then names the endpoint and the field. The shape
stays readable by the previous version, so downgrading changes nothing.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

log = logging.getLogger("shipyard.migrations")

endpoints = sa.table(
    "endpoints",
    sa.column("name", sa.String),
    sa.column("policy", sa.String),
    sa.column("config", sa.JSON),
)


def upgrade() -> None:
    from shipyard.policy import upgrade_stored

    conn = op.get_bind()
    rows = conn.execute(sa.select(endpoints.c.name, endpoints.c.policy, endpoints.c.config))
    for name, kind, config in rows.all():
        shaped = upgrade_stored(kind, config or {})
        if shaped is None:
            log.warning("endpoint %r: its %s policy does not validate; left as it is", name, kind)
        elif shaped != config:
            conn.execute(endpoints.update().where(endpoints.c.name == name).values(config=shaped))


def downgrade() -> None:
    pass  # the validated shape is one the previous version reads as it is
