"""The facts a render reads, from PostgreSQL: the same capabilities, the same answers."""

from __future__ import annotations

from typing import Any

import pytest

from shipyard.deploy import Deploy


@pytest.fixture(params=[pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue("pg_url"))


def test_facts_on_postgres(canary_endpoint: str, stores: Any) -> None:
    deploy = Deploy(stores)
    model = deploy.facts(model_uri="models:/churn@champion").model
    assert (model.uri, model.alias, model.onnx_ready) == ("models:/churn/1", "champion", True)
    facts = deploy.facts(endpoint=canary_endpoint)
    assert facts.endpoint is not None and facts.endpoint.candidate is not None
    assert (facts.endpoint.policy, facts.endpoint.candidate.version) == ("canary", 2)
    assert facts.endpoint.config["steps"] == [5.0, 25.0, 50.0, 100.0]
    files = deploy.render("argo", endpoint=canary_endpoint).files
    assert "setWeight: 25" in "".join(str(v) for v in files.values())
