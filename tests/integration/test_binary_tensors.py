"""The Open Inference Protocol's binary tensor data extension over real HTTP on loopback:
Triton's own HTTP client (`tritonclient.http`) sending raw tensors and asking for raw or JSON
outputs, on the transport's fast path, the ASGI fast path and FastAPI's route; and hostile
bodies (4xx JSON naming the input at fault)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import orjson
import pytest
import tritonclient.http as httpclient

import shipyard as sy
from shipyard.config import Settings
from shipyard.serving.app import create_serving_app
from shipyard.serving.http import BackgroundServer

HEADER = "Inference-Header-Content-Length"


@pytest.fixture
def db_url(tmp_path: Any) -> str:
    return f"sqlite:///{tmp_path / 'meta.db'}"


@pytest.fixture
def registered(settings: Settings, breast_cancer, logreg) -> Any:  # type: ignore[no-untyped-def]
    X, _ = breast_cancer
    with sy.start_run(experiment="serve") as run:
        mv = run.log_model(logreg, name="churn", input_example=X[:5])
    sy.set_alias("churn", "champion", mv.version)
    return mv


@pytest.fixture(params=[True, False], ids=["transport-fast-path", "asgi-fast-path"])
def server(
    request: pytest.FixtureRequest, settings: Settings, registered: Any
) -> Iterator[BackgroundServer]:
    update = {"max_body_bytes": 100_000, "fast_path": request.param}
    app = create_serving_app(settings.model_copy(update=update), "models:/churn@champion")
    with BackgroundServer(app) as srv:
        srv.wait_ready()
        yield srv


def client(server: BackgroundServer) -> Any:
    return httpclient.InferenceServerClient(url=f"127.0.0.1:{server.port}")


def test_tritonclient_binary_inputs_and_outputs(
    server: BackgroundServer, breast_cancer, logreg
) -> None:  # type: ignore[no-untyped-def]
    X, _ = breast_cancer
    rows = X.iloc[:40].to_numpy(dtype=np.float64)
    triton = client(server)
    assert "binary_tensor_data" in triton.get_server_metadata()["extensions"]
    matrix = httpclient.InferInput("input", list(rows.shape), "FP64")
    matrix.set_data_from_numpy(rows, binary_data=True)
    outputs = [
        httpclient.InferRequestedOutput("predict", binary_data=True),
        httpclient.InferRequestedOutput("predict_proba", binary_data=False),
    ]
    result = triton.infer("churn", [matrix], outputs=outputs)
    np.testing.assert_array_equal(result.as_numpy("predict"), logreg.predict(X[:40]))
    np.testing.assert_allclose(
        result.as_numpy("predict_proba"), logreg.predict_proba(X[:40]), atol=1e-6
    )
    raw = result.get_output("predict")
    assert raw["parameters"]["binary_data_size"] == 40 * 8 and "data" not in raw
    assert "data" in result.get_output("predict_proba")  # asked for as JSON

    # one FP32 tensor per feature, all outputs raw (the client's default), by version
    columns = []
    for name in X.columns:
        tensor = httpclient.InferInput(name, [40], "FP32")
        tensor.set_data_from_numpy(X[name].iloc[:40].to_numpy(np.float32), binary_data=True)
        columns.append(tensor)
    wanted = [httpclient.InferRequestedOutput(n) for n in ("predict", "predict_proba")]
    by_version = triton.infer("churn", columns, model_version="1", outputs=wanted)
    expected = logreg.predict(X[:40].astype(np.float32))
    np.testing.assert_array_equal(by_version.as_numpy("predict"), expected)
    assert by_version.as_numpy("predict_proba").shape == (40, 2)

    # JSON inputs, no outputs named: the client asks for binary_data_output
    plain = httpclient.InferInput("input", list(rows.shape), "FP64")
    plain.set_data_from_numpy(rows, binary_data=False)
    answer = triton.infer("churn", [plain])
    np.testing.assert_array_equal(answer.as_numpy("predict"), logreg.predict(X[:40]))
    assert "binary_data_size" in answer.get_output("predict")["parameters"]
    # JSON in, JSON out
    as_json = [httpclient.InferRequestedOutput("predict", binary_data=False)]
    answer = triton.infer("churn", [plain], outputs=as_json)
    np.testing.assert_array_equal(answer.as_numpy("predict"), logreg.predict(X[:40]))
    assert answer.get_output("predict")["data"] == logreg.predict(X[:40]).tolist()
    metrics = httpx.get(f"{server.url}/metrics").text  # counted like any request
    labels = 'endpoint="churn",model="churn",status="200",version="1"'
    assert f"shipyard_requests_total{{{labels}}} 4.0" in metrics
    assert (
        'shipyard_predicted_rows_total{endpoint="churn",model="churn",version="1"} 160.0' in metrics
    )


def test_string_labels_answer_as_bytes(settings: Settings, breast_cancer) -> None:  # type: ignore[no-untyped-def]
    from sklearn.tree import DecisionTreeClassifier

    X, y = breast_cancer
    labels = np.where(y == 1, "benign", "malignant")
    model = DecisionTreeClassifier(max_depth=3, random_state=0).fit(X, labels)
    with sy.start_run(experiment="serve") as run:
        run.log_model(model, name="tumour", input_example=X[:5])
    app = create_serving_app(settings, "models:/tumour/1")
    with BackgroundServer(app) as srv:
        srv.wait_ready()
        triton = client(srv)
        rows = X.iloc[:25].to_numpy(np.float64)
        tensor = httpclient.InferInput("input", list(rows.shape), "FP64")
        tensor.set_data_from_numpy(rows)
        result = triton.infer("tumour", [tensor])  # binary_data_output: every output raw
        got = result.as_numpy("predict")
        assert result.get_output("predict")["datatype"] == "BYTES"
        assert [g.decode() for g in got] == model.predict(X[:25]).tolist()


def _binary_body(header: dict[str, Any], *blobs: bytes) -> tuple[bytes, int]:
    head = orjson.dumps(header)
    return head + b"".join(blobs), len(head)


def _matrix(n: int, size: int | None = None) -> dict[str, Any]:
    return {
        "inputs": [
            {
                "name": "input",
                "shape": [n, 30],
                "datatype": "FP64",
                "parameters": {"binary_data_size": n * 30 * 8 if size is None else size},
            }
        ]
    }


@pytest.mark.parametrize(
    ("header", "blob", "declared", "field"),
    [
        (_matrix(2), bytes(2 * 30 * 8), "99999", "inference-header-content-length"),
        (_matrix(2), bytes(2 * 30 * 8), "-3", "inference-header-content-length"),
        (_matrix(2), bytes(2 * 30 * 8), "many", "inference-header-content-length"),
        (_matrix(2), bytes(2 * 30 * 8 + 5), None, "inputs"),  # sizes add up short
        (
            _matrix(2, 2 * 30 * 8 + 8),
            bytes(2 * 30 * 8),
            None,
            "inputs[0].parameters.binary_data_size",
        ),
        (_matrix(2, 2 * 30 * 4), bytes(2 * 30 * 4), None, "inputs[0].parameters.binary_data_size"),
        (_matrix(2, -1), b"", None, "inputs[0].parameters.binary_data_size"),
        (_matrix(2), bytes(2 * 30 * 8), "missing", "inputs[0].parameters.binary_data_size"),
        (
            {"inputs": [{**_matrix(1)["inputs"][0], "data": [0.0] * 30}]},
            bytes(30 * 8),
            None,
            "inputs[0].data",
        ),
        (
            {**_matrix(1), "parameters": {"binary_data_output": "yes"}},
            bytes(30 * 8),
            None,
            "parameters.binary_data_output",
        ),
    ],
)
def test_hostile_binary_bodies_are_4xx_naming_the_input(
    server: BackgroundServer, header: dict[str, Any], blob: bytes, declared: str | None, field: str
) -> None:
    body, length = _binary_body(header, blob)
    headers = {"content-type": "application/octet-stream"}
    if declared != "missing":
        headers[HEADER] = declared or str(length)
    for path in ("/v2/models/churn/infer", "/v2/models/churn/versions/1/infer"):
        r = httpx.post(f"{server.url}{path}", content=body, headers=headers)
        assert 400 <= r.status_code < 500, (path, r.status_code, r.text)
        assert r.headers["content-type"] == "application/json"
        assert r.json()["field"] == field, r.json()


def test_a_binary_body_over_the_limit_is_413(server: BackgroundServer) -> None:
    n = 500  # 500 rows of 30 FP64: 120 kB, over the fixture's 100 kB
    body, length = _binary_body(_matrix(n), bytes(n * 30 * 8))
    r = httpx.post(
        f"{server.url}/v2/models/churn/infer", content=body, headers={HEADER: str(length)}
    )
    assert r.status_code == 413 and r.json()["field"] == "body"


def test_binary_requests_are_batched_logged_and_authenticated(
    settings: Settings, registered: Any, breast_cancer, logreg
) -> None:  # type: ignore[no-untyped-def]
    from concurrent.futures import ThreadPoolExecutor

    from shipyard.access.keys import ApiKeys
    from shipyard.stores import open_stores
    from shipyard.stores.predictions import PredictionLogStore

    X, _ = breast_cancer
    _, key = ApiKeys(open_stores(settings)).create("bot", scopes=["predict", "read"])
    secured = settings.model_copy(update={"auth_required": True, "auth_cache_seconds": 0.0})
    app = create_serving_app(secured, "models:/churn@champion", config={"batching": True})

    def infer(srv: BackgroundServer, start: int, headers: dict[str, str] | None) -> Any:
        rows = X.iloc[start : start + 3].to_numpy(np.float64)
        tensor = httpclient.InferInput("input", list(rows.shape), "FP64")
        tensor.set_data_from_numpy(rows, binary_data=True)
        headers = dict(headers) if headers else None  # the client adds its own to the dict
        return client(srv).infer("churn", [tensor], headers=headers).as_numpy("predict")

    with BackgroundServer(app) as srv:
        srv.wait_ready()
        with pytest.raises(httpclient.InferenceServerException, match="401"):
            infer(srv, 0, None)
        auth = {"authorization": f"Bearer {key}"}
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda i: infer(srv, i * 3, auth), range(16)))
        metrics = httpx.get(f"{srv.url}/metrics", headers=auth).text
    for i, got in enumerate(answers):
        np.testing.assert_array_equal(got, logreg.predict(X[i * 3 : i * 3 + 3]))
    assert 'shipyard_batch_rows_count{endpoint="churn",model="churn",version="1"}' in metrics
    table = PredictionLogStore(settings.predictions_dir).read("churn").to_pandas()
    assert len(table[table["_status"] == 200]) == 48


def _bytes_input(shape: list[int], size: int) -> dict[str, Any]:
    return {
        "inputs": [
            {
                "name": "input",
                "shape": shape,
                "datatype": "BYTES",
                "parameters": {"binary_data_size": size},
            }
        ]
    }


def _post(server: BackgroundServer, body: bytes, headers: list[tuple[str, str]]) -> Any:
    return httpx.post(f"{server.url}/v2/models/churn/infer", content=body, headers=headers)


@pytest.mark.parametrize(
    ("shape", "field"),
    [
        ([2, 30], "inputs[0].parameters.binary_data_size"),  # 60 elements, a million sent
        ([1_000_000], "inputs[0].shape"),  # over the row limit: refused before any is decoded
    ],
)
def test_a_hostile_bytes_body_is_refused_without_holding_the_loop(
    settings: Settings, registered: Any, shape: list[int], field: str
) -> None:
    """A million empty BYTES elements then one of a different length (no uniform fast path;
    read one by one they hold the event loop for seconds): the element count is checked
    against the shape and the row limit before the elements are read, so a readiness probe
    sent meanwhile answers at once."""
    import threading
    import time

    n = 1_000_000
    blob = bytes(4 * (n - 1)) + (1).to_bytes(4, "little") + b"x"
    body, length = _binary_body(_bytes_input(shape, len(blob)), blob)
    update = {"max_body_bytes": len(body) + 1, "max_rows": 1_000, "fast_path": True}
    app = create_serving_app(settings.model_copy(update=update), "models:/churn@champion")
    with BackgroundServer(app) as srv:
        srv.wait_ready()
        answers: list[Any] = []
        flood = threading.Thread(
            target=lambda: answers.extend(
                _post(srv, body, [(HEADER, str(length))]) for _ in range(3)
            )
        )
        flood.start()
        waits = []
        while flood.is_alive():
            start = time.perf_counter()
            assert httpx.get(f"{srv.url}/v2/health/ready").status_code == 200
            waits.append(time.perf_counter() - start)
        flood.join()
    assert [r.status_code for r in answers] == [422] * 3
    assert {r.json()["field"] for r in answers} == {field}
    assert max(waits) < 1.0, waits


def test_bytes_bodies_decode_with_and_without_uniform_lengths(
    server: BackgroundServer,
) -> None:
    """Uniform and mixed element lengths (and non-ASCII text) reach the same checks: a BYTES
    matrix is read, then refused by the model's float signature, naming its first feature."""
    for values in (["ab"] * 60, ["é", "a", "bc"] * 20, [""] * 60):
        blob = b"".join(len(v.encode()).to_bytes(4, "little") + v.encode() for v in values)
        body, length = _binary_body(_bytes_input([2, 30], len(blob)), blob)
        r = _post(server, body, [(HEADER, str(length))])
        assert r.status_code == 422 and r.json()["field"] == "mean radius", r.json()
    bad = (1).to_bytes(4, "little") + b"\xff" + (1).to_bytes(4, "little") + b"a"
    body, length = _binary_body(_bytes_input([2], len(bad)), bad)
    r = _post(server, body, [(HEADER, str(length))])
    assert r.status_code == 422 and r.json()["field"] == "inputs[0].data", r.json()


@pytest.mark.parametrize("shape", [[2**63, 0], [0, 2**62], [2**40, 0]])
def test_a_huge_dimension_names_the_shape(server: BackgroundServer, shape: list[int]) -> None:
    body, length = _binary_body({"inputs": [{**_matrix(0)["inputs"][0], "shape": shape}]})
    r = _post(server, body, [(HEADER, str(length))])
    assert 400 <= r.status_code < 500 and r.json()["field"] == "inputs[0].shape", r.json()
    assert "dimension" in r.json()["error"] or "rows" in r.json()["error"]


def test_a_binary_body_without_its_header_names_the_header(server: BackgroundServer) -> None:
    body, _ = _binary_body(_matrix(2), np.full(60, -1.5).tobytes())  # not UTF-8
    r = _post(server, body, [])
    assert r.status_code == 400, r.text
    assert r.json()["field"] == "inputs[0].parameters.binary_data_size", r.json()
    r = _post(server, b"\x00\xff\xfe" + bytes(100), [])  # no JSON header at all
    assert r.status_code == 400 and r.json()["field"] == "body", r.json()
    assert "looks binary" in r.json()["error"] and HEADER in r.json()["error"]


@pytest.mark.parametrize("declared", [["{n[0]}_{n[1]}{n[2]}"], ["+{n}"], ["{n}", "{m}"]])
def test_the_header_length_is_plain_digits_sent_once(
    server: BackgroundServer, declared: list[str]
) -> None:
    body, length = _binary_body(_matrix(2), bytes(2 * 30 * 8))
    assert 100 <= length < 1000  # Python's int() takes each spelling above as the length
    headers = [(HEADER, d.format(n=str(length), m=length + 1)) for d in declared]
    r = _post(server, body, headers)
    assert r.status_code == 400 and r.json()["field"] == HEADER.lower(), r.json()
    assert "sent 2 times" in r.text if len(declared) == 2 else "whole number" in r.text
    same = _post(server, body, [(HEADER, str(length)), (HEADER, str(length))])
    assert same.status_code == 200, same.text


def test_an_output_asked_for_twice_is_refused(server: BackgroundServer) -> None:
    outputs = [{"name": "predict"}, {"name": "predict", "parameters": {"binary_data": True}}]
    body, length = _binary_body({**_matrix(2), "outputs": outputs}, bytes(2 * 30 * 8))
    r = _post(server, body, [(HEADER, str(length))])
    assert r.status_code == 400 and r.json()["field"] == "outputs[1].name", r.json()
