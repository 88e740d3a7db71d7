"""Which online store holds the materialized values: another Redis database is another store."""

from __future__ import annotations

from types import SimpleNamespace

from shipyard.features.online import online_store_identity


def redis(url: str) -> SimpleNamespace:
    return SimpleNamespace(kind="redis", url=url, prefix="sy:")


def test_the_database_chosen_in_the_query_is_part_of_the_identity() -> None:
    eight = online_store_identity(redis("redis://127.0.0.1:6379?db=8"))
    nine = online_store_identity(redis("redis://127.0.0.1:6379?db=9"))
    assert eight != nine
    assert online_store_identity(redis("redis://u:secret@127.0.0.1:6379?db=8")) == eight


def test_query_settings_other_than_the_database_are_not() -> None:
    plain = online_store_identity(redis("redis://127.0.0.1:6379?db=8"))
    tuned = online_store_identity(redis("redis://127.0.0.1:6379?db=8&socket_timeout=3"))
    assert plain == tuned and "secret" not in online_store_identity(
        redis("redis://127.0.0.1:6379?db=8&password=secret")
    )
