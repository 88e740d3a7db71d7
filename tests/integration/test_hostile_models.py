"""A crafted model version, registered by someone who can write the metadata store and the
artifact folder, must not run code in any process that touches it: `shipyard server` serving
it, the background ONNX conversion, batch scoring and `shipyard.load_model`."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

import shipyard as sy
from shipyard.config import Settings
from shipyard.errors import UntrustedModelError
from shipyard.registry import Registry
from shipyard.rollout.deployments import Deployments
from shipyard.server.app import create_server_app
from shipyard.serving.http import BackgroundServer
from tests.hostile import skops_files


def _plant(stores: Any, base: Any, payload: bytes, onnx_status: str = "off") -> int:
    """Register a new version of `base`'s model whose skops file is `payload` (everything else
    copied from `base`): what an attacker with write access to both stores can do."""
    manifest = json.loads(stores.artifacts.get_bytes(base.artifact_digest))
    manifest["files"] = {"model.skops": stores.artifacts.put_bytes(payload)[0]}
    manifest.pop("onnx", None)
    digest = stores.artifacts.put_bytes(json.dumps(manifest, sort_keys=True).encode())[0]
    mv = stores.metadata.models.create_version(
        base.name,
        actor="mallory",
        flavor="sklearn",
        artifact_digest=digest,
        signature=base.signature,
        run_id=None,
        onnx_status=onnx_status,
    )
    return mv.version  # type: ignore[no-any-return]


@pytest.fixture
def planted(settings: Settings, stores: Any, breast_cancer: Any, tmp_path: Path) -> Any:
    from sklearn.linear_model import LogisticRegression

    X, y = breast_cancer
    model = LogisticRegression(max_iter=200).fit(X.iloc[:, :3], y)
    good = Registry(stores).register("victim", model, input_example=X.iloc[:5, :3], onnx=False)
    marker = tmp_path / "pwned"
    payload = skops_files.exec_payload(model, marker, "numpy.testing._private.utils", "runstring")
    return good, marker, payload, X.iloc[:, :3]


def test_the_server_refuses_to_serve_it_and_runs_nothing(
    settings: Settings, stores: Any, planted: Any
) -> None:
    good, marker, payload, X = planted
    bad = _plant(stores, good, payload)
    sy.set_alias("victim", "champion", bad, reason="mallory")
    Deployments(stores).create("victim", "models:/victim@champion")
    with BackgroundServer(create_server_app(settings, refresh_seconds=0.2)) as srv:
        srv.wait_ready("/health/live")
        deadline = time.monotonic() + 20
        serving: dict[str, Any] = {}
        while time.monotonic() < deadline:
            serving = httpx.get(f"{srv.url}/api/endpoints/victim").json()["serving"] or {}
            if serving.get("state") == "failed":
                break
            time.sleep(0.1)
        assert serving.get("state") == "failed", serving
        assert "not reviewed" in json.dumps(serving)
        r = httpx.post(
            f"{srv.url}/endpoints/victim/predict",
            json={"instances": X.iloc[:1].to_dict("records")},
        )
        assert r.status_code == 503, r.text
    assert not marker.exists()


def test_conversion_batch_and_load_refuse_it(
    settings: Settings, stores: Any, planted: Any, tmp_path: Path
) -> None:
    from shipyard.batch.scoring import score_files
    from shipyard.registry import conversion

    good, marker, payload, X = planted
    bad = _plant(stores, good, payload, onnx_status="pending")
    assert (
        conversion.convert_version(
            stores, "victim", bad, stores.metadata.models.get_version("victim", bad).artifact_digest
        )
        == "refused"
    )
    assert "not reviewed" in (stores.metadata.models.get_version("victim", bad).onnx_detail or "")
    with pytest.raises(UntrustedModelError):
        sy.load_model(f"models:/victim/{bad}")
    data = tmp_path / "in.parquet"
    pd.DataFrame(X.iloc[:50]).to_parquet(data)
    with pytest.raises(UntrustedModelError):
        score_files(settings, f"models:/victim/{bad}", data, tmp_path / "out", workers=1)
    assert not marker.exists()
    # the untouched version still loads and predicts
    assert len(sy.load_model(f"models:/victim/{good.version}").predict(X.iloc[:3])) == 3


@pytest.mark.parametrize("name", ["../../../../etc/passwd", "/etc/passwd", "a" * 63 + "/"])
def test_a_manifest_naming_a_path_instead_of_a_digest_reads_nothing(
    settings: Settings, stores: Any, planted: Any, name: str
) -> None:
    from shipyard.errors import InvalidArgumentError
    from shipyard.flavors import load_model

    good, _, _, _ = planted
    manifest = json.loads(stores.artifacts.get_bytes(good.artifact_digest))
    manifest["files"] = {"model.skops": name}
    digest = stores.artifacts.put_bytes(json.dumps(manifest).encode())[0]
    with pytest.raises(InvalidArgumentError, match="not a sha256 hex digest"):
        load_model(stores.artifacts, digest)
