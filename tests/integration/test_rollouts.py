"""Rollouts over real HTTP on SQLite and PostgreSQL: the controller promotes a good candidate,
rolls back a failing one within one analysis, A/B outcomes decide at a fixed horizon, shadows
cost the caller nothing, replicas agree on sticky assignment, and bad requests change nothing."""

from __future__ import annotations

import re
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest

import shipyard as sy
from shipyard.config import Settings
from shipyard.errors import AlreadyExistsError, ConflictError, InvalidArgumentError, NotFoundError
from shipyard.rollout import Controller, Deployments
from shipyard.server.app import create_server_app
from shipyard.serving.http import BackgroundServer
from tests.helpers import wait_for
from tests.integration._models import Broken, Constant, SlowConstant

FEATURES = 3


@pytest.fixture
def stores(settings: Settings) -> Any:  # type: ignore[override]
    from shipyard.stores import open_stores

    X = np.random.default_rng(0).normal(size=(50, FEATURES))
    with sy.start_run(experiment="rollouts") as run:
        # 1 stable, 2 a different model, 3 failing, 4 slow but agreeing, 5 agreeing
        for model in (Constant(0), Constant(1), Broken(), SlowConstant(0, 0.05), Constant(0)):
            run.log_model(model, name="m", input_example=X, serialization="pickle")
    sy.set_alias("m", "champion", 1)
    stores = open_stores(settings)
    stores.metadata.endpoints.create("m", "models:/m@champion", actor="t")
    return stores


def fast(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "predlog_flush_seconds": 0.05,
            "monitor_interval_seconds": 0.0,
            "rollout_interval_seconds": 0.0,
        }
    )


@pytest.fixture
def server(settings: Settings, stores: Any) -> Iterator[BackgroundServer]:
    app = create_server_app(fast(settings), refresh_seconds=0.1, trusted=True)
    with BackgroundServer(app) as srv:
        srv.wait_ready()
        yield srv


def body(key: str | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {"instances": [[0.1, 0.2, 0.3]]}
    if key is not None:
        doc["key"] = key
    return doc


def decided(controller: Controller, name: str = "m") -> Any:
    """Tick until the controller decides something other than hold (the prediction log is
    written every 50 ms, so evidence arrives a moment after the requests)."""
    return wait_for(lambda: (v := controller.tick(name)) is not None and v.action != "hold" and v)


def candidate_serves(srv: BackgroundServer, version: int, key: str | None = None) -> bool:
    return any(
        httpx.post(f"{srv.url}/endpoints/m/predict", json=body(key)).json().get("model_version")
        == version
        for _ in range(20)
    )


def test_a_good_canary_is_promoted_step_by_step(
    server: BackgroundServer, settings: Settings, stores: Any
) -> None:
    d = Deployments(stores)
    d.canary("m", "m/5", steps=[50, 100], min_requests=5, min_seconds=0, auto=True)
    wait_for(lambda: candidate_serves(server, 5))
    controller = Controller(fast(settings), stores)
    with httpx.Client(base_url=server.url) as client:
        for _ in range(40):
            assert client.post("/endpoints/m/predict", json=body()).status_code == 200
        first = decided(controller)
        assert first.action == "advance", first
        wait_for(lambda: stores.metadata.endpoints.get("m").config.get("weight") == 100)
        time.sleep(0.3)  # the server applies the new weight
        for _ in range(40):
            assert client.post("/endpoints/m/predict", json=body()).status_code == 200
        second = decided(controller)
    assert second.action == "promote", second
    assert stores.metadata.models.resolve_alias("m", "champion") == 5
    record = stores.metadata.endpoints.get("m")
    assert record.policy == "single" and record.config["last_rollout"]["outcome"] == "promoted"
    actions = [e.action for e in d.history("m") if e.action != "rollout.verdict"]
    assert actions[:3] == ["rollout.promote", "rollout.step", "rollout.canary"]
    step = next(e for e in d.history("m") if e.action == "rollout.step")
    assert step.after["evidence"]["variants"]["candidate"]["requests"] >= 5
    wait_for(
        lambda: (
            httpx.post(f"{server.url}/endpoints/m/predict", json=body()).json()["model_version"]
            == 5
        )
    )


def test_a_caller_cannot_roll_a_good_canary_back_with_bad_requests(
    server: BackgroundServer, settings: Settings, stores: Any
) -> None:
    """Bad input sent to the candidate (its routing key chosen to reach it) is the caller's
    fault: a 4xx, not counted against the model, so the canary advances."""
    d = Deployments(stores)
    d.canary("m", "m/5", steps=[50, 100], min_requests=5, min_seconds=0, auto=True)
    wait_for(lambda: candidate_serves(server, 5))
    key = next(k for k in (f"k{i}" for i in range(200)) if candidate_serves(server, 5, k))
    bad = {
        "inputs": [{"name": "x", "shape": [True, FEATURES], "datatype": "FP64", "data": [0] * 3}],
        "parameters": {"key": key},
    }
    with httpx.Client(base_url=server.url) as client:
        for _ in range(30):
            assert client.post("/v2/models/m/infer", json=bad).status_code == 400
        for _ in range(40):
            assert client.post("/endpoints/m/predict", json=body()).status_code == 200
        verdict = decided(Controller(fast(settings), stores))
    assert verdict.action == "advance", verdict
    assert verdict.evidence["variants"]["candidate"]["errors"] == 0


def test_a_failing_canary_is_rolled_back_in_one_analysis(
    server: BackgroundServer, settings: Settings, stores: Any
) -> None:
    Deployments(stores).canary(
        "m", "m/3", steps=[30, 100], min_requests=50, min_seconds=60, auto=True
    )
    wait_for(
        lambda: any(
            httpx.post(f"{server.url}/endpoints/m/predict", json=body()).status_code == 500
            for _ in range(20)
        )
    )
    codes: dict[int, list[int]] = {1: [], 3: []}
    with httpx.Client(base_url=server.url) as client:
        for _ in range(60):
            r = client.post("/endpoints/m/predict", json=body())
            codes[int(r.headers.get("x-model-version") or 3)].append(r.status_code)
    assert set(codes[1]) == {200}  # callers of stable never fail
    assert codes[3] and set(codes[3]) == {500}  # only what the candidate itself produced
    verdict = decided(Controller(fast(settings), stores))
    assert verdict.action == "rollback"
    # before the step's minimums: a candidate failing outright is rolled back at once
    assert "error rate" in verdict.reason
    record = stores.metadata.endpoints.get("m")
    assert record.policy == "single" and "error rate" in record.config["last_rollout"]["reason"]
    assert stores.metadata.models.resolve_alias("m", "champion") == 1  # alias untouched
    wait_for(
        lambda: all(
            httpx.post(f"{server.url}/endpoints/m/predict", json=body()).status_code == 200
            for _ in range(20)
        )
    )


def test_ab_outcomes_decide_at_a_fixed_horizon(
    server: BackgroundServer, settings: Settings, stores: Any
) -> None:
    """Outcomes sent as the `label` of /feedback, as before outcomes had their own field: a
    test started with outcome_source="label" reads them there."""
    Deployments(stores).ab("m", "m/2", split=50, min_samples=60, auto=True, outcome_source="label")
    wait_for(
        lambda: any(
            httpx.post(f"{server.url}/endpoints/m/predict", json=body(f"k{i}"))
            .json()
            .get("model_version")
            == 2
            for i in range(40)
        )
    )
    controller = Controller(fast(settings), stores)
    rng = np.random.default_rng(0)
    with httpx.Client(base_url=server.url) as client:
        assert client.post("/endpoints/m/predict", json=body()).status_code == 400  # no key
        for i in range(300):
            r = client.post("/endpoints/m/predict", json=body(f"user-{i}")).json()
            rate = 0.6 if r["model_version"] == 2 else 0.2  # the candidate converts better
            client.post(
                "/endpoints/m/feedback",
                json={"request_id": r["request_id"], "label": int(rng.random() < rate)},
            )
            if i == 20:
                time.sleep(0.3)
                early = controller.tick("m")
                assert early is not None and early.action == "hold"  # no peeking
                assert "fixed horizon" in early.reason
    verdict = decided(controller)
    assert verdict.action == "promote", verdict
    assert verdict.evidence["ab_test"]["test"] == "two_proportion_z"
    assert stores.metadata.models.resolve_alias("m", "champion") == 2


def replica(endpoint: str) -> tuple[subprocess.Popen[str], str]:
    """A `shipyard serve --endpoint` process (same metadata store, from the environment)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "shipyard.cli.main",
            "serve",
            "--endpoint",
            endpoint,
            "--port",
            str(port),
            "--trusted",
            "--refresh",
            "0.2",
            "--log-level",
            "warning",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: proc.poll() is None and _ready(url), timeout=60)
    except AssertionError:
        proc.kill()
        raise AssertionError(proc.communicate()[1][-2000:]) from None
    return proc, url


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health/ready").status_code == 200
    except httpx.HTTPError:
        return False


def test_ab_assignment_is_sticky_across_replica_processes(settings: Settings, stores: Any) -> None:
    Deployments(stores).ab("m", "m/2", split=50, min_samples=1000)
    procs = [replica("m"), replica("m")]
    try:
        (_, a), (_, b) = procs
        for url in (a, b):
            wait_for(
                lambda url=url: any(
                    httpx.post(f"{url}/endpoints/m/predict", json=body(f"probe-{i}"))
                    .json()
                    .get("model_version")
                    == 2
                    for i in range(20)
                )
            )
        seen = {}
        for i in range(60):
            va = httpx.post(f"{a}/endpoints/m/predict", json=body(f"user-{i}")).json()
            vb = httpx.post(f"{b}/endpoints/m/predict", json=body(f"user-{i}")).json()
            assert va["model_version"] == vb["model_version"]
            seen[i] = va["model_version"]
        assert set(seen.values()) == {1, 2}
        assert httpx.get(f"{a}/api/models").status_code == 404  # a replica has no control plane
    finally:
        for proc, _ in procs:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)


def test_shadow_costs_the_caller_nothing(
    server: BackgroundServer, settings: Settings, stores: Any
) -> None:
    def p50(client: httpx.Client) -> float:
        times = []
        for _ in range(60):
            start = time.perf_counter()
            r = client.post("/endpoints/m/predict", json=body())
            times.append(time.perf_counter() - start)
            assert r.json()["model_version"] == 1  # the caller only ever gets stable
        return statistics.median(times)

    with httpx.Client(base_url=server.url) as client:
        without = p50(client)
        Deployments(stores).shadow("m", "m/4", min_requests=50)  # the shadow sleeps 50 ms
        table = server.app.dataplane.table
        wait_for(lambda: (c := table.candidate("m")) is not None and c.ready)
        time.sleep(0.3)  # and applies the shadow policy
        with_shadow = p50(client)
    assert with_shadow < without + 0.02, (without, with_shadow)
    verdict = decided(Controller(fast(settings), stores))
    shadow = verdict.evidence["variants"]["shadow"]
    assert shadow["requests"] >= 50 and shadow["p50_ms"] >= 50
    assert verdict.evidence["agreement"] == 1.0  # versions 1 and 4 both predict 0
    assert verdict.action == "rollback" and "latency" in verdict.reason  # 50 ms vs ~1 ms


def test_a_rollback_under_load_loses_no_request(server: BackgroundServer, stores: Any) -> None:
    d = Deployments(stores)
    d.canary("m", "m/2", steps=[50, 100])
    wait_for(lambda: candidate_serves(server, 2))
    results: list[int] = []
    stop = threading.Event()

    def hammer() -> None:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            while not stop.is_set():
                results.append(client.post("/endpoints/m/predict", json=body()).status_code)

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.3)
        d.rollback("m", reason="manual")
        time.sleep(0.6)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert len(results) > 30 and set(results) == {200}


def test_bad_rollout_requests_change_nothing(stores: Any) -> None:
    d = Deployments(stores)
    before = stores.metadata.endpoints.get("m")
    for call, error, words in [
        (lambda: d.canary("m", "m/2", steps=[0, 100]), InvalidArgumentError, "(0, 100]"),
        (lambda: d.canary("m", "m/2", steps=[5, 150]), InvalidArgumentError, "(0, 100]"),
        (lambda: d.canary("m", "m/2", steps=[50, 25, 100]), InvalidArgumentError, "increase"),
        (lambda: d.canary("m", "m/9"), NotFoundError, "no version 9"),
        (lambda: d.canary("m", "m/1"), InvalidArgumentError, "already serves"),
        (lambda: d.ab("m", "m/2", split=100), InvalidArgumentError, "split"),
        (lambda: d.promote("m"), ConflictError, "no rollout in progress"),
        (lambda: d.rollback("m"), ConflictError, "no rollout in progress"),
        (lambda: d.canary("mm", "m/2"), NotFoundError, "did you mean 'm'"),
        (lambda: d.canary("m", "m/2", thresholds={"speed": 1}), InvalidArgumentError, "unknown"),
    ]:
        with pytest.raises(error, match=re.escape(words)):
            call()
    assert stores.metadata.endpoints.get("m") == before
    d.canary("m", "m/2")
    with pytest.raises(AlreadyExistsError, match="already runs a canary"):
        d.shadow("m", "m/3")
    assert stores.metadata.endpoints.get("m").config["candidate_version"] == 2


def test_bluegreen_switches_at_once_keeps_blue_then_promotes(
    server: BackgroundServer, settings: Settings, stores: Any
) -> None:
    d = Deployments(stores)
    d.bluegreen("m", "m/5", keep_seconds=3.0, auto=True)
    table = server.app.dataplane.table
    wait_for(lambda: (c := table.candidate("m")) is not None and c.ready)
    controller = Controller(fast(settings), stores)
    assert controller.tick("m").action == "switch"  # type: ignore[union-attr]
    hold = controller.tick("m")  # right after the switch: blue is kept for keep_seconds
    assert hold is not None and hold.action == "hold" and "released" in hold.reason
    switched = time.monotonic()
    wait_for(
        lambda: all(
            httpx.post(f"{server.url}/endpoints/m/predict", json=body()).json()["model_version"]
            == 5
            for _ in range(10)
        )
    )
    assert table.get("m").version == "1"  # blue is still loaded: a rollback would be instant
    time.sleep(max(0.0, 3.1 - (time.monotonic() - switched)))
    assert decided(controller).action == "promote"
    assert stores.metadata.models.resolve_alias("m", "champion") == 5
    wait_for(lambda: table.candidate("m") is None and table.get("m").version == "5")


@pytest.mark.slow
def test_ten_thousand_requests_split_ten_percent_over_http(
    server: BackgroundServer, stores: Any
) -> None:
    import math

    Deployments(stores).canary("m", "m/2", steps=[10, 100])
    wait_for(lambda: candidate_serves(server, 2))
    n, hits = 10_000, 0
    with httpx.Client(base_url=server.url) as client:
        for i in range(n):
            r = client.post("/endpoints/m/predict", json=body(f"user-{i}"))
            hits += r.headers["x-model-version"] == "2"
    bound = 4 * math.sqrt(n * 0.1 * 0.9)  # four binomial standard deviations
    assert abs(hits - 1000) <= bound, hits


def test_a_candidate_of_another_model_is_refused(
    stores: Any, breast_cancer: Any, logreg: Any
) -> None:
    """Promotion moves the endpoint's model's alias to the candidate's version number: a
    version of another model would move it to an unrelated version of this one."""
    X, _ = breast_cancer
    registry = sy.Registry(stores)
    registry.register("iris", logreg, input_example=X[:5], onnx=False)
    registry.register("iris", logreg, input_example=X[:5], onnx=False)
    registry.register("wine", logreg, input_example=X[:5], onnx=False)
    registry.set_alias("iris", "champion", 2)
    Deployments(stores).create("iris", "iris@champion")
    before = stores.metadata.endpoints.get("iris")
    with pytest.raises(InvalidArgumentError, match="belongs to another model") as info:
        Deployments(stores).canary("iris", "wine/1")
    assert info.value.details["field"] == "model"
    assert stores.metadata.endpoints.get("iris") == before
