"""Tensor signatures end to end: an ONNX model with a 4-D input, logged from a numpy example,
registered, loaded, and served over real HTTP (tritonclient's binary tensors, V2 JSON flat and
nested, the plain route), with wrong shapes, dtypes and names refused as 4xx JSON naming the
input; batching, the prediction log and monitoring on a tensor model; old column manifests."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import onnx
import pytest
import tritonclient.http as httpclient
from onnx import TensorProto, helper

import shipyard as sy
from shipyard.config import Settings
from shipyard.errors import InvalidArgumentError, SignatureError
from shipyard.serving.app import create_serving_app
from shipyard.serving.http import BackgroundServer

WEIGHTS = np.array([[1.0, -1.0], [2.0, 0.5], [-3.0, 1.0]], dtype=np.float32)


@pytest.fixture
def db_url(tmp_path: Any) -> str:
    return f"sqlite:///{tmp_path / 'meta.db'}"


def pooled_model(height: int | str = 8, width: int | str = 8) -> onnx.ModelProto:
    """x [N, 3, H, W] float → mean over H and W ([N, 3]) @ WEIGHTS → [N, 2]."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, height, width])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2])
    w = helper.make_tensor("w", TensorProto.FLOAT, [3, 2], WEIGHTS.ravel().tolist())
    nodes = [
        helper.make_node("ReduceMean", ["x"], ["pooled"], axes=[2, 3], keepdims=0),
        helper.make_node("MatMul", ["pooled", "w"], ["y"]),
    ]
    graph = helper.make_graph(nodes, "pool", [x], [y], initializer=[w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def expected(batch: np.ndarray) -> np.ndarray:
    return batch.mean(axis=(2, 3)) @ WEIGHTS  # type: ignore[no-any-return]


def images(n: int, h: int = 8, w: int = 8, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, 3, h, w)).astype(np.float32)


@pytest.fixture
def registered(settings: Settings) -> Any:
    with sy.start_run(experiment="tensors") as run:
        mv = run.log_model(pooled_model(), name="pix", input_example=images(2))
    sy.set_alias("pix", "champion", mv.version)
    return mv


@pytest.fixture
def server(settings: Settings, registered: Any) -> Iterator[BackgroundServer]:
    app = create_serving_app(
        settings.model_copy(update={"max_body_bytes": 2_000_000}), "models:/pix@champion"
    )
    with BackgroundServer(app) as srv:
        srv.wait_ready()
        yield srv


def test_logged_from_a_4d_example_with_the_graphs_names(registered: Any) -> None:
    assert registered.signature == {
        "kind": "tensors",
        "inputs": [{"name": "x", "type": "float", "shape": [-1, 3, 8, 8]}],
    }
    model = sy.load_model("models:/pix@champion")
    assert model.signature.kind == "tensors" and model.signature.names == ["x"]
    batch = images(5, seed=1)
    np.testing.assert_allclose(model.predict(batch), expected(batch), rtol=1e-5, atol=1e-6)
    # a float64 batch is cast (nothing lost that float32 keeps); a dict names the input
    np.testing.assert_allclose(
        model.predict({"x": batch.astype(np.float64)}), expected(batch), rtol=1e-5, atol=1e-6
    )
    with pytest.raises(SignatureError) as bad:
        model.predict(images(2, w=9))
    assert bad.value.details == {"field": "x", "expected": [-1, 3, 8, 8], "received": [2, 3, 8, 9]}


def test_an_example_the_graph_does_not_take_is_refused_at_log_time(settings: Settings) -> None:
    with sy.start_run(experiment="tensors") as run:
        with pytest.raises(InvalidArgumentError) as shape:
            run.log_model(pooled_model(), name="pix", input_example=images(2, h=9))
        assert shape.value.details["expected"] == [-1, 3, 8, 8]
        assert shape.value.details["received"] == [-1, 3, 9, 8]
        with pytest.raises(InvalidArgumentError, match="the model takes float"):
            run.log_model(pooled_model(), name="pix", input_example=images(2).astype(np.float64))
        with pytest.raises(InvalidArgumentError, match="names input"):
            run.log_model(pooled_model(), name="pix", input_example={"img": images(2)})


def test_onnx_bytes_are_logged_like_the_model(settings: Settings) -> None:
    with sy.start_run(experiment="tensors") as run:
        mv = run.log_model(pooled_model().SerializeToString(), name="raw", input_example=images(2))
        assert mv.flavor == "onnx" and mv.signature["inputs"][0]["name"] == "x"
        with pytest.raises(InvalidArgumentError, match="not a readable ONNX model"):
            run.log_model(b"not onnx", name="raw", input_example=images(2))
    batch = images(3, seed=4)
    np.testing.assert_allclose(
        sy.load_model("models:/raw/1").predict(batch), expected(batch), rtol=1e-5, atol=1e-6
    )


def test_symbolic_dimensions_of_the_graph_stay_variable(settings: Settings) -> None:
    with sy.start_run(experiment="tensors") as run:
        mv = run.log_model(pooled_model("H", "W"), name="any", input_example=images(2))
    assert mv.signature["inputs"][0]["shape"] == [-1, 3, -1, -1]
    model = sy.load_model(f"models:/any/{mv.version}")
    big = images(1, 16, 12)
    np.testing.assert_allclose(model.predict(big), expected(big), rtol=1e-5, atol=1e-6)


def test_tritonclient_binary_4d_tensor(server: BackgroundServer) -> None:
    triton = httpclient.InferenceServerClient(url=f"127.0.0.1:{server.port}")
    meta = triton.get_model_metadata("pix")
    assert meta["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 3, 8, 8]}]
    assert meta["outputs"][0]["shape"] == [-1, 2]
    batch = images(6, seed=2)
    for binary in (True, False):
        tensor = httpclient.InferInput("x", list(batch.shape), "FP32")
        tensor.set_data_from_numpy(batch, binary_data=binary)
        out = [httpclient.InferRequestedOutput("predict", binary_data=binary)]
        result = triton.infer("pix", [tensor], outputs=out)
        answer = result.as_numpy("predict")
        assert answer.shape == (6, 2)
        np.testing.assert_allclose(answer, expected(batch), rtol=1e-5, atol=1e-6)


def test_tritonclient_wrong_shape_and_dtype_are_4xx(server: BackgroundServer) -> None:
    url = f"{server.url}/v2/models/pix/infer"
    triton = httpclient.InferenceServerClient(url=f"127.0.0.1:{server.port}")
    wrong = images(2, w=9)
    tensor = httpclient.InferInput("x", list(wrong.shape), "FP32")
    tensor.set_data_from_numpy(wrong, binary_data=True)
    with pytest.raises(Exception, match=r"input 'x' has shape \[2, 3, 8, 9\]"):
        triton.infer("pix", [tensor])
    # the same as raw JSON: the body names the input, the expected and the received shape
    r = httpx.post(
        url,
        json={
            "inputs": [
                {"name": "x", "shape": [2, 3, 8, 9], "datatype": "FP32", "data": wrong.tolist()}
            ]
        },
    )
    assert r.status_code == 422, r.text
    doc = r.json()
    assert doc["field"] == "x"
    assert doc["expected"] == [-1, 3, 8, 8] and doc["received"] == [2, 3, 8, 9]
    doubles = images(2).astype(np.float64)
    tensor = httpclient.InferInput("x", list(doubles.shape), "FP64")
    tensor.set_data_from_numpy(doubles, binary_data=True)
    with pytest.raises(Exception, match="datatype FP64; the model takes FP32"):
        triton.infer("pix", [tensor])
    flat = images(2).ravel().tolist()
    for tensors, field in [
        ([{"name": "img", "shape": [2, 3, 8, 8], "datatype": "FP32", "data": flat}], "inputs"),
        ([{"name": "x", "shape": [2, 3, 8, 8], "datatype": "INT64", "data": [1] * 384}], "x"),
        ([{"name": "x", "shape": [2, 3, 8, 8], "datatype": "FP32", "data": flat[:-1]}], None),
        ([{"name": "x", "shape": [0, 3, 8, 8], "datatype": "FP32", "data": []}], "x"),
    ]:
        r = httpx.post(url, json={"inputs": tensors})
        assert 400 <= r.status_code < 500, r.text
        assert field is None or r.json()["field"] == field, r.text
    assert r.json()["received"] == [0, 3, 8, 8]


def test_json_forms(server: BackgroundServer) -> None:
    batch = images(3, seed=3)
    want = expected(batch)
    v2 = f"{server.url}/v2/models/pix/infer"
    plain = f"{server.url}/endpoints/pix/predict"
    for data in (batch.ravel().tolist(), batch.tolist()):  # flat and nested V2 data
        r = httpx.post(
            v2,
            json={
                "inputs": [{"name": "x", "shape": [3, 3, 8, 8], "datatype": "FP32", "data": data}]
            },
        )
        assert r.status_code == 200, r.text
        out = r.json()["outputs"][0]
        assert out["shape"] == [3, 2] and out["datatype"] == "FP32"
        np.testing.assert_allclose(np.reshape(out["data"], (3, 2)), want, rtol=1e-5, atol=1e-5)
    for body in (
        {"inputs": {"x": batch.tolist()}},
        {"inputs": batch.tolist()},
        {"instances": batch.tolist()},
        {"instances": [{"x": row} for row in batch.tolist()]},
    ):
        r = httpx.post(plain, json=body)
        assert r.status_code == 200, r.text
        np.testing.assert_allclose(r.json()["predictions"], want, rtol=1e-5, atol=1e-5)
    for body, field in [
        ({"inputs": {"x": images(2, h=4).tolist()}}, "x"),
        ({"inputs": {"x": [[["a"] * 8] * 8] * 3}}, "x"),
        ({"inputs": {"x": batch.tolist(), "extra": [1]}}, "inputs"),
        ({"inputs": {"x": [[[1.0] * 8] * 8, [[1.0] * 7] * 8]}}, "x"),
        ({"instances": batch.tolist(), "inputs": {}}, "inputs"),
        ({"instances": []}, "instances"),
    ]:
        r = httpx.post(plain, json=body)
        assert 400 <= r.status_code < 500, r.text
        assert r.json()["field"] == field, r.text
    short = httpx.post(plain, json={"inputs": {"x": images(2, h=4).tolist()}}).json()
    assert short["expected"] == [-1, 3, 8, 8] and short["received"] == [2, 3, 4, 8]


def test_batching_log_and_monitoring_of_a_tensor_model(settings: Settings) -> None:
    """Requests of different image sizes batched together; the prediction log keeps a summary
    of each input; drift says it is not computable for tensor inputs."""
    from shipyard.server.app import create_server_app
    from shipyard.stores import open_stores
    from shipyard.stores.predictions import PredictionLogStore

    with sy.start_run(experiment="tensors") as run:
        mv = run.log_model(pooled_model("H", "W"), name="any", input_example=images(2))
    sy.set_alias("any", "champion", mv.version)
    stores = open_stores(settings)
    stores.metadata.endpoints.create(
        "any", "models:/any@champion", actor="t", config={"batching": True, "max_wait_ms": 50}
    )
    fast = settings.model_copy(update={"predlog_flush_seconds": 0.1})
    sizes = [(8, 8), (8, 8), (16, 4), (5, 7)] * 3
    with BackgroundServer(create_server_app(fast, refresh_seconds=0.2)) as srv:
        srv.wait_ready()
        with httpx.Client() as client:
            _wait_endpoint(client, srv.url)
            import concurrent.futures as cf

            def one(i: int) -> tuple[np.ndarray, Any]:
                batch = images(1 + i % 3, *sizes[i], seed=i)
                r = client.post(
                    f"{srv.url}/endpoints/any/predict", json={"inputs": {"x": batch.tolist()}}
                )
                return batch, r

            with cf.ThreadPoolExecutor(8) as pool:
                answers = list(pool.map(one, range(len(sizes))))
            for batch, r in answers:
                assert r.status_code == 200, r.text
                np.testing.assert_allclose(
                    r.json()["predictions"], expected(batch), rtol=1e-5, atol=1e-5
                )
            time.sleep(0.5)
            doc = client.post(f"{srv.url}/api/monitoring/any/evaluate").json()
    assert "not computable for tensor inputs" in doc["error"]
    log = PredictionLogStore(settings.predictions_dir).read("any").to_pandas()
    ok = log[log["_status"] == 200]
    assert len(ok) == sum(1 + i % 3 for i in range(len(sizes)))
    assert {"x.shape", "x.mean", "x.std", "x.min", "x.max"} <= set(ok.columns)
    assert set(ok["x.shape"]) == {"3x8x8", "3x16x4", "3x5x7"}
    assert all(len(p) == 2 for p in ok["_prediction"])  # the [2] output of each row
    assert (ok["_prediction.shape"] == "2").all()


def _wait_endpoint(client: httpx.Client, url: str) -> None:
    for _ in range(200):
        if client.get(f"{url}/v2/models/any/ready").status_code == 200:
            return
        time.sleep(0.05)
    raise AssertionError("the endpoint never became ready")


def test_column_signatures_are_unchanged(settings: Settings, breast_cancer, logreg) -> None:  # type: ignore[no-untyped-def]
    """A manifest from before tensor signatures (no "kind") loads as columns; a 2-D example
    still gives a column signature."""
    from shipyard.flavors.signature import Signature

    old = Signature.from_dict({"inputs": [{"name": "a", "type": "double"}]})
    assert type(old) is Signature and old.kind == "columns"
    X, _ = breast_cancer
    with sy.start_run(experiment="tensors") as run:
        mv = run.log_model(logreg, name="churn", input_example=X[:5].to_numpy())
    assert mv.signature["kind"] == "tensor"  # f0, f1, … columns of a 2-D array, as before
    model = sy.load_model(f"models:/churn/{mv.version}")
    assert type(model.signature) is Signature
    np.testing.assert_array_equal(model.predict(X[:5].to_numpy()), logreg.predict(X[:5]))
