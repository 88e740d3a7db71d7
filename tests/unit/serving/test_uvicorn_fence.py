"""uvicorn's private names, fenced: a name missing from the installed uvicorn, or the fast
path switched off, means uvicorn's own protocol and one log line."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from shipyard.config import Settings
from shipyard.serving import uvicorn_fence
from shipyard.serving.transport import ConnectionLimits


@pytest.fixture(autouse=True)
def fresh_checks() -> Iterator[None]:
    uvicorn_fence._missing_cached.cache_clear()
    yield
    uvicorn_fence._missing_cached.cache_clear()


def fence_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "shipyard.serving"]


def test_the_installed_uvicorn_has_every_name_the_fence_relies_on() -> None:
    assert uvicorn_fence.missing(uvicorn_fence._REQUIRED) == []
    assert uvicorn_fence.missing(uvicorn_fence._REQUIRED_H11) == []


def test_missing_names_a_method_an_instance_attribute_and_a_module() -> None:
    required = (
        ("uvicorn.protocols.http.httptools_impl", "HttpToolsProtocol", ("tasks", "_gone")),
        ("uvicorn.protocols.http.httptools_impl", None, ("STATUS_LINE", "NO_SUCH_NAME")),
        ("uvicorn.no_such_module", None, ("x",)),
    )
    assert uvicorn_fence.missing(required) == [
        "uvicorn.protocols.http.httptools_impl:HttpToolsProtocol._gone",
        "uvicorn.protocols.http.httptools_impl:NO_SUCH_NAME",
        "uvicorn.no_such_module",
    ]


def test_shipyards_protocol_runs_when_every_check_passes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    with caplog.at_level(logging.INFO, "shipyard.serving"):
        http = uvicorn_fence.protocol_class(None, ConnectionLimits())
    assert isinstance(http, type) and issubclass(http, HttpToolsProtocol)
    assert fence_lines(caplog) == []


def test_a_missing_attribute_means_the_public_path_and_one_log_line(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    gone = ("uvicorn.protocols.http.httptools_impl", "HttpToolsProtocol", ("tasks_renamed",))
    monkeypatch.setattr(uvicorn_fence, "_REQUIRED", (*uvicorn_fence._REQUIRED, gone))
    with caplog.at_level(logging.INFO, "shipyard.serving"):
        http = uvicorn_fence.protocol_class(None, ConnectionLimits())
    assert http == uvicorn_fence.PUBLIC == "auto"
    (line,) = fence_lines(caplog)
    assert "HttpToolsProtocol.tasks_renamed" in line and "uvicorn's own" in line


def test_the_setting_off_means_the_public_path_and_one_log_line(
    tmp_path: object, caplog: pytest.LogCaptureFixture
) -> None:
    from fastapi import FastAPI

    from shipyard.serving import runner
    from shipyard.serving.asgi import ServingApp

    assert Settings(fast_path=False).fast_path is False
    app = ServingApp()
    app.settings = Settings(home=tmp_path, fast_path=False)  # type: ignore[arg-type]
    with caplog.at_level(logging.INFO, "shipyard.serving"):
        assert runner._config(app, "warning").http == uvicorn_fence.PUBLIC
    (line,) = fence_lines(caplog)
    assert "SHIPYARD_FAST_PATH" in line
    assert runner._config(FastAPI(), "warning").http != uvicorn_fence.PUBLIC  # on by default
