"""MLflow's filter and order_by strings said in shipyard's filter language."""

from __future__ import annotations

import pytest

from shipyard.compat.mlflow.filters import to_filter, to_order_by
from shipyard.errors import FilterSyntaxError, InvalidArgumentError
from shipyard.stores.records import Clause
from shipyard.tracking.search import parse_filter


@pytest.mark.parametrize(
    ("mlflow", "clauses"),
    [
        ("metrics.acc > 0.9", [Clause("metrics", "acc", ">", 0.9)]),
        (
            "params.alpha = '0.5' and attributes.status = 'FINISHED'",
            [
                Clause("params", "alpha", "=", "0.5"),
                Clause("attributes", "status", "=", "FINISHED"),
            ],
        ),
        ('tags."mlflow.runName" = "rf"', [Clause("attributes", "name", "=", "rf")]),
        ("tags.`mlflow.user` LIKE '%an%'", [Clause("tags", "mlflow.user", "LIKE", "%an%")]),
        ('metrics."val loss" <= 1', [Clause("metrics", "val loss", "<=", 1.0)]),
        ("attributes.run_id IN ('a', 'b')", [Clause("attributes", "id", "IN", ("a", "b"))]),
        ("attr.user_id != 'x'", [Clause("attributes", "user", "!=", "x")]),
        ("attributes.created >= 10", [Clause("attributes", "start_time", ">=", 10.0)]),
        ("run.run_name ILIKE 'R%'", [Clause("attributes", "name", "ILIKE", "R%")]),
    ],
)
def test_a_filter_means_the_same_clauses(mlflow: str, clauses: list[Clause]) -> None:
    assert parse_filter(to_filter(mlflow)) == clauses


def test_no_filter_and_order_by() -> None:
    assert to_filter(None) is None and to_filter("  ") is None
    assert to_order_by(["metrics.acc DESC", "attributes.start_time", 'tags."a b" ASC']) == [
        "metrics.`acc` DESC",
        "attributes.start_time",
        "tags.`a b` ASC",
    ]


@pytest.mark.parametrize(
    "bad",
    [
        "datasets.name = 'train'",
        "attributes.artifact_uri = 'x'",
        "params.p IS NULL",
        "models.x = 1",
    ],
)
def test_what_cannot_be_searched_is_refused_by_name(bad: str) -> None:
    with pytest.raises(InvalidArgumentError):
        to_filter(bad)


def test_a_syntax_error_points_near_where_it_was() -> None:
    with pytest.raises(FilterSyntaxError) as caught:
        parse_filter(to_filter("metrics.acc >> 1"))
    assert caught.value.details["position"] == len("metrics.`acc` >")
