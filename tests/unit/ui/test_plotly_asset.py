"""plotly.js is served from the strict bundle shipped with the UI (no eval, so its WebGL traces
draw under the shell's CSP), gzipped to clients that take gzip and plain to the others."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient

from shipyard.ui import PLOTLY, install_ui

URL = "/ui/assets/vendor/plotly.min.js"


def client() -> TestClient:
    app = FastAPI()
    install_ui(app)
    return TestClient(app)


def test_the_strict_bundle_ships_in_the_package() -> None:
    assert PLOTLY.is_file() and PLOTLY.stat().st_size > 1_000_000


def test_gzip_to_clients_that_take_it_plain_to_the_others() -> None:
    with client() as c:
        zipped = c.get(URL, headers={"accept-encoding": "gzip"})
        plain = c.get(URL, headers={"accept-encoding": "identity"})
    assert zipped.status_code == plain.status_code == 200
    assert zipped.headers["content-encoding"] == "gzip"
    assert "content-encoding" not in plain.headers
    assert int(zipped.headers["content-length"]) < int(plain.headers["content-length"]) / 2
    assert zipped.text == plain.text
    assert plain.text.startswith("/**\n* plotly.js (strict")
    assert plain.headers["content-type"].startswith("text/javascript")
