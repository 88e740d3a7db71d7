from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from shipyard.config import Settings


def test_settings_read_the_prefixed_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SHIPYARD_HOME", str(tmp_path))
    monkeypatch.setenv("SHIPYARD_USER", "alice")
    s = Settings()
    assert s.home == tmp_path
    assert s.actor == "alice"
    assert s.resolved_db_url == f"sqlite:///{tmp_path / 'shipyard.db'}"
    assert s.resolved_artifacts == str(tmp_path / "artifacts")


def test_explicit_db_url_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHIPYARD_DB_URL", "postgresql+psycopg://u@h/db")
    assert Settings().resolved_db_url == "postgresql+psycopg://u@h/db"


def test_settings_are_frozen(tmp_path: Path) -> None:
    s = Settings(home=tmp_path)
    with pytest.raises(ValidationError):
        s.home = Path("/elsewhere")  # type: ignore[misc]


def test_actor_is_shipyard_user_else_the_os_user(monkeypatch: pytest.MonkeyPatch) -> None:
    import shipyard.config as config

    assert Settings().actor == "tester"  # SHIPYARD_USER, set for every test
    monkeypatch.delenv("SHIPYARD_USER", raising=False)
    monkeypatch.setattr(config.getpass, "getuser", lambda: "builder")
    config._os_user.cache_clear()
    try:
        assert Settings().actor == "builder"
        config._os_user.cache_clear()

        def no_passwd_entry() -> str:
            raise KeyError("getpwuid(): uid not found")

        monkeypatch.setattr(config.getpass, "getuser", no_passwd_entry)
        assert Settings().actor == f"uid:{os.getuid()}"
    finally:
        config._os_user.cache_clear()


def test_a_short_secret_key_is_refused_without_echoing_it(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """It signs request ids, cached pickles and alert commands: an empty or short one is a
    key anyone can guess. The error names the variable, never its value."""
    import pytest

    from shipyard.config import get_settings, reset_settings
    from shipyard.errors import InvalidArgumentError

    for value in ("", "tiny-key-9Q"):
        monkeypatch.setenv("SHIPYARD_SECRET_KEY", value)
        reset_settings()
        with pytest.raises(
            InvalidArgumentError, match="SHIPYARD_SECRET_KEY must be at least 32"
        ) as info:
            get_settings()
        assert "tiny-key-9Q" not in str(info.value)
    monkeypatch.setenv("SHIPYARD_SECRET_KEY", "k" * 32)
    reset_settings()
    assert get_settings().secret_key is not None
    reset_settings()
