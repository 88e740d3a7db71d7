"""The docker target: the Dockerfile and its build context for one model version, linted by
hadolint; the baked bundle served for real by `shipyard serve <folder>` (a tampered one
refused); `--digest` refusing another manifest; the image's dependencies measured in a fresh
virtualenv installed the way the Dockerfile installs them."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from shipyard.deploy import Deploy, RenderOptions
from shipyard.deploy.targets import Context
from shipyard.errors import IntegrityError, InvalidArgumentError
from shipyard.registry.bundle import load_bundle, served_uri
from tests.deploy.conftest import tool
from tests.helpers import SHIPYARD

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "ray", "mlflow", "psycopg", "redis", "s3fs", "tritonclient")


def _render(stores: Any, **options: Any) -> dict[str, str | bytes]:
    settings = options.pop("settings", {})
    rendered = Deploy(stores).render(
        "docker",
        model_uri="models:/churn@champion",
        options=RenderOptions(settings=settings, **options),
    )
    return rendered.files


def _written(stores: Any, out: Path, **options: Any) -> Path:
    Deploy.write(_render(stores, **options), out, what="docker test")
    return out


def _cli(*args: str, home: Path | None = None, timeout: float = 120) -> Any:
    env = dict(os.environ)
    if home is not None:  # a server with nothing but its own fresh store
        env["SHIPYARD_HOME"] = str(home)
        env.pop("SHIPYARD_DB_URL", None)
    return subprocess.run(
        [*SHIPYARD, *args], capture_output=True, text=True, env=env, timeout=timeout
    )


def test_two_renders_are_byte_identical_and_hadolint_passes(
    churn: Any, stores: Any, tmp_path: Path
) -> None:
    first, second = _render(stores), _render(stores)
    assert first == second
    assert {".dockerignore", "Dockerfile", "requirements.txt", "model/bundle.json"} <= set(first)
    variants: list[dict[str, Any]] = [
        {},
        {"model_source": "pull"},
        {"settings": {"shipyard_requirement": "shipyard==0.1.0", "extras": "postgres,s3"}},
    ]
    for i, options in enumerate(variants):  # baked, pulled, shipyard from an index
        out = _written(stores, tmp_path / f"docker{i}", **options)
        lint = subprocess.run(
            [tool("hadolint"), "--no-color", str(out / "Dockerfile")],
            capture_output=True,
            text=True,
        )
        assert lint.returncode == 0, lint.stdout + lint.stderr
        assert "hadolint ignore" not in (out / "Dockerfile").read_text()


def test_the_dockerfile_serves_exactly_this_version(churn: Any, stores: Any) -> None:
    facts = Deploy(stores).facts(model_uri="models:/churn@champion")
    files = _render(stores)
    text = str(files["Dockerfile"])
    froms = re.findall(r"^FROM (\S+) AS (\w+)$", text, flags=re.M)
    assert [stage for _, stage in froms] == ["builder", "runtime"]
    assert all(re.fullmatch(r"python:3\.11-slim@sha256:[0-9a-f]{64}", b) for b, _ in froms)
    assert re.search(r"^USER 10001:10001$", text, flags=re.M)
    assert 'ENTRYPOINT ["shipyard"]' in text
    context = Context(facts, RenderOptions(), lambda v, o: {})
    cmd = json.loads(re.search(r"^CMD (.+)$", text, flags=re.M)[1])  # type: ignore[index]
    assert cmd == context.serve_args()
    assert cmd[cmd.index("--digest") + 1] == f"sha256:{facts.model.digest}"
    assert cmd[:2] == ["serve", "/opt/model"]
    assert "COPY model/ /opt/model/" in text
    healthcheck = text[text.index("HEALTHCHECK") :].split("\n\n")[0]
    assert "urllib.request" in healthcheck and "/v2/models/churn/ready" in healthcheck
    bundle = json.loads(files["model/bundle.json"])
    assert (bundle["name"], bundle["version"], bundle["digest"]) == ("churn", 1, facts.model.digest)
    manifest = files["model/manifest.json"]
    blob = manifest.encode() if isinstance(manifest, str) else manifest
    assert hashlib.sha256(blob).hexdigest() == facts.model.digest


def test_the_requirements_are_the_lock_and_nothing_heavy(churn: Any, stores: Any) -> None:
    facts = Deploy(stores).facts(model_uri="models:/churn@champion")
    lines = [
        line
        for line in str(_render(stores)["requirements.txt"]).splitlines()
        if line and not line.startswith("#")
    ]
    pins = dict(line.split("==") for line in lines)
    assert pins == facts.model.packages
    assert "scikit-learn" in pins and "shipyard" not in pins
    assert not [name for name in pins if name.startswith(HEAVY)]


def test_pull_mode_bakes_no_model_and_pins_the_digest(churn: Any, stores: Any) -> None:
    facts = Deploy(stores).facts(model_uri="models:/churn@champion")
    files = _render(stores, model_source="pull")
    assert not [name for name in files if name.startswith("model/")]
    text = str(files["Dockerfile"])
    cmd = json.loads(re.search(r"^CMD (.+)$", text, flags=re.M)[1])  # type: ignore[index]
    assert cmd[:2] == ["serve", "models:/churn/1"]
    assert cmd[cmd.index("--digest") + 1] == f"sha256:{facts.model.digest}"
    assert "[postgres]" in text  # the server reads the registry's database
    assert "!model" not in str(files[".dockerignore"])


def test_shipyard_from_an_index_instead_of_a_wheel(churn: Any, stores: Any) -> None:
    files = _render(stores, settings={"shipyard_requirement": "shipyard==0.1.0", "extras": "s3"})
    text = str(files["Dockerfile"])
    assert '-r requirements.txt "shipyard[s3]==0.1.0"' in text
    assert not re.search(r"^COPY wheels/", text, flags=re.M)
    assert "wheels" not in str(files[".dockerignore"])


@pytest.mark.parametrize(
    ("key", "value", "said"),
    [
        ("base_image", "python:3.11-slim", "pin it by digest"),
        ("extras", "torch", "not a serving extra"),
        ("shipyard_requirement", "../shipyard.whl", "wheel path inside the build context"),
    ],
)
def test_a_bad_setting_is_refused_and_writes_nothing(
    churn: Any, stores: Any, tmp_path: Path, key: str, value: str, said: str
) -> None:
    with pytest.raises(InvalidArgumentError, match=said) as info:
        _render(stores, settings={key: value})
    assert info.value.details["field"] == "set"
    out = tmp_path / "out"
    result = _cli(
        "deploy", "render", "models:/churn@champion", "-t", "docker", "-o", str(out),
        "--set", f"{key}={value}",
    )  # fmt: skip
    assert result.returncode == 2 and said in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_an_alias_pointing_nowhere_writes_nothing(churn: Any, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = _cli("deploy", "render", "models:/churn@nowhere", "-t", "docker", "-o", str(out))
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_a_bundle_loads_verified_and_a_changed_byte_refuses_it(
    churn: Any, stores: Any, tmp_path: Path, breast_cancer: Any
) -> None:
    X, _ = breast_cancer
    out = _written(stores, tmp_path / "docker")
    doc = json.loads((out / "model/bundle.json").read_text())
    digest, onnx = doc["digest"], f"sha256:{doc['onnx_digest']}"
    model = load_bundle(out / "model", digest=f"sha256:{digest}", onnx_digest=onnx)
    expected = churn.load("models:/churn@champion")
    assert (model.name, model.version, model.backend) == ("churn", 1, "onnxruntime")
    assert np.array_equal(model.predict(X[:50]), expected.predict(X[:50]))
    with pytest.raises(IntegrityError, match="not the pinned"):
        load_bundle(out / "model", digest="sha256:" + "0" * 64)
    skops = out / "model/model.skops"
    data = bytearray(skops.read_bytes())
    data[len(data) // 2] ^= 1
    skops.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="does not match its digest"):
        load_bundle(out / "model")


def test_digest_pins_a_registered_version(churn: Any, stores: Any) -> None:
    facts = Deploy(stores).facts(model_uri="models:/churn@champion")
    pinned = served_uri(churn, "models:/churn@champion", digest=f"sha256:{facts.model.digest}")
    assert pinned == "models:/churn/1"
    with pytest.raises(IntegrityError, match="refusing to serve"):
        served_uri(churn, "models:/churn@challenger", digest=facts.model.digest)
    with pytest.raises(InvalidArgumentError, match="not a sha256 digest"):
        served_uri(churn, "models:/churn/1", digest="sha256:abc")
    result = _cli("serve", "models:/churn/2", "--port", "0", "--digest", facts.model.digest)
    assert result.returncode == 2 and "refusing to serve" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def _start(args: list[str], home: Path) -> tuple[subprocess.Popen[str], str]:
    env = {**os.environ, "SHIPYARD_HOME": str(home)}
    env.pop("SHIPYARD_DB_URL", None)
    proc = subprocess.Popen(
        [*SHIPYARD, *args], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env
    )
    assert proc.stderr is not None
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line and proc.poll() is not None:
            break
        found = re.search(r"on http://127\.0\.0\.1:(\d+)", line)
        if found:
            return proc, f"http://127.0.0.1:{found[1]}"
    proc.kill()
    raise AssertionError(f"the server did not start: {proc.stderr.read()}")


@pytest.mark.slow
def test_the_rendered_bundle_is_served_for_real_from_a_fresh_home(
    churn: Any, stores: Any, tmp_path: Path, breast_cancer: Any
) -> None:
    X, _ = breast_cancer
    out = _written(stores, tmp_path / "docker")
    facts = Deploy(stores).facts(model_uri="models:/churn@champion")
    args = ["serve", str(out / "model"), "--name", "churn", "--port", "0"]
    proc, url = _start([*args, "--digest", f"sha256:{facts.model.digest}"], tmp_path / "fresh")
    try:
        deadline = time.monotonic() + 60
        while httpx.get(f"{url}/v2/models/churn/ready").status_code != 200:
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.1)
        rows = json.loads(X[:40].to_json(orient="records"))
        answer = httpx.post(f"{url}/endpoints/churn/predict", json={"instances": rows}).json()
        expected = churn.load("models:/churn@champion").predict(X[:40]).tolist()
        assert answer["predictions"] == expected
    finally:
        proc.terminate()
        proc.wait(30)
    data = bytearray((out / "model/model.onnx").read_bytes())
    data[-1] ^= 1
    (out / "model/model.onnx").write_bytes(bytes(data))
    refused = _cli(*args, home=tmp_path / "fresh2")
    assert refused.returncode == 2, refused.stderr
    assert "does not match its digest" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_image_environment_installs_without_heavy_packages(
    churn: Any, stores: Any, tmp_path: Path, breast_cancer: Any
) -> None:
    """The builder stage's install, replayed in a fresh virtualenv: the model's lock and the
    shipyard wheel in one resolve. No torch, ray, MLflow or tracking extras arrive."""
    X, _ = breast_cancer
    out = _written(stores, tmp_path / "docker")
    wheel = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out / "wheels"),
         str(REPO)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert wheel.returncode == 0, wheel.stderr
    run = re.search(
        r"^RUN /opt/venv/bin/pip install (.+)$", str((out / "Dockerfile").read_text()), re.M
    )
    assert run is not None
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    install = (
        run[1]
        .replace('"/build/', f'"{out}/')
        .replace("-r requirements.txt", f"-r {out}/requirements.txt")
    )
    result = subprocess.run(
        f"{venv}/bin/pip install {install}", shell=True, capture_output=True, text=True,
        timeout=800,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    listed = subprocess.run(
        [f"{venv}/bin/pip", "list", "--format", "json"], capture_output=True, text=True, check=True
    )
    names = {p["name"].lower() for p in json.loads(listed.stdout)}
    assert "shipyard" in names and "scikit-learn" in names
    assert not [n for n in names if n.startswith(HEAVY)], sorted(names)
    probe = (
        "import json, sys; from pathlib import Path; from shipyard.registry.bundle import "
        "load_bundle; m = load_bundle(Path(sys.argv[1])); "
        "print(json.dumps(m.predict(json.loads(sys.argv[2])).tolist()))"
    )
    rows = X[:20].to_json(orient="records")
    got = subprocess.run(
        [f"{venv}/bin/python", "-c", probe, str(out / "model"), rows],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert got.returncode == 0, got.stderr
    assert json.loads(got.stdout) == churn.load("models:/churn/1").predict(X[:20]).tolist()


def test_a_bundle_that_runs_its_own_code_loads_only_when_trusted(
    stores: Any, logreg: Any, breast_cancer: Any, tmp_path: Path
) -> None:
    from shipyard.errors import UntrustedModelError
    from shipyard.registry import Registry

    X, _ = breast_cancer
    Registry(stores).register("pickled", logreg, input_example=X[:5], serialization="pickle")
    with pytest.raises(InvalidArgumentError, match="render with --trusted") as info:
        Deploy(stores).render("docker", model_uri="models:/pickled/1")  # nobody said so
    assert info.value.details["field"] == "trusted"
    trusted = RenderOptions(trusted=True)
    files = Deploy(stores).render("docker", model_uri="models:/pickled/1", options=trusted).files
    assert "--trusted" in str(files["Dockerfile"]).rsplit("CMD", 1)[1]
    Deploy.write(files, tmp_path / "docker", what="docker test")
    with pytest.raises(UntrustedModelError):
        load_bundle(tmp_path / "docker/model")
    model = load_bundle(tmp_path / "docker/model", trusted=True)
    assert np.array_equal(model.predict(X[:10]), logreg.predict(X[:10]))


def test_a_lock_value_that_is_no_version_is_refused_and_nothing_is_written(
    churn: Any, stores: Any
) -> None:
    """The version's lock goes into requirements.txt only once checked as `shipyard models
    env` checks it: a stored value that smuggles a pip option is refused."""
    from dataclasses import replace

    from shipyard.deploy.targets.docker import render

    facts = Deploy(stores).facts(model_uri="models:/churn@champion")
    packages = {**facts.model.packages, "numpy": "2.4.6\n--extra-index-url https://evil/simple"}
    spoilt = replace(facts, model=replace(facts.model, packages=packages))
    context = Context(spoilt, RenderOptions(model_source="pull"), lambda v, o: {})
    with pytest.raises(InvalidArgumentError, match="numpy") as info:
        render(context)
    assert info.value.details["field"] == "model_uri"


def _other_conversion(churn: Any, stores: Any, breast_cancer: Any) -> bytes:
    """The ONNX conversion of another model ('other': churn's pipeline fitted to the opposite
    labels), as its own docker render bakes it."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = breast_cancer
    flipped = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(X, 1 - y)
    churn.register("other", flipped, input_example=X[:5])
    type(churn).wait_for_conversions(timeout=120)
    files = Deploy(stores).render("docker", model_uri="models:/other/1").files
    return bytes(files["model/model.onnx"])  # type: ignore[arg-type]


def _swapped(churn: Any, stores: Any, out: Path, breast_cancer: Any) -> tuple[Path, str, str]:
    """churn/1's bundle with another model's model.onnx and bundle.json saying so: (folder,
    its manifest digest, its own conversion's digest)."""
    folder = _written(stores, out) / "model"
    doc = json.loads((folder / "bundle.json").read_text())
    digest, original = f"sha256:{doc['digest']}", f"sha256:{doc['onnx_digest']}"
    assert load_bundle(folder, digest=digest, onnx_digest=original).backend == "onnxruntime"
    onnx = _other_conversion(churn, stores, breast_cancer)
    (folder / "model.onnx").write_bytes(onnx)
    doc["onnx_digest"] = hashlib.sha256(onnx).hexdigest()
    (folder / "bundle.json").write_text(json.dumps(doc))
    return folder, digest, original


def test_a_swapped_conversion_is_not_served_under_the_pinned_manifest(
    churn: Any, stores: Any, tmp_path: Path, breast_cancer: Any
) -> None:
    """The manifest's digest does not cover model.onnx: with --digest alone the conversion
    is ignored (the manifest's own files serve), and a pinned --onnx-digest refuses another."""
    X, _ = breast_cancer
    folder, digest, original = _swapped(churn, stores, tmp_path / "docker", breast_cancer)
    expected = churn.load("models:/churn/1").predict(X[:50])
    model = load_bundle(folder, digest=digest)
    assert model.backend == "python"
    assert np.array_equal(model.predict(X[:50]), expected)
    with pytest.raises(IntegrityError, match="ONNX conversion"):
        load_bundle(folder, digest=digest, onnx_digest=original)
    with pytest.raises(IntegrityError, match="ONNX conversion"):
        served_uri(churn, str(folder), digest=digest, onnx_digest=original)
    churn.bundle_pins[str(folder)] = (digest, None)  # as `shipyard serve --digest` pins it
    assert np.array_equal(churn.load(str(folder)).predict(X[:50]), expected)
    result = _cli(
        "serve", str(folder), "--port", "0", "--digest", digest, "--onnx-digest", original
    )
    assert result.returncode == 2 and "ONNX conversion" in result.stderr, result.stderr


def test_the_serving_app_loads_the_bundle_under_its_pins(
    churn: Any, stores: Any, settings: Any, tmp_path: Path, breast_cancer: Any
) -> None:
    """What `shipyard serve DIR --digest …` checked is what its server loads: the pins
    travel to the load (bundle.json is read again there)."""
    from shipyard.serving.app import create_serving_app
    from shipyard.serving.http import BackgroundServer

    X, _ = breast_cancer
    folder, digest, _ = _swapped(churn, stores, tmp_path / "docker", breast_cancer)
    app = create_serving_app(settings, str(folder), pins=(digest, None))
    with BackgroundServer(app) as srv:
        srv.wait_ready()
        r = httpx.post(
            f"{srv.url}/endpoints/churn/predict",
            json={"instances": X.iloc[:50].to_dict(orient="records")},
        )
    assert r.status_code == 200, r.text
    expected = churn.load("models:/churn/1").predict(X[:50])
    assert r.json()["predictions"] == expected.tolist()


def test_a_bundle_whose_name_the_registry_refuses_is_refused(
    churn: Any, stores: Any, tmp_path: Path
) -> None:
    """bundle.json's name becomes the endpoint's name: it is checked as model names are."""
    folder = _written(stores, tmp_path / "docker") / "model"
    doc = json.loads((folder / "bundle.json").read_text())
    (folder / "bundle.json").write_text(json.dumps({**doc, "name": "churn/../<x>"}))
    with pytest.raises(InvalidArgumentError, match="is not valid") as info:
        served_uri(churn, str(folder), digest=f"sha256:{doc['digest']}")
    assert info.value.details["field"] == "model_uri"


def test_serve_args_pin_the_conversion_too(churn: Any, stores: Any) -> None:
    facts = Deploy(stores).facts(model_uri="models:/churn@champion")
    assert facts.model.onnx_digest
    args = Context(facts, RenderOptions(), lambda v, o: {}).serve_args()
    assert args[args.index("--onnx-digest") + 1] == f"sha256:{facts.model.onnx_digest}"
    pinned, onnx = f"sha256:{facts.model.digest}", f"sha256:{facts.model.onnx_digest}"
    assert served_uri(churn, "churn/1", digest=pinned, onnx_digest=onnx) == "models:/churn/1"
    with pytest.raises(IntegrityError, match="ONNX conversion"):
        served_uri(churn, "churn/1", digest=pinned, onnx_digest=f"sha256:{'0' * 64}")


@pytest.mark.parametrize("uri", ["churn@champion", "churn/2"])
def test_a_model_uri_never_names_a_folder_of_the_working_directory(
    churn: Any, stores: Any, tmp_path: Path, monkeypatch: Any, breast_cancer: Any, uri: str
) -> None:
    """A folder named like a model URI (holding another model's bundle) is not served in
    place of the registered version that URI names."""
    X, _ = breast_cancer
    _other_conversion(churn, stores, breast_cancer)
    files = Deploy(stores).render("docker", model_uri="models:/other/1").files
    for path, data in files.items():
        if path.startswith("model/"):
            target = tmp_path / uri / path.removeprefix("model/")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data if isinstance(data, bytes) else data.encode())
    monkeypatch.chdir(tmp_path)
    assert Path(uri, "bundle.json").is_file()
    assert served_uri(churn, uri) == uri
    model = churn.load(uri)
    assert model.name == "churn"
    expected = churn.load(f"models:/{uri}").predict(X[:50])
    assert np.array_equal(model.predict(X[:50]), expected)
