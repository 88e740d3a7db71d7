"""MLflow's logged-model, registry and artifact-proxy routes on `shipyard server` over real
HTTP, on SQLite and PostgreSQL, driven the way MLflow's client drives them: create a logged
model, upload its MLflow directory through the proxy, finalize, register from models:/<id>,
alias, download the version; the JSON as the client parses it; the scopes each needs.

The MLflow model directory here is written as MLflow writes one (MLmodel, model.skops,
input_example.json); tests/e2e/test_mlflow_client.py does it all with MLflow's own client."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from shipyard.config import Settings
from shipyard.server.app import create_server_app
from shipyard.serving.http import BackgroundServer

API = "/api/2.0/mlflow/"
PROXY = "/api/2.0/mlflow-artifacts/artifacts/"


@pytest.fixture
def server(settings: Settings) -> Iterator[BackgroundServer]:
    with BackgroundServer(create_server_app(settings, refresh_seconds=1.0)) as srv:
        srv.wait_ready()
        yield srv


@pytest.fixture
def client(server: BackgroundServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=60) as c:
        yield c


def _error(answer: httpx.Response, status: int, code: str) -> str:
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert body["error_code"] == code, body
    return str(body["message"])


def _data() -> tuple[pd.DataFrame, Any]:
    rng = np.random.default_rng(3)
    X = pd.DataFrame({"a": rng.normal(size=80), "b": rng.normal(size=80)})
    return X, LogisticRegression().fit(X, (X.a > X.b).astype(int))


def mlflow_directory(folder: Path, model: Any, X: pd.DataFrame) -> Path:
    """An MLflow model directory as mlflow.sklearn.save_model writes it (skops format)."""
    import skops.io as sio
    import yaml

    folder.mkdir(parents=True, exist_ok=True)
    sio.dump(model, folder / "model.skops")
    example = {"columns": list(X.columns), "data": X[:3].to_numpy().tolist()}
    (folder / "input_example.json").write_text(json.dumps(example))
    inputs = [{"type": "double", "name": c, "required": True} for c in X.columns]
    mlmodel = {
        "flavors": {
            "python_function": {"loader_module": "mlflow.sklearn", "model_path": "model.skops"},
            "sklearn": {"pickled_model": "model.skops", "serialization_format": "skops"},
        },
        "saved_input_example_info": {
            "artifact_path": "input_example.json",
            "type": "dataframe",
            "pandas_orient": "split",
        },
        "signature": {"inputs": json.dumps(inputs), "outputs": None, "params": None},
    }
    (folder / "MLmodel").write_text(yaml.safe_dump(mlmodel))
    (folder / "requirements.txt").write_text("scikit-learn\nskops\n")
    return folder


def _upload(client: httpx.Client, root: str, folder: Path) -> None:
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        relative = path.relative_to(folder).as_posix()
        r = client.put(PROXY + root + "/" + relative, content=path.read_bytes())
        assert r.status_code == 200 and r.json() == {}, r.text


def test_log_register_alias_and_download_a_model(
    client: httpx.Client, settings: Settings, tmp_path: Path
) -> None:
    from shipyard.registry import Registry
    from shipyard.stores import open_stores

    X, model = _data()
    exp_id = client.post(API + "experiments/create", json={"name": "lm"}).json()["experiment_id"]
    run = client.post(API + "runs/create", json={"experiment_id": exp_id}).json()["run"]["info"]
    created = client.post(
        API + "logged-models",
        json={
            "experiment_id": exp_id,
            "name": "model",
            "source_run_id": run["run_id"],
            "params": [{"key": "C", "value": "1.0"}],
            "tags": [{"key": "mlflow.source.type", "value": "LOCAL"}],
            "unknown_field": 1,
        },
    ).json()["model"]
    info = created["info"]
    model_id = info["model_id"]
    assert info["status"] == "LOGGED_MODEL_PENDING" and info["source_run_id"] == run["run_id"]
    assert info["artifact_uri"] == f"mlflow-artifacts:/{exp_id}/models/{model_id}/artifacts"
    assert created["data"]["params"] == [{"key": "C", "value": "1.0"}]
    assert isinstance(info["creation_timestamp_ms"], int)

    got = client.get(API + "runs/get", params={"run_id": run["run_id"]}).json()["run"]
    assert got["outputs"] == {"model_outputs": [{"model_id": model_id, "step": 0}]}
    folder = mlflow_directory(tmp_path / "model", model, X)
    _upload(client, f"{exp_id}/models/{model_id}/artifacts", folder)
    listing = client.get(PROXY[:-1], params={"path": f"{exp_id}/models/{model_id}/artifacts"})
    names = {f["path"]: f for f in listing.json()["files"]}
    assert set(names) == {"MLmodel", "model.skops", "input_example.json", "requirements.txt"}
    assert names["model.skops"]["file_size"] == (folder / "model.skops").stat().st_size
    done = client.patch(API + f"logged-models/{model_id}", json={"status": "LOGGED_MODEL_READY"})
    assert done.json()["model"]["info"]["status"] == "LOGGED_MODEL_READY"
    assert client.patch(
        API + f"logged-models/{model_id}/tags", json={"tags": [{"key": "k", "value": "v"}]}
    ).json()["model"]["info"]["tags"][-1] == {"key": "k", "value": "v"}
    found = client.post(
        API + "logged-models/search",
        json={"experiment_ids": [exp_id], "filter": f"source_run_id = '{run['run_id']}'"},
    ).json()["models"]
    assert [m["info"]["model_id"] for m in found] == [model_id]

    assert client.post(API + "registered-models/create", json={"name": "churn"}).status_code == 200
    _error(
        client.post(API + "registered-models/create", json={"name": "churn"}),
        400,
        "RESOURCE_ALREADY_EXISTS",
    )
    version = client.post(
        API + "model-versions/create",
        json={
            "name": "churn",
            "source": f"models:/{model_id}",
            "run_id": run["run_id"],
            "model_id": model_id,
            "tags": [{"key": "team", "value": "growth"}],
        },
    ).json()["model_version"]
    assert version["version"] == "1" and version["status"] == "READY"
    assert version["source"] == f"models:/{model_id}" and version["model_id"] == model_id
    assert version["tags"] == [{"key": "team", "value": "growth"}]  # mlflow.* kept hidden
    assert (
        client.post(
            API + "registered-models/alias",
            json={"name": "churn", "alias": "champion", "version": "1"},
        ).json()
        == {}
    )
    by_alias = client.get(
        API + "registered-models/alias", params={"name": "churn", "alias": "champion"}
    )
    assert by_alias.json()["model_version"]["aliases"] == ["champion"]
    model_json = client.get(API + "registered-models/get", params={"name": "churn"}).json()
    assert model_json["registered_model"]["aliases"] == [{"alias": "champion", "version": "1"}]
    assert model_json["registered_model"]["latest_versions"][0]["version"] == "1"

    uri = client.get(
        API + "model-versions/get-download-uri", params={"name": "churn", "version": "1"}
    ).json()["artifact_uri"]
    assert uri == "mlflow-artifacts:/registry/churn/1"
    back = client.get(PROXY + "registry/churn/1/model.skops")
    assert back.status_code == 200 and back.content == (folder / "model.skops").read_bytes()
    assert back.headers["x-content-type-options"] == "nosniff"

    # shipyard's own view: the same version, the same predictions, ONNX checked
    reg = Registry(open_stores(settings))
    Registry.wait_for_conversions(timeout=120)
    mv = reg.resolve("models:/churn@champion")
    assert (mv.version, mv.run_id, mv.tags["team"]) == (1, run["run_id"], "growth")
    assert reg.get_version("churn", 1).onnx_status == "ok"
    assert reg.load("models:/churn/1").predict(X).tolist() == model.predict(X).tolist()


def test_registry_search_stages_tags_and_deletes(client: httpx.Client, tmp_path: Path) -> None:
    X, model = _data()
    exp_id = client.post(API + "experiments/create", json={"name": "s"}).json()["experiment_id"]
    run_id = client.post(API + "runs/create", json={"experiment_id": exp_id}).json()["run"]["info"][
        "run_id"
    ]
    _upload(
        client, f"{exp_id}/{run_id}/artifacts/model", mlflow_directory(tmp_path / "m", model, X)
    )
    for name in ("alpha", "beta"):
        for _ in range(2):
            r = client.post(
                API + "model-versions/create",
                json={"name": name, "source": f"runs:/{run_id}/model", "run_id": run_id},
            )
            assert r.status_code == 200, r.text
    names = client.get(API + "registered-models/search", params={"filter": "name LIKE 'al%'"})
    assert [m["name"] for m in names.json()["registered_models"]] == ["alpha"]
    versions = client.get(API + "model-versions/search", params={"filter": "name='beta'"})
    assert [v["version"] for v in versions.json()["model_versions"]] == ["2", "1"]
    page = client.get(API + "model-versions/search", params={"max_results": 3}).json()
    assert len(page["model_versions"]) == 3 and page["next_page_token"]
    rest = client.get(
        API + "model-versions/search",
        params={"max_results": 3, "page_token": page["next_page_token"]},
    ).json()
    assert len(rest["model_versions"]) == 1 and "next_page_token" not in rest
    _error(
        client.get(API + "model-versions/search", params={"page_token": "nonsense"}),
        400,
        "INVALID_PARAMETER_VALUE",
    )
    moved = client.post(
        API + "model-versions/transition-stage",
        json={"name": "alpha", "version": "1", "stage": "production"},
    ).json()["model_version"]
    assert moved["current_stage"] == "Production"
    client.post(
        API + "model-versions/transition-stage",
        json={
            "name": "alpha",
            "version": "2",
            "stage": "Production",
            "archive_existing_versions": True,
        },
    )
    latest = client.post(
        API + "registered-models/get-latest-versions", json={"name": "alpha"}
    ).json()
    assert {(v["version"], v["current_stage"]) for v in latest["model_versions"]} == {
        ("1", "Archived"),
        ("2", "Production"),
    }
    client.post(
        API + "model-versions/set-tag",
        json={"name": "beta", "version": "1", "key": "q", "value": "x"},
    )
    assert (
        client.get(API + "model-versions/search", params={"filter": "tags.q = 'x'"}).json()[
            "model_versions"
        ][0]["name"]
        == "beta"
    )
    assert (
        client.request(
            "DELETE", API + "model-versions/delete", json={"name": "beta", "version": "1"}
        ).json()
        == {}
    )
    _error(
        client.get(API + "model-versions/get", params={"name": "beta", "version": "1"}),
        404,
        "RESOURCE_DOES_NOT_EXIST",
    )
    _error(
        client.get(API + "model-versions/get", params={"name": "beta", "version": "x"}),
        400,
        "INVALID_PARAMETER_VALUE",
    )
    _error(
        client.post(
            API + "model-versions/create", json={"name": "c", "source": "file:///etc/passwd"}
        ),
        400,
        "INVALID_PARAMETER_VALUE",
    )
    _error(
        client.post(
            API + "model-versions/create", json={"name": "c", "source": "models:/m-" + "0" * 32}
        ),
        404,
        "RESOURCE_DOES_NOT_EXIST",
    )


def test_artifact_proxy_paths_and_bad_input(client: httpx.Client) -> None:
    exp_id = client.post(API + "experiments/create", json={"name": "p"}).json()["experiment_id"]
    run_id = client.post(API + "runs/create", json={"experiment_id": exp_id}).json()["run"]["info"][
        "run_id"
    ]
    root = f"{exp_id}/{run_id}/artifacts"
    assert client.put(PROXY + root + "/plots/a.txt", content=b"hello").status_code == 200
    assert client.put(PROXY + root + "/plots/b.txt", content=b"").status_code == 200  # empty
    assert client.get(PROXY + root + "/plots/a.txt").content == b"hello"
    top = client.get(PROXY[:-1], params={"path": root}).json()
    assert top == {"files": [{"path": "plots", "is_dir": True}]}
    inner = client.get(PROXY[:-1], params={"path": root + "/plots"}).json()["files"]
    assert [(f["path"], f["file_size"]) for f in inner] == [("a.txt", 5), ("b.txt", 0)]
    run = client.get(API + "runs/get", params={"run_id": run_id}).json()["run"]
    assert run["info"]["artifact_uri"] == f"mlflow-artifacts:/{root}"
    for bad in ("%2e%2e/x", "a/%2E%2E/%2e%2e/x", "a\\b", "a%00b", "x" * 1100):
        _error(client.put(PROXY + root + "/" + bad, content=b"x"), 400, "INVALID_PARAMETER_VALUE")
    _error(client.put(PROXY + "whatever", content=b"x"), 400, "INVALID_PARAMETER_VALUE")
    _error(client.get(PROXY + root + "/nothing"), 404, "RESOURCE_DOES_NOT_EXIST")
    # a JSON body is held to the API's limit on both prefixes; a proxied upload streams past it
    huge = b'{"name": "' + b"x" * (9 << 20) + b'"}'
    assert client.post("/ajax-api/2.0/mlflow/experiments/create", content=huge).status_code == 413
    assert client.post(API + "experiments/create", content=huge).status_code == 413
    assert client.put(PROXY + root + "/big.bin", content=huge).status_code == 200
    _error(
        client.put(PROXY + f"{exp_id}/{'f' * 32}/artifacts/x", content=b"x"),
        404,
        "RESOURCE_DOES_NOT_EXIST",
    )
    assert client.delete(PROXY + root + "/plots").json() == {}
    assert client.delete(PROXY + root + "/big.bin").json() == {}
    assert client.get(PROXY[:-1], params={"path": root}).json() == {}
    client.post(API + "runs/delete", json={"run_id": run_id})
    _error(client.put(PROXY + root + "/late.txt", content=b"x"), 400, "INVALID_STATE")
    _error(
        client.post("/api/2.0/mlflow-artifacts/mpu/create/" + root + "/x"),
        404,
        "ENDPOINT_NOT_FOUND",
    )


def test_scopes_for_registry_writes(settings: Settings, tmp_path: Path) -> None:
    """A training job's key ("track") registers versions; moving an alias or deleting one
    needs "admin", as shipyard's own registry routes do (endpoints follow aliases)."""
    from shipyard.access import ApiKeys
    from shipyard.stores import open_stores

    settings = settings.model_copy(update={"auth_required": True})
    keys = ApiKeys(open_stores(settings))
    track = keys.create("job", scopes=["read", "track"])[1]
    admin = keys.create("lead", scopes=["read", "admin"])[1]
    X, model = _data()
    with BackgroundServer(create_server_app(settings, refresh_seconds=1.0)) as srv:
        srv.wait_ready()
        job = httpx.Client(
            base_url=srv.url, headers={"Authorization": f"Bearer {track}"}, timeout=60
        )
        lead = httpx.Client(
            base_url=srv.url, headers={"Authorization": f"Bearer {admin}"}, timeout=60
        )
        anonymous = httpx.Client(base_url=srv.url, timeout=60)
        exp_id = job.post(API + "experiments/create", json={"name": "sc"}).json()["experiment_id"]
        run_id = job.post(API + "runs/create", json={"experiment_id": exp_id}).json()["run"][
            "info"
        ]["run_id"]
        _upload(
            job, f"{exp_id}/{run_id}/artifacts/model", mlflow_directory(tmp_path / "m", model, X)
        )
        _error(
            anonymous.get(PROXY + f"{exp_id}/{run_id}/artifacts/model/MLmodel"),
            401,
            "UNAUTHENTICATED",
        )
        made = job.post(
            API + "model-versions/create", json={"name": "sc", "source": f"runs:/{run_id}/model"}
        )
        assert made.status_code == 200, made.text
        alias = {"name": "sc", "alias": "champion", "version": "1"}
        _error(job.post(API + "registered-models/alias", json=alias), 403, "PERMISSION_DENIED")
        _error(
            job.request(
                "DELETE", API + "model-versions/delete", json={"name": "sc", "version": "1"}
            ),
            403,
            "PERMISSION_DENIED",
        )
        assert lead.post(API + "registered-models/alias", json=alias).json() == {}
        assert job.get(API + "registered-models/alias", params=alias).status_code == 200


def test_rename_moves_versions_aliases_and_tags_unless_served(
    client: httpx.Client, settings: Settings, tmp_path: Path
) -> None:
    from shipyard.registry import Registry
    from shipyard.rollout.deployments import Deployments
    from shipyard.stores import open_stores

    X, model = _data()
    exp_id = client.post(API + "experiments/create", json={"name": "r"}).json()["experiment_id"]
    run_id = client.post(API + "runs/create", json={"experiment_id": exp_id}).json()["run"]["info"][
        "run_id"
    ]
    _upload(client, f"{exp_id}/{run_id}/artifacts/m", mlflow_directory(tmp_path / "m", model, X))
    for _ in range(2):
        made = client.post(
            API + "model-versions/create", json={"name": "old", "source": f"runs:/{run_id}/m"}
        )
        assert made.status_code == 200, made.text
    client.post(
        API + "registered-models/set-tag", json={"name": "old", "key": "team", "value": "a"}
    )
    client.post(
        API + "model-versions/set-tag",
        json={"name": "old", "version": "2", "key": "k", "value": "v"},
    )
    client.post(
        API + "registered-models/alias", json={"name": "old", "alias": "champion", "version": "2"}
    )
    renamed = client.post(API + "registered-models/rename", json={"name": "old", "new_name": "new"})
    assert renamed.status_code == 200, renamed.text
    body = renamed.json()["registered_model"]
    assert body["name"] == "new" and body["aliases"] == [{"alias": "champion", "version": "2"}]
    assert body["tags"] == [{"key": "team", "value": "a"}]
    _error(
        client.get(API + "registered-models/get", params={"name": "old"}),
        404,
        "RESOURCE_DOES_NOT_EXIST",
    )
    reg = Registry(open_stores(settings))
    mv = reg.resolve("models:/new@champion")
    assert (mv.version, mv.tags["k"], mv.run_id) == (2, "v", run_id)
    assert [v.version for v in reg.list_versions("new")] == [1, 2]
    assert reg.load("models:/new/2").predict(X).tolist() == model.predict(X).tolist()
    _error(
        client.post(API + "registered-models/rename", json={"name": "new", "new_name": "bad name"}),
        400,
        "INVALID_PARAMETER_VALUE",
    )
    Deployments(open_stores(settings)).create("churn-api", "models:/new@champion")
    message = _error(
        client.post(API + "registered-models/rename", json={"name": "new", "new_name": "newer"}),
        400,
        "INVALID_STATE",
    )
    assert "churn-api" in message
    assert reg.resolve("models:/new@champion").version == 2  # nothing changed


def test_what_mlflow_clients_send_on_their_own(client: httpx.Client, tmp_path: Path) -> None:
    """The prompt filter every client adds to search_registered_models, copy_model_version's
    models:/ source, the download URI as a source, runs:/<run>/<name> naming a logged model,
    and the aliases MLflow reserves."""
    X, model = _data()
    exp_id = client.post(API + "experiments/create", json={"name": "own"}).json()["experiment_id"]
    run_id = client.post(API + "runs/create", json={"experiment_id": exp_id}).json()["run"]["info"][
        "run_id"
    ]
    logged = client.post(
        API + "logged-models",
        json={"experiment_id": exp_id, "name": "model", "source_run_id": run_id},
    ).json()["model"]["info"]["model_id"]
    _upload(
        client, f"{exp_id}/models/{logged}/artifacts", mlflow_directory(tmp_path / "m", model, X)
    )
    made = client.post(
        API + "model-versions/create",
        json={"name": "own", "source": f"runs:/{run_id}/model", "run_id": run_id},
    )
    assert made.status_code == 200, made.text
    client.post(
        API + "registered-models/set-tag", json={"name": "own", "key": "team", "value": "x"}
    )
    prompt_filter = "tag.`mlflow.prompt.is_prompt` != 'true'"
    for text in (prompt_filter, f"name LIKE 'ow%' AND {prompt_filter}"):
        found = client.get(API + "registered-models/search", params={"filter": text}).json()
        assert [m["name"] for m in found["registered_models"]] == ["own"], text
    hidden = client.get(
        API + "registered-models/search", params={"filter": "tag.team != 'x'"}
    ).json()
    assert hidden["registered_models"] == []
    for source in ("models:/own/1", "mlflow-artifacts:/registry/own/1"):
        copy = client.post(
            API + "model-versions/create", json={"name": "own-copy", "source": source}
        )
        assert copy.status_code == 200, copy.text
    versions = client.get(
        API + "model-versions/search", params={"filter": "name='own-copy'"}
    ).json()
    assert [v["version"] for v in versions["model_versions"]] == ["2", "1"]
    back = client.get(PROXY + "registry/own-copy/2/model.skops").content
    assert back == (tmp_path / "m" / "model.skops").read_bytes()
    for reserved in ("latest", "v3", "V12"):
        _error(
            client.post(
                API + "registered-models/alias",
                json={"name": "own", "alias": reserved, "version": "1"},
            ),
            400,
            "INVALID_PARAMETER_VALUE",
        )
