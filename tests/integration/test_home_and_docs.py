"""`/` and the API's pages over a real socket, with credentials required: `/` sends a browser to
the web UI (/ui/) and gives a program a JSON index; the pages name only the server's own
scripts, which it serves without credentials (a browser sends none). That they render is
`tests/e2e/test_docs_pages.py`'s job, in a real browser."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from shipyard.config import Settings
from shipyard.server.app import create_server_app
from shipyard.serving.http import BackgroundServer


@pytest.fixture
def db_url(tmp_path: Any) -> str:
    """The pages read no store: SQLite is enough."""
    return f"sqlite:///{tmp_path / 'meta.db'}"


def test_home_and_docs_pages_serve_their_own_assets(settings: Settings) -> None:
    secured = settings.model_copy(update={"auth_required": True})
    with BackgroundServer(create_server_app(secured, refresh_seconds=0.5)) as srv:
        srv.wait_ready("/health/live")
        with httpx.Client(base_url=srv.url, timeout=10) as client:
            assert client.get("/api/runs").status_code == 401  # credentials are required
            browser = client.get("/", headers={"accept": "text/html,*/*;q=0.8"})
            assert browser.status_code == 307 and browser.headers["location"] == "/ui/"
            index = client.get("/")
            assert index.status_code == 200
            links = index.json()
            assert links["docs"] == "/docs" and links["openapi"] == "/openapi.json"
            assert links["endpoints"] == "/api/endpoints" and links["ui"] == "/ui/"
            for page, kinds in (
                ("/docs", ("js", "css")),
                ("/redoc", ("js",)),
                ("/ui/", ("js", "css")),
                ("/ui/runs/abc", ("js", "css")),  # every page of the UI is the same shell
            ):
                html = client.get(page)
                assert html.status_code == 200 and "text/html" in html.headers["content-type"]
                found = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html.text)
                # the files a page loads (the UI's navigation links are pages, not files)
                urls = [u for u in found if not u.startswith("/ui/") or "/assets/" in u]
                assert urls and all(u.startswith("/") for u in urls), (page, urls)
                for url in urls:
                    asset = client.get(url)
                    assert asset.status_code == 200, url
                    assert len(asset.content) > (100 if url.endswith(".svg") else 1000), url
                assert {u.rsplit(".", 1)[-1] for u in urls} >= set(kinds)
