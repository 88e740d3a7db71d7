"""The data plane without a socket: predictions, V2 inference and feedback answered by
`DataPlane` from in-memory requests, counted in the metrics and the prediction log."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest

import shipyard as sy
from shipyard.config import Settings
from shipyard.serving.answers import Answer, BytesRequest
from shipyard.serving.dataplane import DataPlane


@pytest.fixture
def db_url(tmp_path: Any) -> str:
    return f"sqlite:///{tmp_path / 'meta.db'}"


@pytest.fixture
def plane(settings: Settings, breast_cancer, logreg) -> Iterator[DataPlane]:  # type: ignore[no-untyped-def]
    from shipyard.registry import Registry
    from shipyard.serving.metrics import ServingMetrics
    from shipyard.serving.runtime import EndpointTable
    from shipyard.stores import open_stores

    X, _ = breast_cancer
    with sy.start_run(experiment="dataplane") as run:
        mv = run.log_model(logreg, name="churn", input_example=X[:5], onnx=True)
    sy.set_alias("churn", "champion", mv.version)
    metrics = ServingMetrics()
    table = EndpointTable(Registry(open_stores(settings)), metrics)
    table.load("churn", "models:/churn@champion")
    table.initial_load_done.set()
    plane = DataPlane.from_settings(settings, table, metrics)
    yield plane
    for log in (plane.predlog, plane.feedback_log):
        if log is not None:
            log.close()


def run(coro: Any) -> Answer:
    return asyncio.run(coro)  # type: ignore[no-any-return]


def doc(answer: Answer) -> Any:
    return json.loads(answer[1])


def header(answer: Answer, name: bytes) -> bytes | None:
    return dict(answer[2]).get(name)


def test_predict_answers_rows_with_the_servers_request_id(
    plane: DataPlane, breast_cancer, logreg
) -> None:  # type: ignore[no-untyped-def]
    X, _ = breast_cancer
    body = json.dumps({"instances": X.iloc[:3].to_dict(orient="records")}).encode()
    answer = run(plane.predict("churn", BytesRequest(body, {"X-Request-ID": "mine"})))
    status, _, _ = answer
    assert status == 200, answer[1]
    out = doc(answer)
    assert out["predictions"] == logreg.predict(X[:3]).tolist()
    assert out["model_version"] == 1 and out["request_id"] != "mine"
    assert header(answer, b"x-request-id") == b"mine"
    assert header(answer, b"content-type") == b"application/json"
    assert plane.predlog is not None and plane.predlog._rows == 3  # logged, not yet flushed


def test_infer_answers_v2_and_checks_a_version(plane: DataPlane, breast_cancer, logreg) -> None:  # type: ignore[no-untyped-def]
    X, _ = breast_cancer
    body = json.dumps(
        {"inputs": [{"name": "x", "shape": [2, 30], "datatype": "FP64",
                     "data": X.iloc[:2].to_numpy().ravel().tolist()}]}
    ).encode()  # fmt: skip
    answer = run(plane.infer("churn", BytesRequest(body)))
    assert answer[0] == 200 and doc(answer)["outputs"][0]["data"] == logreg.predict(X[:2]).tolist()
    assert run(plane.infer("churn", BytesRequest(body), version="1"))[0] == 200
    wrong = run(plane.infer("churn", BytesRequest(body), version="7"))
    assert wrong[0] == 404 and "not 7" in doc(wrong)["error"]


def test_bad_input_is_a_4xx_naming_the_problem(plane: DataPlane) -> None:
    unknown = run(plane.predict("nope", BytesRequest(b'{"instances": []}')))
    assert unknown[0] == 404 and doc(unknown)["type"] == "NotFoundError"
    bad_json = run(plane.predict("churn", BytesRequest(b"{")))
    assert bad_json[0] == 400 and doc(bad_json)["field"] == "body"
    too_big = run(plane.predict("churn", BytesRequest(b"x" * (plane.limit + 1))))
    assert too_big[0] == 413
    bad_id = run(plane.predict("churn", BytesRequest(b"{}", {"X-Request-ID": "a b"})))
    assert bad_id[0] == 400 and doc(bad_id)["field"] == "x-request-id"


def test_feedback_takes_labels_for_issued_ids_only(plane: DataPlane, breast_cancer) -> None:  # type: ignore[no-untyped-def]
    X, _ = breast_cancer
    body = json.dumps({"instances": X.iloc[:1].to_dict(orient="records")}).encode()
    request_id = doc(run(plane.predict("churn", BytesRequest(body))))["request_id"]
    label = json.dumps({"request_id": request_id, "label": 1}).encode()
    accepted = run(plane.feedback("churn", BytesRequest(label)))
    assert accepted[0] == 202 and doc(accepted) == {"accepted": 1}
    forged = json.dumps({"request_id": "f" * len(request_id), "label": 1}).encode()
    assert run(plane.feedback("churn", BytesRequest(forged)))[0] == 404  # not an id of ours


def test_feedback_keeps_labels_and_outcomes_apart(
    plane: DataPlane, settings: Settings, breast_cancer
) -> None:  # type: ignore[no-untyped-def]
    """A label feeds live accuracy, an outcome an A/B test: one body may carry both, and
    each lands in its own store (before, an outcome could only be sent as the label)."""
    from shipyard.stores.predictions import PredictionLogStore

    X, _ = breast_cancer
    body = json.dumps({"instances": X.iloc[:1].to_dict(orient="records")}).encode()
    ids = [doc(run(plane.predict("churn", BytesRequest(body))))["request_id"] for _ in range(3)]
    sent = [
        {"request_id": ids[0], "label": 1, "outcome": 12.5},
        {"request_id": ids[1], "label": 0},
        {"request_id": ids[2], "outcome": True},
    ]
    for item in sent:
        assert run(plane.feedback("churn", BytesRequest(json.dumps(item).encode())))[0] == 202
    bad = json.dumps({"request_id": ids[0], "outcome": "bought"}).encode()
    refused = run(plane.feedback("churn", BytesRequest(bad)))
    assert refused[0] == 400 and doc(refused)["field"] == "outcome"
    neither = run(
        plane.feedback("churn", BytesRequest(json.dumps({"request_id": ids[0]}).encode()))
    )
    assert neither[0] == 400 and doc(neither)["field"] == "label"
    assert plane.feedback_log is not None
    plane.feedback_log.flush()
    labels = PredictionLogStore(settings.labels_dir).read("churn").to_pandas()
    outcomes = PredictionLogStore(settings.outcomes_dir).read("churn").to_pandas()
    assert dict(zip(labels["_request_id"], labels["_label"], strict=True)) == {
        ids[0]: "1",
        ids[1]: "0",
    }
    assert dict(zip(outcomes["_request_id"], outcomes["_outcome"], strict=True)) == {
        ids[0]: 12.5,
        ids[2]: 1.0,
    }


def test_feedback_without_a_prediction_log_is_refused(plane: DataPlane) -> None:
    plane.feedback_log = None
    refused = run(plane.feedback("churn", BytesRequest(b'{"request_id": "x", "label": 1}')))
    assert refused[0] == 400 and "no prediction log" in doc(refused)["error"]


def test_readiness_and_model_metadata(plane: DataPlane) -> None:
    ready = plane.readiness()
    assert ready[0] == 200 and doc(ready)["endpoints"] == {"churn": "ready"}
    meta = plane.model_metadata("churn")
    assert doc(meta)["name"] == "churn" and doc(meta)["outputs"][0]["name"] == "predict"
    assert plane.model_ready("churn")[0] == 200 and plane.model_ready("nope")[0] == 404
    plane.table.draining.set()
    assert doc(plane.readiness())["draining"] is True
