"""Windows given as text (`?window=`, `--window`): durations, or one error naming the field."""

from __future__ import annotations

import pytest

from shipyard.errors import InvalidArgumentError
from shipyard.monitoring.sources import parse_window


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("15m", 900), (" 1.5h ", 5400), ("7d", 604800), ("2w", 1209600)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_window(text) == seconds


@pytest.mark.parametrize(
    "text", ["", "soon", "0m", "-1h", "1y", "99999999999999999999999999w", "1e9d", "101000000d"]
)
def test_anything_else_names_the_field(text: str) -> None:
    with pytest.raises(InvalidArgumentError) as err:
        parse_window(text)
    assert err.value.details["field"] == "window"
