"""Request ids only the server issues: checked without a lookup, across replicas."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipyard.config import Settings
from shipyard.errors import NotFoundError
from shipyard.requestids import LENGTH, RequestIds, request_id_key


def test_an_issued_id_checks_only_for_its_endpoint(tmp_path: Path) -> None:
    ids = RequestIds(request_id_key(Settings(home=tmp_path)))
    rid = ids.issue("churn")
    assert len(rid) == LENGTH and rid != ids.issue("churn")
    assert ids.issued("churn", rid)
    assert not ids.issued("fraud", rid)  # another endpoint's
    forged = rid[:-1] + ("0" if rid[-1] != "0" else "1")
    for other in (forged, "x" * LENGTH, "y" * 128, "", "é" * LENGTH, rid.upper()):
        assert not ids.issued("churn", other)
    with pytest.raises(NotFoundError, match="nor 1 more") as info:
        ids.check("churn", [rid, forged, "made-up"])
    assert info.value.details["field"] == "request_id" and info.value.details["item"] == 1


def test_replicas_agree_through_the_shared_secret_or_the_home_key_file(tmp_path: Path) -> None:
    a = Settings(home=tmp_path / "a", secret_key="s3cret-shared-by-every-replica-0123456789")
    b = Settings(home=tmp_path / "b", secret_key="s3cret-shared-by-every-replica-0123456789")
    rid = RequestIds(request_id_key(a)).issue("churn")
    assert RequestIds(request_id_key(b)).issued("churn", rid)
    assert not RequestIds(request_id_key(Settings(home=tmp_path / "b"))).issued("churn", rid)
    # workers of one machine: one key file, made once, readable by its owner only
    home = Settings(home=tmp_path / "c")
    assert request_id_key(home) == request_id_key(home)
    assert (tmp_path / "c" / "secret.key").stat().st_mode & 0o077 == 0


def test_the_cli_import_counts_ids_the_endpoint_never_issued(tmp_path: Path) -> None:
    from shipyard.monitoring.sources import unissued_request_ids

    settings = Settings(home=tmp_path)
    good = RequestIds(request_id_key(settings)).issue("churn")
    (tmp_path / "labels.csv").write_text(
        f"request_id,label\n{good},1\n{good},0\nmade-up,1\nalso-made-up,0\n"
    )
    assert unissued_request_ids(settings, "churn", tmp_path / "labels.csv") == 2
