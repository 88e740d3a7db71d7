"""The headers that tell a client which rows were served expired features' defaults."""

from __future__ import annotations

from shipyard.features.online import OnlineFeatures
from shipyard.serving.features import (
    MAX_LISTED_ROWS,
    FeatureColumns,
    expired_rows,
    expiry_headers,
)


def test_rows_of_each_view_and_the_count_of_rows() -> None:
    fetched = OnlineFeatures(
        {"trips": [0, 5, 0, 0]},
        expired={"driver_stats": [True, False, True, False], "weather": [False] * 3 + [True]},
        views=["driver_stats", "weather", "fresh"],
        rows=4,
    )
    columns = FeatureColumns({}, expired_rows(fetched))
    assert dict(expiry_headers(columns)) == {
        b"x-shipyard-expired-rows": b"3",
        b"x-shipyard-expired-features": b"driver_stats=0,2; weather=3",
    }


def test_nothing_expired_means_no_header() -> None:
    fetched = OnlineFeatures({"trips": [1]}, views=["driver_stats"], rows=1)
    assert expired_rows(fetched) == {}
    assert expiry_headers(FeatureColumns({}, expired_rows(fetched))) == []
    assert expiry_headers({}) == []  # a model without features


def test_a_long_list_ends_with_how_many_rows_it_leaves_out() -> None:
    n = MAX_LISTED_ROWS + 25
    columns = FeatureColumns({}, {"stätte": list(range(n))})
    headers = dict(expiry_headers(columns))
    assert headers[b"x-shipyard-expired-rows"] == str(n).encode()
    value = headers[b"x-shipyard-expired-features"].decode("ascii")
    view, rows = value.split("=")
    assert view == "st%C3%A4tte"  # a header is ASCII: the name percent-encoded
    listed = rows.split(",")
    assert listed[:-1] == [str(i) for i in range(MAX_LISTED_ROWS)] and listed[-1] == "+25"
