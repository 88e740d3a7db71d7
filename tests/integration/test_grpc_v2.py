"""The V2 gRPC service (KServe's V2 inference protocol) of a real `shipyard serve … --grpc-port
0` process, driven by Triton's own gRPC client (`tritonclient.grpc`): the same predictions as
the HTTP route, health and metadata, the HTTP server's auth and rate limits, errors with the
gRPC status of their meaning and the HTTP message text, the request metrics, a clean exit.

The server runs in its own process, as a user's would."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

import shipyard as sy
from shipyard.access import ApiKeys
from shipyard.config import Settings
from shipyard.stores import open_stores

pytestmark = pytest.mark.slow


class Served(NamedTuple):
    proc: subprocess.Popen[str]
    http: str
    grpc: str
    key: str  # may predict
    reader: str  # may only read
    slow: str  # may predict once per 100 s


@pytest.fixture
def served(settings: Settings, breast_cancer, logreg) -> Iterator[Served]:  # type: ignore[no-untyped-def]
    X, _ = breast_cancer
    with sy.start_run(experiment="serve") as run:
        mv = run.log_model(logreg, name="churn", input_example=X[:5])
    sy.set_alias("churn", "champion", mv.version)
    keys = ApiKeys(open_stores(settings))
    _, key = keys.create("app", scopes=["predict", "read"])
    _, reader = keys.create("dashboards", scopes=["read"])
    _, slow = keys.create("trickle", scopes=["predict"], rate_per_second=0.01, burst=1)
    env = {**os.environ, "SHIPYARD_AUTH_REQUIRED": "true", "SHIPYARD_MAX_BODY_BYTES": "200000"}
    cli = str(Path(sys.executable).with_name("shipyard"))
    args = [cli, "serve", "models:/churn@champion", "--port", "0", "--grpc-port", "0"]
    proc = subprocess.Popen(
        [*args, "--log-level", "warning"], env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        http, grpc = _addresses(proc)
        _wait_ready(http)
        yield Served(proc, http, grpc, key, reader, slow)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _addresses(proc: subprocess.Popen[str]) -> tuple[str, str]:
    """The HTTP URL and the gRPC address the server announces on stderr."""
    assert proc.stderr is not None
    http = grpc = None
    deadline = time.monotonic() + 60
    while (http is None or grpc is None) and time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            raise AssertionError(f"shipyard serve exited ({proc.poll()}) before announcing")
        if m := re.search(r"on (http://127\.0\.0\.1:\d+)", line):
            http = m.group(1)
        if m := re.search(r"V2 gRPC on (127\.0\.0\.1:\d+)", line):
            grpc = m.group(1)
    assert http is not None and grpc is not None
    return http, grpc


def _wait_ready(http: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{http}/health/ready", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError("the server did not become ready")


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def matrix(rows: np.ndarray, datatype: str = "FP64") -> Any:
    tensor = grpcclient.InferInput("input", list(rows.shape), datatype)
    tensor.set_data_from_numpy(rows)
    return tensor


def refusal(call: Any) -> InferenceServerException:
    with pytest.raises(InferenceServerException) as caught:
        call()
    return caught.value


def test_grpc_answers_as_http_does(served: Served, breast_cancer, logreg) -> None:  # type: ignore[no-untyped-def]
    X, _ = breast_cancer
    client = grpcclient.InferenceServerClient(url=served.grpc)
    auth = bearer(served.key)
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("churn", headers=auth)
    assert client.get_server_metadata().name == "shipyard"
    meta = client.get_model_metadata("churn", headers=auth)
    assert meta.versions == ["1"] and [o.name for o in meta.outputs] == ["predict", "predict_proba"]
    assert len(meta.inputs) == X.shape[1]

    rows = X.iloc[:40].to_numpy(np.float64)
    wanted = [grpcclient.InferRequestedOutput(n) for n in ("predict", "predict_proba")]
    result = client.infer("churn", [matrix(rows)], outputs=wanted, headers=auth)
    over_http = httpx.post(
        f"{served.http}/v2/models/churn/infer",
        headers=auth,
        json={
            "inputs": [
                {"name": "input", "shape": [40, 30], "datatype": "FP64", "data": rows.tolist()}
            ],
            "outputs": [{"name": "predict"}, {"name": "predict_proba"}],
        },
    ).json()
    np.testing.assert_array_equal(result.as_numpy("predict"), logreg.predict(X[:40]))
    http_outputs = {o["name"]: o["data"] for o in over_http["outputs"]}
    assert result.as_numpy("predict").tolist() == http_outputs["predict"]
    assert result.as_numpy("predict_proba").ravel().tolist() == http_outputs["predict_proba"]
    assert result.as_numpy("predict_proba").shape == (40, 2)
    response = result.get_response()
    assert response.model_name == "churn" and response.model_version == "1"

    # one FP32 tensor per feature, by version, all outputs by default (predict)
    columns = []
    for name in X.columns:
        tensor = grpcclient.InferInput(name, [10], "FP32")
        tensor.set_data_from_numpy(X[name].iloc[:10].to_numpy(np.float32))
        columns.append(tensor)
    by_version = client.infer("churn", columns, model_version="1", headers=auth)
    expected = logreg.predict(X[:10].astype(np.float32))
    np.testing.assert_array_equal(by_version.as_numpy("predict"), expected)

    _bad_input_is_refused(client, served.http, auth, rows)

    metrics = httpx.get(f"{served.http}/metrics").text
    labels = 'endpoint="churn",model="churn",status="200",version="1"'
    assert f"shipyard_requests_total{{{labels}}} 3.0" in metrics  # 2 gRPC + 1 HTTP
    assert 'shipyard_predicted_rows_total{endpoint="churn",model="churn",version="1"} 90.0' in (
        metrics
    )
    assert 'shipyard_grpc_requests_total{code="OK",method="ModelInfer"} 2.0' in metrics
    assert 'shipyard_grpc_requests_total{code="INVALID_ARGUMENT",method="ModelInfer"} 3.0' in (
        metrics
    )
    client.close()

    served.proc.send_signal(signal.SIGTERM)  # both listeners stop; the process exits cleanly
    assert served.proc.wait(timeout=60) == 0


def _bad_input_is_refused(client: Any, http: str, auth: dict[str, str], rows: np.ndarray) -> None:
    """Bad input: INVALID_ARGUMENT with the HTTP message naming the input; NOT_FOUND for a
    model or version the server does not serve."""
    wrong_shape = refusal(
        lambda: client.infer("churn", [matrix(rows[:, :7])], headers=auth)
    )  # fmt: skip
    assert wrong_shape.status() == "StatusCode.INVALID_ARGUMENT"
    assert wrong_shape.message().startswith("'inputs[0]' has shape [40, 7]; expected [n, 30]")
    over_http = httpx.post(
        f"{http}/v2/models/churn/infer",
        headers=auth,
        json={"inputs": [{"name": "input", "shape": [40, 7], "datatype": "FP64",
                          "data": rows[:, :7].tolist()}]},
    )  # fmt: skip
    assert over_http.status_code == 422 and over_http.json()["error"] == wrong_shape.message()
    text = np.array([["a"] * 30], dtype=object)
    wrong_type = refusal(lambda: client.infer("churn", [matrix(text, "BYTES")], headers=auth))
    assert wrong_type.status() == "StatusCode.INVALID_ARGUMENT"
    assert wrong_type.message() == "feature 'mean radius' expects double values"
    short = grpcclient.InferInput("input", [2, 30], "FP64")
    short.set_data_from_numpy(rows[:2])
    short.set_shape([40, 30])  # 2 rows of bytes for a [40, 30] shape
    too_few = refusal(lambda: client.infer("churn", [short], headers=auth))
    assert too_few.status() == "StatusCode.INVALID_ARGUMENT"
    assert "inputs[0].parameters.binary_data_size" in too_few.message()

    unknown = refusal(lambda: client.infer("nope", [matrix(rows)], headers=auth))
    assert unknown.status() == "StatusCode.NOT_FOUND" and "nope" in unknown.message()
    wrong_version = refusal(
        lambda: client.infer("churn", [matrix(rows)], model_version="9", headers=auth)
    )
    assert wrong_version.status() == "StatusCode.NOT_FOUND"
    missing = refusal(lambda: client.get_model_metadata("nope", headers=auth))
    assert missing.status() == "StatusCode.NOT_FOUND"


def test_grpc_takes_the_http_servers_auth_and_limits(served: Served, breast_cancer) -> None:  # type: ignore[no-untyped-def]
    X, _ = breast_cancer
    client = grpcclient.InferenceServerClient(url=served.grpc)
    rows = X.iloc[:3].to_numpy(np.float64)
    anonymous = refusal(lambda: client.infer("churn", [matrix(rows)]))
    assert anonymous.status() == "StatusCode.UNAUTHENTICATED"
    assert "requires credentials" in anonymous.message()
    forged = refusal(lambda: client.infer("churn", [matrix(rows)], headers=bearer("sy_x_y")))
    assert forged.status() == "StatusCode.UNAUTHENTICATED"
    reader = refusal(lambda: client.infer("churn", [matrix(rows)], headers=bearer(served.reader)))
    assert reader.status() == "StatusCode.PERMISSION_DENIED" and "predict" in reader.message()
    assert client.is_model_ready("churn", headers={"x-api-key": served.reader})
    hidden = refusal(lambda: client.get_model_metadata("churn"))
    assert hidden.status() == "StatusCode.UNAUTHENTICATED"

    slow = bearer(served.slow)
    client.infer("churn", [matrix(rows)], headers=slow)  # its burst of one
    limited = refusal(lambda: client.infer("churn", [matrix(rows)], headers=slow))
    assert limited.status() == "StatusCode.RESOURCE_EXHAUSTED" and "rate limit" in limited.message()

    _typed_contents_answer_too(served, X)

    # a message over the body limit (200 kB) is refused before it is read
    big = X.iloc[np.arange(1000) % len(X)].to_numpy(np.float64)  # 240 kB
    too_big = refusal(lambda: client.infer("churn", [matrix(big)], headers=bearer(served.key)))
    assert too_big.status() == "StatusCode.RESOURCE_EXHAUSTED"
    client.close()


def _typed_contents_answer_too(served: Served, X: Any) -> None:
    """Inputs in the typed `contents` fields rather than raw bytes (tritonclient's messages:
    the same wire format as KServe's proto)."""
    import grpc
    from tritonclient.grpc import service_pb2, service_pb2_grpc

    rows = X.iloc[:4].to_numpy(np.float64)
    request = service_pb2.ModelInferRequest(model_name="churn", id="mine")
    tensor = request.inputs.add(name="input", datatype="FP64", shape=[4, 30])
    tensor.contents.fp64_contents.extend(rows.ravel().tolist())
    with grpc.insecure_channel(served.grpc) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        auth = (("x-api-key", served.key),)
        answer = stub.ModelInfer(request, metadata=auth)
        assert answer.id == "mine" and answer.parameters["request_id"].string_param
        labels = np.frombuffer(answer.raw_output_contents[0], dtype="<f8")
        assert labels.shape == (4,)
        tensor.contents.fp64_contents.pop()  # a value short: the HTTP JSON form's message
        with pytest.raises(grpc.RpcError) as short:
            stub.ModelInfer(request, metadata=auth)
        tensor.contents.ClearField("fp64_contents")
        tensor.contents.fp32_contents.extend(rows.ravel().tolist())  # not FP64's field
        with pytest.raises(grpc.RpcError) as caught:
            stub.ModelInfer(request, metadata=auth)
    assert short.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert short.value.details() == "inputs[0].data has 119 values but shape [4, 30] needs 120"
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "inputs[0].contents" in str(caught.value.details())
