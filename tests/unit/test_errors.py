from __future__ import annotations

from shipyard.errors import (
    FilterSyntaxError,
    MissingDependencyError,
    NotFoundError,
    ShipyardError,
    SignatureError,
    from_dict,
)


def test_not_found_suggests_the_closest_name() -> None:
    err = NotFoundError.for_name("model", "chrun", ["churn", "fraud"])
    assert str(err) == "model 'chrun' not found; did you mean 'churn'?"
    assert err.http_status == 404


def test_not_found_without_a_close_name_has_no_suggestion() -> None:
    assert "did you mean" not in str(NotFoundError.for_name("model", "zzz", ["churn"]))


def test_typed_error_survives_a_round_trip_through_json() -> None:
    err = from_dict(SignatureError("feature 'x' expects double values", field="x").to_dict())
    assert isinstance(err, SignatureError)
    assert err.http_status == 422
    assert "feature 'x'" in str(err)
    assert type(from_dict({"type": "Nonsense", "error": "e"})) is ShipyardError


def test_filter_error_points_at_the_position() -> None:
    err = FilterSyntaxError("bad", text="a = = b", position=4)
    assert err.details["position"] == 4
    assert str(err).splitlines()[-1] == "      ^"


def test_missing_dependency_is_an_import_error() -> None:
    assert issubclass(MissingDependencyError, ImportError)
