from __future__ import annotations

import pytest

from shipyard.errors import InvalidArgumentError
from shipyard.registry.uris import ModelRef, parse_model_uri


@pytest.mark.parametrize(
    ("uri", "ref"),
    [
        ("models:/churn/3", ModelRef(name="churn", version=3)),
        ("models:/churn@champion", ModelRef(name="churn", alias="champion")),
        ("models:/churn/latest", ModelRef(name="churn", latest=True)),
        ("churn@champion", ModelRef(name="churn", alias="champion")),
        ("churn/2", ModelRef(name="churn", version=2)),
        ("models:/breast-cancer.v2@canary-1", ModelRef(name="breast-cancer.v2", alias="canary-1")),
        ("runs:/0123abcd/model", ModelRef(run_id="0123abcd")),
    ],
)
def test_uris(uri: str, ref: ModelRef) -> None:
    assert parse_model_uri(uri) == ref


@pytest.mark.parametrize(
    "uri",
    [
        "",
        "models:/",
        "models:/churn@",
        "models:/churn/x",
        "s3://bucket/model",
        "churn@champ ion",
        "runs:/zz/model",
    ],
)
def test_bad_uris_list_the_accepted_forms(uri: str) -> None:
    with pytest.raises(InvalidArgumentError, match="models:/NAME@ALIAS"):
        parse_model_uri(uri)


def test_ref_renders_back_to_a_uri() -> None:
    assert str(parse_model_uri("churn@champion")) == "models:/churn@champion"
    assert str(parse_model_uri("churn/4")) == "models:/churn/4"


@pytest.mark.parametrize(
    "uri", ["models:/churn/0", "churn/2147483648", "churn/" + "9" * 30, "churn/" + "1" * 5000]
)
def test_a_version_out_of_range_is_refused_naming_the_uri(uri: str) -> None:
    with pytest.raises(InvalidArgumentError, match="versions are 1 to 2147483647") as info:
        parse_model_uri(uri)
    assert info.value.details["field"] == "model_uri"


def test_the_largest_version_parses() -> None:
    assert parse_model_uri("churn/2147483647").version == 2**31 - 1
    assert parse_model_uri("churn/007").version == 7
