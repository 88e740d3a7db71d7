"""The Python model flavor: a user's class saved as its code and files, never pickled, loaded
in another process from the artifact store alone (the project folder it came from deleted),
isolated from another version of the same module, and refused when its code is not logged."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pandas as pd
import pytest

import shipyard
from shipyard.errors import InvalidArgumentError, UntrustedModelError
from tests.helpers import SHIPYARD, free_port, wait_ready

MODEL = """
import json

import numpy as np

import shipyard
from mypkg.weights import BONUS
from pre import clean


class Sentiment(shipyard.PythonModel):
    def load(self, context):
        self.vocab = json.loads(context.artifacts["vocab"].read_text())

    def predict(self, inputs):
        import pandas  # imported inside a function: still in the lock

        words = [clean(t).split() for t in pandas.Series(inputs["text"])]
        return np.array([sum(self.vocab.get(w, 0) for w in ws) + BONUS for ws in words])
"""

LOG = """
import sys
import time

import pandas as pd

import shipyard
from mypkg.model import Sentiment

example = pd.DataFrame({"text": ["Good good", "bad"]})
with shipyard.start_run(experiment="python-model") as run:
    mv = run.log_model(
        Sentiment(),
        name="sentiment",
        input_example=example,
        code=["mypkg/", "pre.py"],
        artifacts={"vocab": "vocab.json"},
        pip_requirements=sys.argv[1:],
    )
print(mv.version)
"""

LOAD = """
import json
import sys
import time

import pandas as pd

import shipyard

rows = pd.DataFrame({"text": ["GOOD good bad", "meh"]})
models = {v: shipyard.load_model(f"models:/sentiment/{v}", trusted=True) for v in sys.argv[1:]}
print(json.dumps({
    "predictions": {v: m.predict(rows).tolist() for v, m in models.items()},
    "backend": [m.backend for m in models.values()],
}))
"""


def write_project(folder: Path, bonus: int) -> Path:
    """A user's project: a package, a loose module, a data file and the script that logs."""
    (folder / "mypkg").mkdir(parents=True)
    (folder / "mypkg" / "__init__.py").write_text("")
    (folder / "mypkg" / "model.py").write_text(MODEL)
    (folder / "mypkg" / "weights.py").write_text(f"BONUS = {bonus}\n")
    (folder / "pre.py").write_text("def clean(text):\n    return text.lower().strip()\n")
    (folder / "vocab.json").write_text(json.dumps({"good": 1, "bad": -1}))
    (folder / "log.py").write_text(LOG)
    return folder


def python(home: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SHIPYARD_HOME": str(home)}
    out = subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=180
    )
    assert out.returncode == 0, out.stderr
    return out


def log_from(home: Path, project: Path, *declared: str) -> int:
    """Log the project's model in its own process, then delete the project."""
    version = int(python(home, project, "log.py", *declared).stdout.split()[-1])
    shutil.rmtree(project)
    return version


def test_code_and_files_travel_with_the_version(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert log_from(home, write_project(tmp_path / "project", bonus=0)) == 1
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "load.py").write_text(LOAD)
    out = json.loads(python(home, elsewhere, "load.py", "1").stdout)
    # "good good bad" → 1 + 1 - 1; "meh" → 0: the vocabulary and both modules came along
    assert out == {"predictions": {"1": [1, 0]}, "backend": ["python"]}


def test_two_versions_of_one_module_in_one_process(tmp_path: Path) -> None:
    home = tmp_path / "home"
    log_from(home, write_project(tmp_path / "v1", bonus=0))
    log_from(home, write_project(tmp_path / "v2", bonus=100))
    (tmp_path / "load.py").write_text(LOAD)
    out = json.loads(python(home, tmp_path, "load.py", "1", "2").stdout)
    assert out["predictions"] == {"1": [1, 0], "2": [101, 100]}


def test_loading_runs_its_code_only_when_trusted(tmp_home: Path, tmp_path: Path) -> None:
    log_from(tmp_home, write_project(tmp_path / "project", bonus=0))
    with pytest.raises(UntrustedModelError, match=r"mypkg\.model:Sentiment.*trusted=True"):
        shipyard.load_model("models:/sentiment/1")
    assert "mypkg" not in sys.modules


def test_the_lock_holds_what_the_code_imports_and_what_the_user_declares(
    tmp_home: Path, tmp_path: Path
) -> None:
    from importlib.metadata import version

    from shipyard.stores import open_stores

    log_from(tmp_home, write_project(tmp_path / "project", bonus=0), "httpx>=0.1")
    env = shipyard.Registry(open_stores()).environment("models:/sentiment/1")
    assert env.packages["pandas"] == version("pandas")  # imported inside predict()
    assert env.packages["numpy"] == version("numpy")
    assert env.packages["httpx"] == version("httpx")  # declared
    assert "shipyard" not in env.packages and "mypkg" not in env.packages
    assert env.declared == ("httpx>=0.1",)


def test_served_over_http_with_trusted(tmp_path: Path) -> None:
    import httpx

    home = tmp_path / "home"
    log_from(home, write_project(tmp_path / "project", bonus=5))
    port = free_port()
    env = {**os.environ, "SHIPYARD_HOME": str(home)}
    proc = subprocess.Popen(
        [*SHIPYARD, "serve", "models:/sentiment/1", "--port", str(port), "--trusted"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, proc)
        answer = httpx.post(
            f"{url}/endpoints/sentiment/predict",
            json={"instances": [{"text": "good"}, {"text": "bad bad"}]},
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["predictions"] == [6, 3]
    finally:
        proc.terminate()
        proc.wait(timeout=30)


# -- refused unless its code is logged with it ----------------------------------------------------


@pytest.fixture
def module_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Import a fresh module (a unique name) from a folder, as a user's own code."""

    def make(source: str) -> tuple[str, object]:
        name = f"usermod_{uuid.uuid4().hex[:8]}"
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
        monkeypatch.syspath_prepend(str(tmp_path))
        module = __import__(name)
        monkeypatch.setitem(sys.modules, name, module)
        return name, module

    return make


SIMPLE = """
    import numpy as np
    import shipyard

    class Doubler(shipyard.PythonModel):
        def predict(self, inputs):
            return np.asarray(inputs["x"]) * 2
"""


def test_refused_when_its_module_is_not_logged(tmp_home: Path, module_in, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    name, module = module_in(SIMPLE)
    (tmp_path / "other.py").write_text("X = 1\n")
    example = pd.DataFrame({"x": [1.0, 2.0]})
    with shipyard.start_run(experiment="refused") as run:
        with pytest.raises(InvalidArgumentError, match=rf"{name}.*not in the code logged"):
            run.log_model(module.Doubler(), name="d", input_example=example)
        with pytest.raises(InvalidArgumentError, match=rf"{name}.*not in the code logged"):
            run.log_model(
                module.Doubler(), name="d", input_example=example, code=[tmp_path / "other.py"]
            )
        with pytest.raises(InvalidArgumentError, match="does not exist"):
            run.log_model(
                module.Doubler(),
                name="d",
                input_example=example,
                code=[tmp_path / f"{name}.py"],
                artifacts={"w": tmp_path / "missing.bin"},
            )
        mv = run.log_model(
            module.Doubler(), name="d", input_example=example, code=[tmp_path / f"{name}.py"]
        )
    assert mv.flavor == "python_model"
    assert shipyard.load_model("models:/d/1", trusted=True).predict(example).tolist() == [2, 4]


def test_refused_when_defined_in_a_script(tmp_path: Path) -> None:
    script = tmp_path / "train.py"
    script.write_text(
        textwrap.dedent(SIMPLE)
        + textwrap.dedent("""
        import pandas as pd
        try:
            with shipyard.start_run(experiment="s") as run:
                run.log_model(Doubler(), name="d", input_example=pd.DataFrame({"x": [1.0]}),
                              code=[__file__])
        except shipyard.InvalidArgumentError as exc:
            print("refused:", exc)
        """)
    )
    out = python(tmp_path / "home", tmp_path, str(script))
    assert "refused: __main__.Doubler is defined in a script" in out.stdout


def test_an_unsupported_object_is_told_about_the_escape_hatch(tmp_home: Path) -> None:
    with (
        shipyard.start_run(experiment="unsupported") as run,
        pytest.raises(InvalidArgumentError, match=r"shipyard\.PythonModel logged with its code"),
    ):
        run.log_model(object(), name="u", input_example=pd.DataFrame({"x": [1.0]}))


# -- what a new user forgets: a local module, an artifact; serving one that cannot load ---------

TICKETS = """
import numpy as np
import shipyard
import preprocessing  # the project's own module, next to the script


class Priority(shipyard.PythonModel):
    def load(self, context):
        self.words = context.artifacts["vocab"].read_text().split()

    def predict(self, inputs):
        return np.array(["urgent" if preprocessing.clean(t) in self.words else "normal"
                         for t in inputs["text"]])
"""

LOG_TICKETS = """
import sys
import time
import pandas as pd
import shipyard
from tickets.model import Priority

artifacts = {"vocab": "vocab.txt"} if "with-vocab" in sys.argv else None
code = ["tickets/", "preprocessing.py"] if "with-module" in sys.argv else ["tickets/"]
try:
    with shipyard.start_run(experiment="t") as run:
        mv = run.log_model(Priority(), name="tickets", input_example=pd.DataFrame(
            {"text": ["Outage "]}), code=code, artifacts=artifacts)
    print("logged", mv.version)
except shipyard.InvalidArgumentError as exc:
    print("refused:", exc.message)
"""


def _tickets(folder: Path) -> Path:
    (folder / "tickets").mkdir(parents=True)
    (folder / "tickets" / "__init__.py").write_text("")
    (folder / "tickets" / "model.py").write_text(TICKETS)
    (folder / "preprocessing.py").write_text("def clean(t):\n    return t.strip().lower()\n")
    (folder / "vocab.txt").write_text("outage\n")
    (folder / "log.py").write_text(LOG_TICKETS)
    return folder


def test_a_local_module_the_code_imports_must_be_logged(tmp_path: Path) -> None:
    project = _tickets(tmp_path / "project")
    out = python(tmp_path / "home", project, "log.py", "with-vocab").stdout
    assert "refused: the logged code imports 'preprocessing'" in out, out
    assert "add it to code=[...] (code=['preprocessing.py'])" in out
    out = python(tmp_path / "home", project, "log.py", "with-vocab", "with-module").stdout
    assert "logged 1" in out, out


def test_a_forgotten_artifact_names_itself_and_how_to_log_it(tmp_path: Path) -> None:
    from shipyard.flavors.python_model import ModelContext

    project = _tickets(tmp_path / "project")
    out = python(tmp_path / "home", project, "log.py", "with-module").stdout
    assert (
        "refused: artifact 'vocab' was not logged with this model (logged artifacts: none); "
        "log it with log_model(..., artifacts={'vocab': 'path/to/file-or-folder'})"
    ) in out, out
    context = ModelContext({"weights": tmp_path})
    with pytest.raises(KeyError, match=r"logged artifacts: 'weights'"):  # still a KeyError
        context.artifacts["vocab"]


def test_serving_a_model_that_cannot_load_exits_2(tmp_path: Path) -> None:
    home = tmp_path / "home"
    log_from(home, write_project(tmp_path / "project", bonus=0))
    env = {**os.environ, "SHIPYARD_HOME": str(home)}
    out = subprocess.run(
        [*SHIPYARD, "serve", "models:/sentiment/1", "--port", str(free_port())],  # no --trusted
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2, out.stderr
    assert out.stderr.count("\n") == 1, out.stderr  # one line, no traceback, never listened
    assert "models:/sentiment/1 cannot be served" in out.stderr
    assert "trusted=True (CLI: --trusted)" in out.stderr


def test_readiness_says_why_an_endpoint_cannot_load(tmp_home: Path, tmp_path: Path) -> None:
    import httpx

    from shipyard.config import get_settings
    from shipyard.serving.app import create_serving_app
    from shipyard.serving.http import BackgroundServer

    log_from(tmp_home, write_project(tmp_path / "project", bonus=0))
    app = create_serving_app(get_settings(), "models:/sentiment/1")  # not trusted
    with BackgroundServer(app) as srv:
        for _ in range(100):
            doc = httpx.get(f"{srv.url}/health/ready").json()
            if doc["endpoints"].get("sentiment") == "failed":
                break
            time.sleep(0.1)
        model = httpx.get(f"{srv.url}/v2/models/sentiment/ready")
    assert doc["endpoints"] == {"sentiment": "failed"}, doc
    assert "trusted=True (CLI: --trusted)" in doc["errors"]["sentiment"]
    assert model.status_code == 503 and model.json() == {
        "name": "sentiment",
        "ready": False,
        "state": "failed",
    }  # the error itself is in /health/ready and the model's metadata, not on this open route
