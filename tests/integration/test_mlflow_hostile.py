"""MLflow's REST API on `shipyard server` against a hostile (or careless) client, over real
HTTP: artifact paths that try to leave their owner, files of registered versions, model
directories whose MLmodel points outside the directory or is a YAML bomb, pickles that must
never be loaded untrusted, the scopes of the registry's admin routes, malformed bodies."""

from __future__ import annotations

import json
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from shipyard.config import Settings
from shipyard.server.app import create_server_app
from shipyard.serving.http import BackgroundServer

API = "/api/2.0/mlflow/"
ARTIFACTS = "/api/2.0/mlflow-artifacts/artifacts/"


@pytest.fixture
def server(settings: Settings) -> Iterator[BackgroundServer]:
    with BackgroundServer(create_server_app(settings, refresh_seconds=1.0)) as srv:
        srv.wait_ready()
        yield srv


@pytest.fixture
def http(server: BackgroundServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=60) as c:
        yield c


def _ok(answer: httpx.Response) -> dict[str, Any]:
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


def _refused(answer: httpx.Response, *statuses: int) -> dict[str, Any]:
    assert answer.status_code in (statuses or (400, 404)), answer.text
    body = answer.json()
    assert {"error_code", "message"} <= set(body), body
    return body  # type: ignore[no-any-return]


def _run(http: httpx.Client, experiment: str = "hostile") -> tuple[str, str]:
    found = http.get(API + "experiments/get-by-name", params={"experiment_name": experiment})
    if found.status_code == 200:
        exp_id = found.json()["experiment"]["experiment_id"]
    else:
        exp_id = _ok(http.post(API + "experiments/create", json={"name": experiment}))[
            "experiment_id"
        ]
    run = _ok(http.post(API + "runs/create", json={"experiment_id": exp_id}))
    return exp_id, run["run"]["info"]["run_id"]


def _put(http: httpx.Client, exp_id: str, run_id: str, path: str, data: bytes) -> httpx.Response:
    return http.put(f"{ARTIFACTS}{exp_id}/{run_id}/artifacts/{path}", content=data)


def _files(http: httpx.Client, exp_id: str, run_id: str) -> list[str]:
    run = _ok(http.get(API + "runs/get", params={"run_id": run_id}))
    del run
    listing = _ok(http.get(ARTIFACTS.rstrip("/"), params={"path": f"{exp_id}/{run_id}/artifacts"}))
    return sorted(f["path"] for f in listing.get("files", []))


def _mlmodel(flavors: dict[str, Any], **extra: Any) -> bytes:
    import yaml

    return yaml.safe_dump({"artifact_path": "model", "flavors": flavors, **extra}).encode()


def _register(http: httpx.Client, name: str, run_id: str, path: str = "model") -> httpx.Response:
    return http.post(
        API + "model-versions/create",
        json={"name": name, "source": f"runs:/{run_id}/{path}", "run_id": run_id},
    )


# -- artifact paths ------------------------------------------------------------------------------

TRAVERSALS = [
    "../escape.txt",
    "a/../../escape.txt",
    "%2e%2e/escape.txt",
    "a/%2e%2e/%2e%2e/escape.txt",
    "%2E%2E%2Fescape.txt",
    "..%2fescape.txt",
    "..%5cescape.txt",
    "a%5c..%5c..%5cescape.txt",
    "a%00b.txt",
    "a%0ab.txt",
    "x" * 5000,
]


def test_upload_paths_that_leave_the_run_are_refused(
    http: httpx.Client, settings: Settings
) -> None:
    exp_id, run_id = _run(http)
    for path in TRAVERSALS:
        answer = _put(http, exp_id, run_id, path, b"payload")
        assert answer.status_code in (400, 404), (path, answer.status_code, answer.text)
    # an absolute path in the URL is just "//…": refused or kept under the run, never outside
    answer = http.put(f"{ARTIFACTS}{exp_id}/{run_id}/artifacts//etc/passwd", content=b"x")
    assert answer.status_code in (200, 400, 404)
    assert not (settings.home / "escape.txt").exists()
    for path in _files(http, exp_id, run_id):
        assert ".." not in path and "\\" not in path and "\x00" not in path


def test_downloads_and_listings_stay_inside_their_owner(http: httpx.Client) -> None:
    exp_id, run_id = _run(http)
    _, other = _run(http)
    assert _ok(_put(http, exp_id, other, "secret.txt", b"other run's")) == {}
    for path in (f"../{other}/artifacts/secret.txt", "%2e%2e/%2e%2e/etc/passwd", "..%2fsecret.txt"):
        answer = http.get(f"{ARTIFACTS}{exp_id}/{run_id}/artifacts/{path}")
        assert answer.status_code in (400, 404), (path, answer.text)
        assert b"other run's" not in answer.content
    listing = http.get(
        ARTIFACTS.rstrip("/"), params={"path": f"{exp_id}/{run_id}/artifacts/../../{other}"}
    )
    assert listing.status_code in (400, 404) or "files" not in listing.json(), listing.text


def test_zero_byte_files_directory_deletes_and_the_run_root(http: httpx.Client) -> None:
    exp_id, run_id = _run(http)
    assert _ok(_put(http, exp_id, run_id, "empty.bin", b"")) == {}
    got = http.get(f"{ARTIFACTS}{exp_id}/{run_id}/artifacts/empty.bin")
    assert got.status_code == 200 and got.content == b""
    for name in ("d/a.txt", "d/b.txt", "d/e/c.txt", "dd.txt"):
        _ok(_put(http, exp_id, run_id, name, name.encode()))
    assert _ok(http.delete(f"{ARTIFACTS}{exp_id}/{run_id}/artifacts/d")) == {}
    assert _files(http, exp_id, run_id) == ["dd.txt", "empty.bin"]
    # the run's root: refused (a careless DELETE must not wipe every file), files stay
    root = http.delete(f"{ARTIFACTS}{exp_id}/{run_id}/artifacts")
    assert root.status_code in (400, 404), root.text
    root = http.delete(f"{ARTIFACTS}{exp_id}/{run_id}/artifacts/")
    assert root.status_code in (400, 404), root.text
    assert _files(http, exp_id, run_id) == ["dd.txt", "empty.bin"]


def test_uploads_to_deleted_runs_and_models_are_refused(http: httpx.Client) -> None:
    exp_id, run_id = _run(http)
    _ok(http.post(API + "runs/delete", json={"run_id": run_id}))
    _refused(_put(http, exp_id, run_id, "late.txt", b"x"), 400, 404)
    model = _ok(http.post(API + "logged-models", json={"experiment_id": exp_id}))["model"]
    model_id = model["info"]["model_id"]
    _ok(http.delete(API + f"logged-models/{model_id}"))
    late = http.put(f"{ARTIFACTS}{exp_id}/models/{model_id}/artifacts/MLmodel", content=b"x")
    _refused(late, 400, 404)


def test_a_registered_versions_files_are_read_only(http: httpx.Client) -> None:
    exp_id, run_id = _run(http)
    _ok(_put(http, exp_id, run_id, "model/MLmodel", _mlmodel({"custom": {"x": 1}})))
    _ok(_put(http, exp_id, run_id, "model/weights.bin", b"w" * 10))
    mv = _ok(_register(http, "readonly", run_id))["model_version"]
    base = f"{ARTIFACTS}registry/readonly/{mv['version']}"
    assert http.get(f"{base}/weights.bin").content == b"w" * 10
    _refused(http.put(f"{base}/weights.bin", content=b"evil"), 400, 403, 404)
    _refused(http.put(f"{base}/new.bin", content=b"evil"), 400, 403, 404)
    _refused(http.delete(f"{base}/weights.bin"), 400, 403, 404)
    _refused(http.delete(base), 400, 403, 404)
    # changing the run's files afterwards does not change the version
    _ok(_put(http, exp_id, run_id, "model/weights.bin", b"changed"))
    assert http.get(f"{base}/weights.bin").content == b"w" * 10


def test_concurrent_uploads_of_one_path_leave_one_whole_file(http: httpx.Client) -> None:
    from concurrent.futures import ThreadPoolExecutor

    exp_id, run_id = _run(http)
    bodies = [bytes([i]) * (300_000 + i) for i in range(8)]

    def upload(body: bytes) -> int:
        with httpx.Client(base_url=str(http.base_url), timeout=60) as c:
            return _put(c, exp_id, run_id, "same.bin", body).status_code

    with ThreadPoolExecutor(8) as pool:
        assert set(pool.map(upload, bodies)) == {200}
    got = http.get(f"{ARTIFACTS}{exp_id}/{run_id}/artifacts/same.bin").content
    assert got in bodies
    assert _files(http, exp_id, run_id) == ["same.bin"]


# -- registering model directories ---------------------------------------------------------------


def _sklearn_skops(path: Path) -> None:
    import numpy as np
    import skops.io as sio
    from sklearn.linear_model import LogisticRegression

    X = np.random.default_rng(0).normal(size=(40, 3))
    sio.dump(LogisticRegression().fit(X, X[:, 0] > 0), path)


SKLEARN_SIGNATURE = {
    "inputs": json.dumps([{"type": "double", "name": n} for n in ("a", "b", "c")]),
    "outputs": None,
}


def test_mlmodel_paths_outside_the_directory_are_not_read(
    http: httpx.Client, settings: Settings, tmp_path: Path
) -> None:
    """An MLmodel naming /etc/passwd or ../ as its model file or input example: the server
    never reads (nor stores, nor hands back) a file outside the model directory."""
    secret = tmp_path / "secret.json"
    secret.write_text(json.dumps({"columns": ["leak"], "data": [["TOPSECRET"]]}))
    exp_id, run_id = _run(http)
    mlmodel = _mlmodel(
        {"sklearn": {"pickled_model": str(secret), "serialization_format": "cloudpickle"}},
        saved_input_example_info={"artifact_path": str(secret), "type": "dataframe"},
        signature=SKLEARN_SIGNATURE,
    )
    _ok(_put(http, exp_id, run_id, "model/MLmodel", mlmodel))
    answer = _register(http, "leaky", run_id)
    if answer.status_code == 200:
        version = answer.json()["model_version"]["version"]
        from shipyard.flavors import read_manifest
        from shipyard.registry import Registry
        from shipyard.stores import open_stores

        stores = open_stores(settings)
        mv = Registry(stores).get_version("leaky", int(version))
        manifest = read_manifest(stores.artifacts, mv.artifact_digest)
        assert "TOPSECRET" not in json.dumps(manifest)
        for digest in manifest["files"].values():
            assert b"TOPSECRET" not in stores.artifacts.get_bytes(digest)
    else:
        _refused(answer, 400)


def test_a_yaml_bomb_mlmodel_is_refused_quickly(http: httpx.Client) -> None:
    import time

    bomb = ["a: &a ['x','x','x','x','x','x','x','x','x']"]
    for i in range(1, 10):
        prev = chr(ord("a") + i - 1)
        this = chr(ord("a") + i)
        bomb.append(f"{this}: &{this} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]")
    text = "\n".join(bomb) + "\nflavors: {custom: {}}\nmodel_id: *j\nrun_id: *j\n"
    exp_id, run_id = _run(http)
    _ok(_put(http, exp_id, run_id, "model/MLmodel", text.encode()))
    started = time.monotonic()
    answer = _register(http, "bomb", run_id)
    assert time.monotonic() - started < 20
    assert answer.status_code in (200, 400), answer.text


def test_python_tags_in_mlmodel_are_not_constructed(http: httpx.Client, tmp_path: Path) -> None:
    marker = tmp_path / "yaml-ran"
    text = f"flavors: {{custom: {{}}}}\nx: !!python/object/apply:os.system ['touch {marker}']\n"
    exp_id, run_id = _run(http)
    _ok(_put(http, exp_id, run_id, "model/MLmodel", text.encode()))
    _refused(_register(http, "yamlexec", run_id), 400)
    assert not marker.exists()


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> Any:
        return (exec, (f"open({str(self.marker)!r}, 'w').write('pwned')",))


def test_a_malicious_pickle_is_never_loaded_untrusted(
    http: httpx.Client, settings: Settings, tmp_path: Path
) -> None:
    marker = tmp_path / "pickle-ran"
    exp_id, run_id = _run(http)
    flavors = {
        "sklearn": {"pickled_model": "model.pkl", "serialization_format": "cloudpickle"},
        "python_function": {"loader_module": "mlflow.sklearn", "model_path": "model.pkl"},
    }
    _ok(_put(http, exp_id, run_id, "model/MLmodel", _mlmodel(flavors, signature=SKLEARN_SIGNATURE)))
    _ok(_put(http, exp_id, run_id, "model/model.pkl", pickle.dumps(_Evil(marker))))
    mv = _ok(_register(http, "evil", run_id))["model_version"]
    assert not marker.exists(), "registering unpickled the model"
    # serving it (without trust) refuses; shipyard's loader does not unpickle either
    import shipyard
    from shipyard.errors import ShipyardError

    with pytest.raises(ShipyardError):
        shipyard.load_model(f"models:/evil/{mv['version']}")
    assert not marker.exists(), "loading without trust unpickled the model"
    # a pickle disguised as a skops file
    flavors["sklearn"]["serialization_format"] = "skops"
    _ok(_put(http, exp_id, run_id, "model/MLmodel", _mlmodel(flavors, signature=SKLEARN_SIGNATURE)))
    answer = _register(http, "evil", run_id)
    assert answer.status_code in (200, 400), answer.text
    assert not marker.exists()


def test_a_skops_file_with_unreviewed_types_is_not_loaded(
    http: httpx.Client, tmp_path: Path
) -> None:
    import os

    import skops.io as sio
    from sklearn.preprocessing import FunctionTransformer

    path = tmp_path / "model.skops"
    sio.dump(FunctionTransformer(func=os.system), path)
    exp_id, run_id = _run(http)
    flavors = {"sklearn": {"pickled_model": "model.skops", "serialization_format": "skops"}}
    _ok(_put(http, exp_id, run_id, "model/MLmodel", _mlmodel(flavors, signature=SKLEARN_SIGNATURE)))
    _ok(_put(http, exp_id, run_id, "model/model.skops", path.read_bytes()))
    answer = _register(http, "unreviewed", run_id)
    if answer.status_code != 200:  # refused, or kept as it came (loads only trusted)
        body = _refused(answer, 400)
        assert "system" in body["message"] or "review" in body["message"], body
        return
    import shipyard
    from shipyard.errors import UntrustedModelError

    version = answer.json()["model_version"]["version"]
    with pytest.raises(UntrustedModelError):
        shipyard.load_model(f"models:/unreviewed/{version}")


@pytest.mark.parametrize(
    "source",
    [
        "file:///etc/passwd",
        "/etc/passwd",
        "s3://bucket/model",
        "models:/m-" + "0" * 32,
        "models:/other@champion",
        "runs:/" + "f" * 32 + "/model",
        "runs:/../../etc",
        "mlflow-artifacts:/registry/x/1",
        "mlflow-artifacts://evil.example.com/0/" + "f" * 32 + "/artifacts/model",
        "mlflow-artifacts:/0/../../../etc/artifacts/passwd",
        "http://169.254.169.254/latest/meta-data",
    ],
)
def test_version_sources_the_server_does_not_store_are_refused(
    http: httpx.Client, source: str
) -> None:
    answer = http.post(API + "model-versions/create", json={"name": "src", "source": source})
    _refused(answer, 400, 404)


def test_a_source_path_that_is_a_file_and_a_directory(http: httpx.Client) -> None:
    """A careless client uploads `model/x` as a file, then `model/x/y`: registering it answers
    an MLflow error, not a 500."""
    exp_id, run_id = _run(http)
    _ok(_put(http, exp_id, run_id, "model/MLmodel", _mlmodel({"custom": {}})))
    _ok(_put(http, exp_id, run_id, "model/x", b"file"))
    second = _put(http, exp_id, run_id, "model/x/y", b"file under a file")
    if second.status_code == 200:
        answer = _register(http, "clash", run_id)
        assert answer.status_code in (200, 400), answer.text


# -- malformed requests --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("route", "body"),
    [
        ("runs/create", b"{"),
        ("runs/create", b"[]"),
        ("runs/create", b'"x"'),
        ("runs/create", b"\xff\xfe"),
        ("runs/create", b'{"experiment_id": {"a": 1}}'),
        ("runs/create", b'{"experiment_id": [1, 2]}'),
        ("runs/create", b'{"experiment_id": 1e400}'),
        ("runs/create", b'{"experiment_id": 99999999999999999999999}'),
        ("runs/log-metric", b'{"run_id": 5, "key": [], "value": "x", "timestamp": "t"}'),
        ("runs/log-batch", b'{"run_id": "x", "metrics": {"a": 1}}'),
        ("runs/log-batch", b'{"run_id": "x", "metrics": [1, 2]}'),
        ("runs/log-batch", b'{"run_id": "x", "params": [{"key": null}]}'),
        ("runs/search", b'{"max_results": -1}'),
        ("runs/search", b'{"max_results": 1e18}'),
        ("runs/search", b'{"max_results": "lots"}'),
        ("runs/search", b'{"page_token": "W10="}'),
        ("runs/search", b'{"page_token": "eyJvZmZzZXQiOiAtMX0="}'),
        ("runs/search", b'{"page_token": "\\u0000"}'),
        ("runs/search", b'{"order_by": {"a": 1}}'),
        ("runs/search", b'{"experiment_ids": "0", "filter": 5}'),
        ("experiments/search", b'{"max_results": 100000000}'),
        ("runs/search", b'{"filter": "params.`a\' OR 1=1 --` = \'x\'"}'),
        ("runs/search", b'{"filter": "tags."x\\" OR 1=1" = \'x\'"}'),
        ("runs/search", b'{"order_by": ["metrics.`x; DROP TABLE runs` DESC"]}'),
        ("runs/search", b'{"order_by": ["attributes.start_time; DROP TABLE runs"]}'),
        ("runs/search", b'{"filter": "metrics.x > 1e999999"}'),
        ("runs/search", b'{"filter": "' + b"(" * 5000 + b'"}'),
        ("runs/search", b'{"filter": "' + b"metrics.a > 1 AND " * 2000 + b'metrics.a > 1"}'),
        ("experiments/search", b'{"page_token": "eyJvZmZzZXQiOiB0cnVlfQ=="}'),
        ("registered-models/create", b'{"name": "../../etc"}'),
        ("registered-models/create", b'{"name": "a\\u0000b"}'),
        ("registered-models/create", b'{"name": "ok", "tags": {"k": "v"}}'),
        ("model-versions/create", b'{"name": "x", "source": ["a"]}'),
        ("logged-models", b'{"experiment_id": "0", "tags": [{"key": 1}]}'),
        ("logged-models/search", b'{"order_by": [5]}'),
        ("logged-models/search", b'{"max_results": 0.5}'),
    ],
)
def test_malformed_bodies_answer_400_not_500(http: httpx.Client, route: str, body: bytes) -> None:
    answer = http.post(API + route, content=body, headers={"content-type": "application/json"})
    assert answer.status_code < 500, answer.text
    if answer.status_code >= 400:
        _refused(answer, answer.status_code)


@pytest.mark.parametrize(
    "params",
    [
        {"max_results": "1000000000"},
        {"max_results": "-5"},
        {"page_token": "!!!"},
        {"page_token": "e30="},
        {"filter": "name = 'a' AND"},
        {"filter": "tags.`x = 'a'"},
        {"filter": "name LIKE '" + "%" * 5000 + "a'"},
    ],
)
def test_registry_search_paging_and_filters(http: httpx.Client, params: dict[str, str]) -> None:
    for route in ("registered-models/search", "model-versions/search"):
        answer = http.get(API + route, params=params)
        assert answer.status_code in (200, 400), answer.text


def test_a_like_filter_does_not_blow_up(http: httpx.Client) -> None:
    """A LIKE pattern of many '%' against a long name: answered in time (no catastrophic
    regex backtracking)."""
    import time

    _ok(http.post(API + "registered-models/create", json={"name": "a" * 200}))
    exp_id = _ok(http.post(API + "experiments/create", json={"name": "a" * 200}))
    _ok(http.post(API + "logged-models", json={**exp_id, "name": "a" * 200}))
    pattern = "'" + "%a" * 40 + "b'"
    started = time.monotonic()
    for route, body in (
        ("registered-models/search", {"filter": f"name LIKE {pattern}"}),
        ("model-versions/search", {"filter": f"name ILIKE {pattern}"}),
        ("experiments/search", {"filter": f"name LIKE {pattern}"}),
        (
            "logged-models/search",
            {"experiment_ids": [exp_id["experiment_id"]], "filter": f"name LIKE {pattern}"},
        ),
    ):
        if route.startswith(("registered", "model-versions")):
            answer = http.get(API + route, params=body)
        else:
            answer = http.post(API + route, json=body)
        assert answer.status_code in (200, 400), answer.text
    assert time.monotonic() - started < 5


# -- scopes --------------------------------------------------------------------------------------


def _keyed_server(settings: Settings) -> tuple[Settings, dict[str, str]]:
    from shipyard.access import ApiKeys
    from shipyard.stores import open_stores

    settings = settings.model_copy(update={"auth_required": True, "auth_cache_seconds": 0})
    keys = ApiKeys(open_stores(settings))
    made = {s: keys.create(s, scopes=[s])[1] for s in ("read", "track", "admin")}
    return settings, made


def test_alias_moves_deletes_and_stages_need_admin(settings: Settings) -> None:
    """With only "read" or "track": no alias set or delete, no model or version delete, no
    stage change, however the path is spelled ("//", a trailing "/", the ajax prefix) and
    not through the stage's tag either."""
    settings, keys = _keyed_server(settings)
    with BackgroundServer(create_server_app(settings, refresh_seconds=1.0)) as srv:
        srv.wait_ready()
        track = httpx.Client(
            base_url=srv.url, timeout=60, headers={"authorization": f"Bearer {keys['track']}"}
        )
        admin = httpx.Client(
            base_url=srv.url, timeout=60, headers={"authorization": f"Bearer {keys['admin']}"}
        )
        exp_id, run_id = _run(track)
        _ok(_put(track, exp_id, run_id, "model/MLmodel", _mlmodel({"custom": {}})))
        _ok(_register(track, "guarded", run_id))
        _ok(_register(track, "guarded", run_id))
        _ok(
            admin.post(
                API + "registered-models/alias",
                json={"name": "guarded", "alias": "champion", "version": "1"},
            )
        )
        alias = {"name": "guarded", "alias": "champion", "version": "2"}
        version = {"name": "guarded", "version": "1"}
        stage = {**version, "stage": "Production"}
        renamed = {"name": "guarded", "new_name": "taken"}
        attempts = []
        for prefix in ("/api/2.0/mlflow/", "/ajax-api/2.0/mlflow/", "/api/2.0/mlflow//"):
            for suffix in ("", "/"):
                attempts += [
                    ("POST", prefix + "registered-models/alias" + suffix, alias),
                    ("DELETE", prefix + "registered-models/alias" + suffix, alias),
                    ("DELETE", prefix + "registered-models/delete" + suffix, {"name": "guarded"}),
                    ("DELETE", prefix + "model-versions/delete" + suffix, version),
                    ("POST", prefix + "model-versions/transition-stage" + suffix, stage),
                    ("POST", prefix + "registered-models/rename" + suffix, renamed),
                ]
        for token in (None, keys["read"], keys["track"]):
            headers = {"authorization": f"Bearer {token}"} if token else {}
            for method, path, body in attempts:
                answer = httpx.request(
                    method, srv.url + path, json=body, headers=headers, timeout=60
                )
                assert answer.status_code in (401, 403, 404), (token, method, path, answer.text)
        for key in ("mlflow.current_stage", "MLflow.Current_Stage"):
            tagged = track.post(
                API + "model-versions/set-tag",
                json={**version, "key": key, "value": "Production"},
            )
            assert tagged.status_code in (400, 403), tagged.text
        got = _ok(admin.get(API + "model-versions/get", params=version))["model_version"]
        assert got["current_stage"] == "None" and got["aliases"] == ["champion"]
        model = _ok(admin.get(API + "registered-models/get", params={"name": "guarded"}))
        assert model["registered_model"]["aliases"] == [{"alias": "champion", "version": "1"}]


@pytest.mark.parametrize(
    "key",
    [
        "mlflow.current_stage",
        "mlflow.source",
        "mlflow.model_id",
        "approval_reviewer",
        "reference_profile",
        "optimize_parent",
    ],
)
def test_a_new_versions_tags_cannot_forge_what_the_server_keeps(
    http: httpx.Client, key: str
) -> None:
    """model-versions/create's tags: no stage (that needs "admin"), no forged source, and none
    of shipyard's own (approval, monitoring reference, optimize)."""
    exp_id, run_id = _run(http)
    _ok(_put(http, exp_id, run_id, "model/MLmodel", _mlmodel({"custom": {}})))
    answer = http.post(
        API + "model-versions/create",
        json={
            "name": "forged",
            "source": f"runs:/{run_id}/model",
            "tags": [{"key": key, "value": "Production"}],
        },
    )
    _refused(answer, 400)


# -- a server killed in the middle of an upload --------------------------------------------------


def test_a_server_killed_mid_upload_records_nothing_and_doctor_cleans(
    settings: Settings, tmp_path: Path
) -> None:
    import os
    import signal
    import socket
    import subprocess
    import sys
    import time

    from shipyard.stores import open_stores
    from shipyard.tracking.doctor import clean_temp_files

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "SHIPYARD_HOME": str(settings.home), "SHIPYARD_DB_URL": settings.db_url}
    cmd = [sys.executable, "-m", "shipyard", "server", "--port", str(port), "--log-level", "error"]
    proc = subprocess.Popen(cmd, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        http = httpx.Client(base_url=url, timeout=60)
        exp_id, run_id = _run(http)
        _ok(_put(http, exp_id, run_id, "whole.bin", b"w" * 1000))
        sent = 0

        def body() -> Iterator[bytes]:
            nonlocal sent
            while True:
                yield b"x" * (1 << 20)
                sent += 1
                if sent == 20:  # 20 MB in: the server dies mid-upload
                    os.kill(proc.pid, signal.SIGKILL)

        with pytest.raises(httpx.HTTPError):
            http.put(f"{ARTIFACTS}{exp_id}/{run_id}/artifacts/half.bin", content=body())
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
    stores = open_stores(settings)
    from shipyard.tracking import RemoteRuns

    assert [a.path for a in RemoteRuns(stores).artifacts(run_id)] == ["whole.bin"]
    leftovers = stores.artifacts.stale_temp_files(0)
    assert leftovers, "a killed upload leaves its temporary file (else this test proves nothing)"
    found = clean_temp_files(settings, stores, grace_seconds=0, dry_run=False)
    assert found and not stores.artifacts.stale_temp_files(0)
    for digest_file in (settings.home / "artifacts").rglob("*"):
        assert "half" not in digest_file.name


@pytest.mark.parametrize("location", ["/etc/hostname", "../../../../../etc/hostname", "garbage"])
def test_onnx_external_data_outside_the_directory_is_refused(
    http: httpx.Client, location: str
) -> None:
    """An ONNX model whose weights are 'external data' at /etc/hostname or ../: refused with
    MLflow's 400 (not a bare 500 the client retries), nothing of the file stored."""
    from onnx import TensorProto, helper

    weights = TensorProto(name="W", data_type=TensorProto.UINT8, dims=[5])
    weights.data_location = TensorProto.EXTERNAL
    weights.external_data.add(key="location", value=location)
    x = helper.make_tensor_value_info("x", TensorProto.UINT8, [5])
    y = helper.make_tensor_value_info("y", TensorProto.UINT8, [5])
    node = helper.make_node("Add", ["x", "W"], ["y"])
    graph = helper.make_graph([node], "g", [x], [y], initializer=[weights])
    exp_id, run_id = _run(http)
    flavors = {"onnx": {"data": "model.onnx"}}
    _ok(_put(http, exp_id, run_id, "model/MLmodel", _mlmodel(flavors)))
    data = helper.make_model(graph).SerializeToString() if location != "garbage" else b"\x08" * 99
    _ok(_put(http, exp_id, run_id, "model/model.onnx", data))
    _refused(_register(http, "external", run_id), 400)


def test_an_untrusted_server_never_unpickles_an_mlflow_pickle_it_serves(
    http: httpx.Client, tmp_path: Path
) -> None:
    """A pickle registered through MLflow's API and deployed on an untrusted server: the
    endpoint refuses to load it; the pickle's code never runs (registering, deploying, the
    ONNX conversion, downloading it as an MLflow model)."""
    import time

    marker = tmp_path / "pickle-ran-in-server"
    exp_id, run_id = _run(http)
    flavors = {
        "sklearn": {"pickled_model": "model.pkl", "serialization_format": "cloudpickle"},
        "python_function": {"loader_module": "mlflow.sklearn", "model_path": "model.pkl"},
    }
    _ok(_put(http, exp_id, run_id, "model/MLmodel", _mlmodel(flavors, signature=SKLEARN_SIGNATURE)))
    _ok(_put(http, exp_id, run_id, "model/model.pkl", pickle.dumps(_Evil(marker))))
    mv = _ok(_register(http, "served", run_id))["model_version"]
    made = http.post(
        "/api/endpoints", json={"name": "served", "model_uri": f"models:/served/{mv['version']}"}
    )
    assert made.status_code in (201, 400, 403, 409, 422), made.text
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline:
        http.post("/endpoints/served/predict", json={"a": 0.0, "b": 0.0, "c": 0.0})
        time.sleep(0.5)
    answer = http.post("/endpoints/served/predict", json={"a": 0.0, "b": 0.0, "c": 0.0})
    assert answer.status_code >= 400, answer.text
    if made.status_code == 201:  # deployed: its load was refused, naming the pickle
        assert answer.status_code == 503 and "pickle" in answer.text, answer.text
    got = http.get(f"{ARTIFACTS}registry/served/{mv['version']}/model.pkl")
    assert got.status_code == 200
    assert not marker.exists(), "the server unpickled an untrusted model"


def test_version_lineage_and_logged_model_edges(http: httpx.Client) -> None:
    """A version claiming a run that does not exist, one made from a deleted logged model, a
    logged model's listing asked for '../'."""
    exp_id, run_id = _run(http)
    _ok(_put(http, exp_id, run_id, "model/MLmodel", _mlmodel({"custom": {}})))
    claimed = http.post(
        API + "model-versions/create",
        json={"name": "lineage", "source": f"runs:/{run_id}/model", "run_id": "f" * 32},
    )
    assert claimed.status_code in (200, 400, 404), claimed.text
    if claimed.status_code == 200:
        assert claimed.json()["model_version"].get("run_id") in (run_id, None), claimed.text
    model = _ok(http.post(API + "logged-models", json={"experiment_id": exp_id}))["model"]
    model_id = model["info"]["model_id"]
    base = f"{ARTIFACTS}{exp_id}/models/{model_id}/artifacts"
    _ok(http.put(f"{base}/MLmodel", content=_mlmodel({"custom": {}})))
    for path in ("../..", "%2e%2e/%2e%2e", "/etc"):
        listed = http.get(
            API + f"logged-models/{model_id}/artifacts/directories",
            params={"artifact_directory_path": path},
        )
        assert listed.status_code in (400, 404) or not listed.json().get("files"), listed.text
    _ok(http.delete(API + f"logged-models/{model_id}"))
    late = http.post(
        API + "model-versions/create", json={"name": "lineage", "source": f"models:/{model_id}"}
    )
    assert late.status_code in (400, 404), late.text


@pytest.mark.parametrize(
    ("kind", "example"),
    [
        ("dataframe", b"not json"),
        ("dataframe", b'{"columns": ["a"], "data": [[1, 2, 3]]}'),
        ("dataframe", b'{"columns": 5, "data": 7}'),
        ("ndarray", b'{"inputs": [[1, 2], [3]]}'),
        ("ndarray", b'"text"'),
        ("dataframe", b"\xff\xfe\x00"),
    ],
)
def test_a_broken_input_example_answers_400_or_is_ignored(
    http: httpx.Client, kind: str, example: bytes
) -> None:
    exp_id, run_id = _run(http)
    mlmodel = _mlmodel(
        {"custom": {}},
        saved_input_example_info={"artifact_path": "input_example.json", "type": kind},
        signature=SKLEARN_SIGNATURE,
    )
    _ok(_put(http, exp_id, run_id, "model/MLmodel", mlmodel))
    _ok(_put(http, exp_id, run_id, "model/input_example.json", example))
    answer = _register(http, "examples", run_id)
    assert answer.status_code in (200, 400), answer.text
    if answer.status_code == 400:
        _refused(answer, 400)


def test_a_client_that_hangs_up_mid_upload_leaves_nothing(
    http: httpx.Client, settings: Settings
) -> None:
    """Content-Length says 50 MB, 3 MB arrive, the socket closes: no file recorded, the
    temporary file removed at once (not left for the doctor)."""
    import socket
    import time

    from shipyard.stores import open_stores

    exp_id, run_id = _run(http)
    host, port = http.base_url.host, http.base_url.port
    assert port is not None
    with socket.create_connection((host, port)) as sock:
        head = (
            f"PUT {ARTIFACTS}{exp_id}/{run_id}/artifacts/cut.bin HTTP/1.1\r\n"
            f"Host: {host}:{port}\r\nContent-Length: {50 << 20}\r\n\r\n"
        )
        sock.sendall(head.encode())
        for _ in range(3):
            sock.sendall(b"c" * (1 << 20))
    stores = open_stores(settings)
    deadline = time.monotonic() + 10
    while stores.artifacts.stale_temp_files(0) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not stores.artifacts.stale_temp_files(0)
    assert _files(http, exp_id, run_id) == []
