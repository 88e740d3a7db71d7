"""The data plane over real HTTP on a loopback port: V2, plain predict, health, metrics, and
every kind of bad input (4xx JSON naming the problem, nothing stored changes)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest

import shipyard as sy
from shipyard.config import Settings
from shipyard.serving.app import create_serving_app
from shipyard.serving.http import BackgroundServer


@pytest.fixture
def db_url(tmp_path: Any) -> str:
    """Serving reads the store only at load time: SQLite is enough here (the server tests
    cover PostgreSQL)."""
    return f"sqlite:///{tmp_path / 'meta.db'}"


@pytest.fixture
def registered(settings: Settings, breast_cancer, logreg) -> Any:  # type: ignore[no-untyped-def]
    X, _ = breast_cancer
    with sy.start_run(experiment="serve") as run:
        mv = run.log_model(logreg, name="churn", input_example=X[:5], onnx=True)
    sy.set_alias("churn", "champion", mv.version)
    return mv


@pytest.fixture
def server(settings: Settings, registered: Any) -> Iterator[BackgroundServer]:
    app = create_serving_app(
        settings.model_copy(update={"max_body_bytes": 200_000}), "models:/churn@champion"
    )
    with BackgroundServer(app) as srv:
        srv.wait_ready()
        yield srv


def rows(X: Any, n: int) -> list[dict[str, float]]:
    return X.iloc[:n].to_dict(orient="records")  # type: ignore[no-any-return]


def test_plain_predict(server: BackgroundServer, breast_cancer, logreg) -> None:  # type: ignore[no-untyped-def]
    X, _ = breast_cancer
    r = httpx.post(
        f"{server.url}/endpoints/churn/predict",
        json={"instances": rows(X, 20), "probabilities": True},
    )
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["predictions"] == logreg.predict(X[:20]).tolist()
    np.testing.assert_allclose(doc["probabilities"], logreg.predict_proba(X[:20]), atol=1e-4)
    assert doc["classes"] == [0, 1]
    assert doc["model_version"] == 1
    assert len(doc["request_id"]) == 40  # 24 random hex digits and a 16-digit signature
    assert r.headers["x-model-version"] == "1"
    assert r.headers["x-request-id"] == doc["request_id"]
    given = httpx.post(
        f"{server.url}/endpoints/churn/predict",
        json={"instances": rows(X, 1)},
        headers={"x-request-id": "abc-123"},
    )
    assert given.headers["x-request-id"] == "abc-123" != given.json()["request_id"]  # echoed


def test_v2_both_tensor_layouts(server: BackgroundServer, breast_cancer, logreg) -> None:  # type: ignore[no-untyped-def]
    X, _ = breast_cancer
    n = 7
    per_column = {
        "inputs": [
            {"name": c, "shape": [n], "datatype": "FP64", "data": X[c].iloc[:n].tolist()}
            for c in X.columns
        ]
    }
    matrix = {
        "id": "req-1",
        "inputs": [
            {
                "name": "input",
                "shape": [n, X.shape[1]],
                "datatype": "FP64",
                "data": X.iloc[:n].to_numpy().ravel().tolist(),
            }
        ],
        "outputs": [{"name": "predict"}, {"name": "predict_proba"}],
    }
    a = httpx.post(f"{server.url}/v2/models/churn/infer", json=per_column)
    b = httpx.post(f"{server.url}/v2/models/churn/infer", json=matrix)
    assert a.status_code == 200 and b.status_code == 200, (a.text, b.text)
    expected = logreg.predict(X[:n]).tolist()
    assert a.json()["outputs"][0]["data"] == expected
    out = b.json()
    assert out["id"] == "req-1" and out["model_name"] == "churn" and out["model_version"] == "1"
    assert out["outputs"][0]["data"] == expected
    meta = httpx.get(f"{server.url}/v2/models/churn").json()
    declared = {o["name"]: o["datatype"] for o in meta["outputs"]}
    answered = {o["name"]: o["datatype"] for o in out["outputs"]}
    assert declared == answered, (declared, answered)  # the metadata says what infer answers
    assert out["outputs"][1]["shape"] == [n, 2]
    v = httpx.post(f"{server.url}/v2/models/churn/versions/1/infer", json=per_column)
    assert v.status_code == 200
    assert (
        httpx.post(f"{server.url}/v2/models/churn/versions/9/infer", json=per_column).status_code
        == 404
    )


def test_health_metadata_metrics_and_docs(server: BackgroundServer) -> None:
    for path in (
        "/v2/health/live",
        "/v2/health/ready",
        "/health/live",
        "/health/ready",
        "/v2/models/churn/ready",
        "/v2",
    ):
        assert httpx.get(server.url + path).status_code == 200, path
    meta = httpx.get(f"{server.url}/v2/models/churn").json()
    assert meta["name"] == "churn" and meta["versions"] == ["1"]
    assert meta["platform"] == "onnxruntime"
    assert len(meta["inputs"]) == 30 and meta["inputs"][0]["datatype"] == "FP64"
    assert httpx.get(f"{server.url}/v2/models/nope").status_code == 404
    assert httpx.get(f"{server.url}/v2/models/nope/ready").status_code == 404
    httpx.post(f"{server.url}/endpoints/churn/predict", json={"instances": []})
    metrics = httpx.get(f"{server.url}/metrics").text
    assert (
        'shipyard_requests_total{endpoint="churn",model="churn",status="422",version="1"} 1.0'
        in metrics
    )
    assert "shipyard_request_latency_seconds_bucket" in metrics
    assert 'shipyard_model_ready{endpoint="churn",model="churn",version="1"} 1.0' in metrics
    assert httpx.get(f"{server.url}/docs").status_code == 200
    spec = httpx.get(f"{server.url}/openapi.json").json()
    assert "/endpoints/{name}/predict" in spec["paths"]
    assert "/v2/models/{name}/infer" in spec["paths"]


def _bad(
    server: BackgroundServer,
    path: str,
    content: bytes | None = None,
    json: Any = None,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    r = httpx.post(server.url + path, content=content, json=json, headers=headers)
    assert 400 <= r.status_code < 500, (r.status_code, r.text)
    assert r.headers["content-type"] == "application/json"
    doc = r.json()
    doc["status"] = r.status_code
    return doc  # type: ignore[no-any-return]


def test_bad_input_gets_a_4xx_naming_the_problem(
    server: BackgroundServer, settings: Settings, breast_cancer
) -> None:  # type: ignore[no-untyped-def]
    from shipyard.stores import open_stores

    X, _ = breast_cancer
    good = rows(X, 2)
    audit_before = len(open_stores(settings).metadata.audit.list(limit=10_000))
    url = "/endpoints/churn/predict"
    wrong_name = [dict(good[0], **{"mean radiu": 1.0})]
    del wrong_name[0]["mean radius"]
    doc = _bad(server, url, json={"instances": wrong_name})
    assert (
        doc["status"] == 422 and "'mean radius'" in doc["error"] and "'mean radiu'" in doc["error"]
    )
    missing = [{k: v for k, v in good[0].items() if k != "worst area"}]
    assert (
        "missing feature(s) 'worst area'" in _bad(server, url, json={"instances": missing})["error"]
    )
    wrong_type = [dict(good[0], **{"mean area": "big"})]
    doc = _bad(server, url, json={"instances": wrong_type})
    assert doc["field"] == "mean area" and "expects double" in doc["error"]
    doc = _bad(server, url, json={"instances": [dict(good[0], **{"mean area": [1, 2]})]})
    assert "single value" in doc["error"]
    doc = _bad(
        server, url, content=b'{"instances": [', headers={"content-type": "application/json"}
    )
    assert doc["status"] == 400 and doc["field"] == "body" and "not valid JSON" in doc["error"]
    assert _bad(server, url, json={"instances": []})["field"] == "instances"
    assert _bad(server, url, json={"rows": good})["field"] == "instances"
    huge = {"instances": good * 2000}
    doc = _bad(server, url, json=huge)
    assert doc["status"] == 413 and doc["limit"] == 200_000
    doc = _bad(server, "/endpoints/chrun/predict", json={"instances": good})
    assert doc["status"] == 404 and "did you mean 'churn'" in doc["error"]
    doc = _bad(
        server,
        "/v2/models/churn/infer",
        json={"inputs": [{"name": "x", "shape": [1, 29], "datatype": "FP64", "data": [0] * 29}]},
    )
    assert "expected [n, 30]" in doc["error"]
    # the server still answers, and nothing stored changed
    assert httpx.post(server.url + url, json={"instances": good}).status_code == 200
    assert len(open_stores(settings).metadata.audit.list(limit=10_000)) == audit_before


@pytest.mark.parametrize(
    ("shape", "data"),
    [([4294967296, 4294967296], []), ([True, 30], [0.0] * 30), ([2**63, 1], [0.0])],
)
def test_a_v2_shape_that_overflows_or_is_not_a_number_is_a_4xx_on_both_paths(
    server: BackgroundServer, registered: Any, shape: list[Any], data: list[float]
) -> None:
    doc = {"inputs": [{"name": "x", "shape": shape, "datatype": "FP64", "data": data}]}
    # the first goes the server's direct way, the second through the ASGI app's router
    for path in ("/v2/models/churn/infer", f"/v2/models/churn/versions/{registered.version}/infer"):
        answer = _bad(server, path, json=doc)
        assert answer["field"] in ("inputs[0].shape", "inputs[0].data"), answer


def test_rows_in_any_key_order_are_validated_and_answered_alike(
    server: BackgroundServer, breast_cancer
) -> None:  # type: ignore[no-untyped-def]
    X, _ = breast_cancer
    good = rows(X, 32)
    url = f"{server.url}/endpoints/churn/predict"
    want = httpx.post(url, json={"instances": good}).json()["predictions"]
    shuffled = [dict(sorted(row.items(), reverse=i % 2 == 1)) for i, row in enumerate(good)]
    r = httpx.post(url, json={"instances": shuffled})
    assert r.status_code == 200 and r.json()["predictions"] == want
    for bad_rows in (good, shuffled):
        bad = [dict(row) for row in bad_rows]
        del bad[17]["worst area"]
        r = httpx.post(url, json={"instances": bad})
        doc = r.json()
        assert r.status_code == 422 and doc["field"] == "instances[17]"
        assert doc["missing"] == ["worst area"]
        assert "instances[17]: missing feature(s) 'worst area'" in doc["error"]
        assert r.headers["x-request-id"] == doc["request_id"]


def test_chunked_body_over_the_limit_is_refused(server: BackgroundServer) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"instances": ['
        for _ in range(8000):
            yield b'{"a": 1.0, "b": 2.0, "c": 3.0},'
        yield b"{}]}"

    r = httpx.post(f"{server.url}/endpoints/churn/predict", content=chunks())
    assert r.status_code == 413


def test_a_model_that_cannot_load_makes_the_server_not_ready(
    settings: Settings, registered: Any
) -> None:
    import os

    from shipyard.stores import open_stores

    store = open_stores(settings).artifacts
    path = store._path(registered.artifact_digest)
    os.chmod(path, 0o644)
    path.write_bytes(b"{}")  # the manifest no longer matches its digest
    app = create_serving_app(settings, "models:/churn@champion")
    with BackgroundServer(app) as srv:
        srv.wait_ready("/health/live")
        import time

        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            r = httpx.get(f"{srv.url}/v2/models/churn")
            if r.json()["state"] != "loading":
                break
            time.sleep(0.05)
        assert r.json()["state"] == "failed" and "corrupted" in r.json()["error"]
        assert httpx.get(f"{srv.url}/health/ready").status_code == 503
        p = httpx.post(f"{srv.url}/endpoints/churn/predict", json={"instances": [{"a": 1}]})
        assert p.status_code == 503 and p.headers["retry-after"] == "1"


def test_prediction_log_and_batch_metrics(
    settings: Settings, registered: Any, breast_cancer
) -> None:  # type: ignore[no-untyped-def]
    from shipyard.stores.predictions import PredictionLogStore

    X, _ = breast_cancer
    # batching is off by default for onnxruntime (inline is faster); ask for it
    app = create_serving_app(settings, "models:/churn@champion", config={"batching": True})
    with BackgroundServer(app) as srv:
        srv.wait_ready()
        ids = []
        for n in (1, 3, 5):
            r = httpx.post(f"{srv.url}/endpoints/churn/predict", json={"instances": rows(X, n)})
            ids.append(r.json()["request_id"])
        httpx.post(f"{srv.url}/endpoints/churn/predict", json={"instances": []})
        metrics = httpx.get(f"{srv.url}/metrics").text
    # shutting down flushed the log
    table = PredictionLogStore(settings.predictions_dir).read("churn").to_pandas()
    ok = table[table["_status"] == 200]
    assert len(ok) == 9
    assert list(ok.groupby("_request_id", sort=False).size()) == [1, 3, 5]
    assert set(ok["_request_id"]) == set(ids)
    assert ok["mean radius"].tolist()[:4] == X["mean radius"].iloc[[0, 0, 1, 2]].tolist()
    assert (ok["_model_version"] == "1").all() and (ok["_latency_ms"] > 0).all()
    assert (table["_status"] == 422).sum() == 1
    assert 'shipyard_batch_rows_count{endpoint="churn",model="churn",version="1"}' in metrics
    # the log kept up: no row was dropped (the rows themselves are checked above)
    assert "shipyard_predlog_dropped_total" in metrics  # the family is exported...
    assert "shipyard_predlog_dropped_total{" not in metrics  # ...without one dropped row
    assert 'shipyard_rejections_total{endpoint="churn",reason="SignatureError"} 1.0' in metrics


def test_row_limit_and_request_timeout(settings: Settings) -> None:
    from tests.integration._models import Sleeper

    with sy.start_run(experiment="slow") as run:
        run.log_model(
            Sleeper(0.5), name="slow", input_example=np.ones((2, 1)), serialization="pickle"
        )
    limited = settings.model_copy(update={"max_rows": 3, "request_timeout_seconds": 0.1})
    app = create_serving_app(limited, "models:/slow/1", trusted=True)
    with BackgroundServer(app) as srv:
        srv.wait_ready()
        r = httpx.post(f"{srv.url}/endpoints/slow/predict", json={"instances": [[1.0]] * 4})
        assert r.status_code == 422 and "limit is 3" in r.json()["error"]
        r = httpx.post(f"{srv.url}/endpoints/slow/predict", json={"instances": [[1.0]]})
        assert r.status_code == 504 and "longer than 0.1 s" in r.json()["error"]


def test_metrics_pass_promtool(server: BackgroundServer, breast_cancer) -> None:  # type: ignore[no-untyped-def]
    import shutil
    import subprocess

    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian package 'prometheus'; .ci/run installs it)")
    X, _ = breast_cancer
    httpx.post(f"{server.url}/endpoints/churn/predict", json={"instances": rows(X, 3)})
    httpx.post(f"{server.url}/endpoints/churn/predict", json={"instances": []})
    text = httpx.get(f"{server.url}/metrics").text
    out = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.strip() == "" and out.stderr.strip() == "", out.stdout + out.stderr


def test_late_labels_score_the_live_model(
    settings: Settings, registered: Any, breast_cancer, logreg
) -> None:  # type: ignore[no-untyped-def]
    from shipyard.monitoring.performance import join_labels, score
    from shipyard.monitoring.sources import endpoint_labels, endpoint_window

    X, y = breast_cancer
    app = create_serving_app(settings, "models:/churn@champion")
    sent: list[tuple[str, int, int]] = []  # (request_id, row, true label)
    with BackgroundServer(app) as srv:
        srv.wait_ready()
        for start in range(0, 60, 6):
            r = httpx.post(
                f"{srv.url}/endpoints/churn/predict",
                json={"instances": rows(X.iloc[start:], 6), "probabilities": True},
            )
            rid = r.json()["request_id"]
            sent += [(rid, i, int(y.iloc[start + i])) for i in range(6)]
        first = sent[0][0]
        r = httpx.post(
            f"{srv.url}/endpoints/churn/feedback",
            json={"request_id": first, "labels": [t for _, _, t in sent[:6]]},
        )
        assert r.status_code == 202 and r.json() == {"accepted": 6}
        r = httpx.post(
            f"{srv.url}/endpoints/churn/feedback",
            json={
                "feedback": [
                    {"request_id": rid, "row": row, "label": label} for rid, row, label in sent[6:]
                ]
            },
        )
        assert r.json() == {"accepted": 54}
        for body, field in [
            ({"label": 1}, "request_id"),
            ({"request_id": first, "row": -1, "label": 1}, "row"),
            ({"request_id": first}, "label"),
            ({"request_id": first, "label": [1]}, "label"),
            ({"feedback": []}, "feedback"),
            ({"feedback": [{"request_id": first, "label": {}}]}, "feedback[0].label"),
        ]:
            bad = httpx.post(f"{srv.url}/endpoints/churn/feedback", json=body)
            assert bad.status_code == 400 and bad.json()["field"] == field, bad.text
        assert (
            httpx.post(
                f"{srv.url}/endpoints/nope/feedback", json={"request_id": "x", "label": 1}
            ).status_code
            == 404
        )
    joined = join_labels(
        endpoint_window(settings, "churn", 3600), endpoint_labels(settings, "churn")
    )
    result = score(joined)
    expected = (logreg.predict(X.iloc[:60]) == y.iloc[:60].to_numpy()).mean()
    assert result["task"] == "classification" and result["labelled_rows"] == 60
    assert result["overall"]["accuracy"] == pytest.approx(expected)
    assert result["overall"]["auc"] > 0.9
    assert set(result["by_version"]) == {"1"}


def test_feedback_names_only_ids_the_server_issued(
    settings: Settings, registered: Any, breast_cancer
) -> None:  # type: ignore[no-untyped-def]
    from shipyard.requestids import RequestIds, request_id_key

    X, _ = breast_cancer
    with BackgroundServer(create_serving_app(settings, "models:/churn@champion")) as srv:
        srv.wait_ready()
        r = httpx.post(
            f"{srv.url}/endpoints/churn/predict",
            json={"instances": rows(X, 1)},
            headers={"X-Request-ID": "callers-own-id"},
        )
        issued = r.json()["request_id"]
        assert r.headers["x-request-id"] == "callers-own-id" != issued  # echoed, never the key
        v2 = httpx.post(
            f"{srv.url}/v2/models/churn/infer",
            json={
                "id": "callers-v2-id",
                "inputs": [
                    {"name": "x", "shape": [1, 30], "datatype": "FP64", "data": X.iloc[0].tolist()}
                ],
            },
        ).json()
        assert v2["id"] == "callers-v2-id" != v2["parameters"]["request_id"]
        foreign = RequestIds(request_id_key(settings)).issue("another-endpoint")
        url = f"{srv.url}/endpoints/churn/feedback"
        for rid in ("callers-own-id", "callers-v2-id", "0" * 40, foreign, issued[:-1] + "x"):
            refused = httpx.post(url, json={"request_id": rid, "label": 1})
            assert refused.status_code == 404, refused.text
            assert refused.json()["field"] == "request_id" and rid in refused.json()["error"]
        batch = [{"request_id": issued, "label": 1}, {"request_id": foreign, "label": 0}]
        refused = httpx.post(url, json={"feedback": batch})
        assert refused.status_code == 404 and refused.json()["item"] == 1
        for rid in (issued, v2["parameters"]["request_id"]):
            assert httpx.post(url, json={"request_id": rid, "label": 1}).status_code == 202


# -- the wire: hot routes answered by shipyard's own protocol (serving.connection) ------------


class _Answer:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body

    def json(self) -> Any:
        import json

        return json.loads(self.body)


class _Wire:
    """A raw HTTP/1.1 client on one socket: requests sent as given (pipelined if sent
    together), answers parsed one by one (interim 1xx answers included)."""

    def __init__(self, server: BackgroundServer) -> None:
        import socket

        self.sock = socket.create_connection((server.host, server.port), timeout=10)
        self.buffer = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self) -> bool:
        chunk = self.sock.recv(65536)
        self.buffer += chunk
        return bool(chunk)

    def answer(self) -> _Answer:
        while b"\r\n\r\n" not in self.buffer:
            assert self._fill(), f"connection closed mid-answer: {self.buffer!r}"
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
        status = int(status_line.split()[1])
        length = int(headers.get("content-length", "0"))
        while len(self.buffer) < length:
            assert self._fill(), "connection closed mid-body"
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return _Answer(status, headers, body)

    def closed(self) -> bool:
        """Whether the server has closed the connection (EOF, nothing more buffered)."""
        return not self.buffer and not self._fill()

    def close(self) -> None:
        self.sock.close()


def _post(path: str, body: bytes, *extra: str, version: str = "1.1") -> bytes:
    head = [f"POST {path} HTTP/{version}", "Host: test", "Content-Type: application/json"]
    head += [f"Content-Length: {len(body)}", *extra]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def _get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: test\r\n\r\n".encode()


@pytest.fixture
def counted(server: BackgroundServer) -> list[str]:
    """The hot requests the server's protocol handed to the handler directly (by name)."""
    fast = server.server.config.app  # the data plane's fast path, what the server runs
    seen: list[str] = []
    direct = fast.direct

    async def counting(scope: Any, name: str, kind: str, request: Any) -> Any:
        seen.append(f"{kind} {name}")
        return await direct(scope, name, kind, request)

    fast.direct = counting
    return seen


def test_hot_and_other_requests_pipelined_on_one_connection_answer_in_order(
    server: BackgroundServer, counted: list[str], breast_cancer, logreg
) -> None:  # type: ignore[no-untyped-def]
    import json

    X, _ = breast_cancer
    plain = json.dumps({"instances": rows(X, 3)}).encode()
    v2 = json.dumps(
        {"inputs": [{"name": "x", "shape": [2, 30], "datatype": "FP64",
                     "data": X.iloc[3:5].to_numpy().ravel().tolist()}]}
    ).encode()  # fmt: skip
    wire = _Wire(server)
    try:
        wire.send(
            _post("/endpoints/churn/predict", plain, "X-Request-ID: first")
            + _get("/health/ready")
            + _post("/v2/models/churn/infer", v2)
            + _get("/v2/models/churn")
            + _post("/endpoints/ch%75rn/predict", plain)  # escaped: the ASGI way, same answer
            + _post("/endpoints/churn/predict?probabilities=1", plain)
        )
        answers = [wire.answer() for _ in range(6)]
    finally:
        wire.close()
    assert [a.status for a in answers] == [200] * 6, [a.body for a in answers]
    first, ready, infer, meta, escaped, query = answers
    want = logreg.predict(X[:3]).tolist()
    assert first.json()["predictions"] == want and first.json()["request_id"] != "first"
    assert first.headers["x-request-id"] == "first" and first.headers["x-model-version"] == "1"
    assert first.headers["content-type"] == "application/json" and "date" in first.headers
    assert ready.json()["ready"] is True
    assert infer.json()["outputs"][0]["data"] == logreg.predict(X[3:5]).tolist()
    assert meta.json()["name"] == "churn"
    assert escaped.json()["predictions"] == want and query.json()["predictions"] == want
    assert counted == ["predict churn", "infer churn"]


def test_a_body_in_pieces_chunked_or_after_100_continue_is_read_whole(
    server: BackgroundServer, counted: list[str], breast_cancer, logreg
) -> None:  # type: ignore[no-untyped-def]
    import json
    import time

    X, _ = breast_cancer
    body = json.dumps({"instances": rows(X, 40)}).encode()
    want = logreg.predict(X[:40]).tolist()
    wire = _Wire(server)
    try:
        request = _post("/endpoints/churn/predict", body)
        for start in range(0, len(request), 700):  # head and body over many segments
            wire.send(request[start : start + 700])
            time.sleep(0.002)
        assert wire.answer().json()["predictions"] == want
        head = (
            b"POST /endpoints/churn/predict HTTP/1.1\r\nHost: t\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        half = len(body) // 2
        chunked = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in (body[:half], body[half:]))
        wire.send(head + chunked + b"0\r\n\r\n")
        assert wire.answer().json()["predictions"] == want
        with_expect = _post("/endpoints/churn/predict", body, "Expect: 100-continue")
        wire.send(with_expect[: -len(body)])  # the head alone: the server asks for the body
        interim = wire.answer()
        assert interim.status == 100
        wire.send(body)
        assert wire.answer().json()["predictions"] == want
    finally:
        wire.close()
    assert counted == ["predict churn"] * 3


def test_http_1_0_and_connection_close_end_the_connection(
    server: BackgroundServer, counted: list[str], breast_cancer
) -> None:  # type: ignore[no-untyped-def]
    import json

    X, _ = breast_cancer
    body = json.dumps({"instances": rows(X, 1)}).encode()
    for request in (
        _post("/endpoints/churn/predict", body, version="1.0"),
        _post("/endpoints/churn/predict", body, "Connection: close"),
    ):
        wire = _Wire(server)
        try:
            wire.send(request)
            answer = wire.answer()
            assert answer.status == 200 and answer.headers["connection"] == "close"
            assert wire.closed()
        finally:
            wire.close()
    wire = _Wire(server)  # keep-alive by default: the connection stays open for the next one
    try:
        for _ in range(3):
            wire.send(_post("/endpoints/churn/predict", body))
            answer = wire.answer()
            assert answer.status == 200 and "connection" not in answer.headers
    finally:
        wire.close()
    assert len(counted) == 5


def test_limits_and_a_bad_request_id_on_the_direct_path(
    server: BackgroundServer, counted: list[str], breast_cancer
) -> None:  # type: ignore[no-untyped-def]
    import json

    X, _ = breast_cancer
    body = json.dumps({"instances": rows(X, 1)}).encode()
    wire = _Wire(server)
    try:  # a declared length over the limit is refused before any of the body is sent
        wire.send(b"POST /endpoints/churn/predict HTTP/1.1\r\nHost: t\r\n"
                  b"Content-Length: 10000000\r\n\r\n")  # fmt: skip
        answer = wire.answer()
        assert answer.status == 413 and answer.json()["limit"] == 200_000
    finally:
        wire.close()
    wire = _Wire(server)
    try:
        for bad in ("has space", "x" * 129):
            wire.send(_post("/endpoints/churn/predict", body, f"X-Request-ID: {bad}"))
            answer = wire.answer()
            doc = answer.json()
            assert answer.status == 400 and doc["field"] == "x-request-id", doc
            assert answer.headers["x-request-id"] == doc["request_id"] != bad  # a fresh id
        wire.send(_post("/endpoints/churn/predict", body, "X-Request-ID: " + "y" * 128))
        answer = wire.answer()  # the caller's id is echoed; the prediction's is the server's
        assert answer.headers["x-request-id"] == "y" * 128 != answer.json()["request_id"]
    finally:
        wire.close()
    assert len(counted) == 4


def test_a_client_that_never_reads_its_answers_is_not_buffered_without_bound(
    server: BackgroundServer, counted: list[str]
) -> None:
    import socket
    import threading
    import time

    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((server.host, server.port))
    sock.settimeout(0.2)
    request = _post("/endpoints/nope/predict", b"") * 100  # pipelined; answers are 404s
    sent = 0

    def flood(deadline: float) -> None:
        nonlocal sent
        at = 0  # a partial send goes on where it stopped: the stream stays well-formed
        while time.monotonic() < deadline:
            try:
                at += sock.send(request[at:])
            except TimeoutError:  # the server stopped reading: it waits for this client
                continue
            if at == len(request):
                at, sent = 0, sent + 100

    sender = threading.Thread(target=flood, args=(time.monotonic() + 3,))
    sender.start()
    sender.join()
    try:
        connections = list(server.server.server_state.connections)
        assert len(connections) == 1  # still open: nothing was malformed
        buffered = connections[0].transport.get_write_buffer_size()
        assert counted  # answered on the direct path until the client fell behind
        assert buffered < 1_000_000, (buffered, sent)  # bounded (was ~6 MB a second, unread)
        other = httpx.post(f"{server.url}/endpoints/nope/predict", json={"instances": [{}]})
        assert other.status_code == 404  # and everyone else is still answered
    finally:
        sock.close()
