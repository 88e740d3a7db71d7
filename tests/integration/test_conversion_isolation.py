"""A model whose ONNX conversion crashes the converter must not crash the process that
resumed the conversion: every `shipyard serve` on the store resumes pending conversions in the
background (red team finding 2). The crash is real: a `sitecustomize` put on the server's
PYTHONPATH kills with SIGSEGV whichever process imports the booster converter (onnxmltools),
as a hostile model crashing the converter would. (A scikit-learn model saved with skops
converts in-process: loading and converting it run Python only.)"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from shipyard.config import Settings
from shipyard.registry import Registry
from shipyard.stores import Stores
from shipyard.stores import schema as t
from tests.helpers import SHIPYARD, free_port, wait_ready

_CRASH_ON_CONVERTER = """
import importlib.abc, os, signal, sys

class _Crash(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "onnxmltools":
            os.kill(os.getpid(), signal.SIGSEGV)
        return None

sys.meta_path.insert(0, _Crash())
"""


def _pending(stores: Stores, model: Any, X: Any) -> int:
    """A version waiting for its conversion, claimed by no process."""
    mv = Registry(stores).register("churn", model, input_example=X[:5], onnx=False)
    c = t.model_versions.c
    with stores.metadata.db.write() as conn:
        conn.execute(
            t.model_versions.update()
            .where(c.name == "churn", c.version == mv.version)
            .values(onnx_status="pending", onnx_claimed_by=None, onnx_attempts=0)
        )
    return mv.version  # type: ignore[no-any-return]


def _status(stores: Stores, version: int) -> tuple[str, str | None]:
    c = t.model_versions.c
    with stores.metadata.db.read() as conn:
        row = conn.execute(
            sa.select(c.onnx_status, c.onnx_detail).where(c.name == "churn", c.version == version)
        ).one()
    return row.onnx_status, row.onnx_detail


def test_a_converter_crash_fails_the_version_not_the_server(
    settings: Settings, stores: Stores, breast_cancer: Any, logreg: Any, tmp_path: Path
) -> None:
    from xgboost import XGBClassifier

    X, y = breast_cancer
    served = Registry(stores).register("churn", logreg, input_example=X[:5], onnx=False).version
    booster = XGBClassifier(n_estimators=5, max_depth=2).fit(X, y)
    crashy = _pending(stores, booster, X)
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(_CRASH_ON_CONVERTER)
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(hook), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.Popen(
        [*SHIPYARD, "serve", f"models:/churn/{served}", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, proc, timeout=120)
        deadline = time.monotonic() + 120
        while _status(stores, crashy)[0] == "pending" and time.monotonic() < deadline:
            assert proc.poll() is None, f"the server died: {proc.returncode}"
            time.sleep(0.5)
        status, detail = _status(stores, crashy)
        assert status == "failed" and "the converter crashed (signal 11" in str(detail)
        assert proc.poll() is None, f"the server died: {proc.returncode}"
        answer = httpx.post(
            f"{url}/endpoints/churn/predict", json={"instances": X[:2].to_dict("records")}
        )
        assert answer.status_code == 200, answer.text
    finally:
        proc.terminate()
        proc.wait(timeout=30)
