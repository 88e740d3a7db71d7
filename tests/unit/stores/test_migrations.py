from __future__ import annotations

from alembic.config import Config
from alembic.script import ScriptDirectory

from shipyard.stores import database


def test_head_revision_constant_matches_alembic() -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(database._MIGRATIONS))
    assert ScriptDirectory.from_config(cfg).get_current_head() == database.HEAD_REVISION


def test_redact_hides_the_password() -> None:
    assert "secret" not in database.redact("postgresql+psycopg://u:secret@h/db")
