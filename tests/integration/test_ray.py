"""The Ray executor gives the same results as the local one: pipeline steps and sweeps as Ray
tasks, batch scoring on Ray Data. Ray starts once for this module (~10 s, ~800 MB), in a
temp dir of its own, and every test here runs on one xdist worker."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import shipyard as sy
from shipyard.batch import score_files
from shipyard.config import Settings
from shipyard.stores import open_stores
from tests.integration import test_pipelines as tp

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'shipyard[ray]')")

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("ray")]


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    from shipyard.pipelines.executors import init_ray

    temp = Path("/tmp") / f"sy-ray-{tmp_path_factory.getbasetemp().name}"  # short: socket paths
    init_ray(Settings(home=tmp_path_factory.mktemp("ray-home"), ray_temp_dir=temp))
    yield
    ray.shutdown()


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'meta.db'}"


def test_pipeline_on_ray_matches_local_output_for_output(
    ray_cluster: None, settings: Settings
) -> None:
    module = [sys.modules[tp.__name__]]
    local = tp.training.run(params={"rows": 500}, cache=False)
    on_ray = tp.training.run(params={"rows": 500}, cache=False, executor="ray", modules=module)
    assert on_ray.executor == "ray" and on_ray.status == "FINISHED"
    assert {n: on_ray.digest(n) for n in local.steps} == {n: local.digest(n) for n in local.steps}
    child = sy.get_run(on_ray.steps["fit"].run_id)
    assert child.metrics["train_rows"] == 350  # metrics logged inside the Ray task arrive

    failed = tp.broken.run(executor="ray", raise_on_failure=False, modules=module)
    assert failed.failed_step == "explode" and failed.steps["score"].status == "SKIPPED"
    assert "column 'a' is all wrong" in (failed.error or "")


@sy.step
def register_on_worker(rows: int) -> int:
    import numpy as np

    from shipyard.tracking import start_run
    from tests.integration._models import Constant

    with start_run(experiment="from-ray") as run:
        mv = run.log_model(
            Constant(1), name="made-on-ray", input_example=np.zeros((2, 3)), serialization="pickle"
        )
    return int(mv.version)


@sy.Pipeline
def registering(rows: int = 3) -> object:
    return register_on_worker(rows)


def test_a_step_on_ray_writes_to_the_drivers_stores(ray_cluster: None, settings: Settings) -> None:
    result = registering.run(executor="ray", cache=False, modules=[sys.modules[__name__]])
    assert result.value == 1
    assert sy.Registry(open_stores(settings)).resolve("models:/made-on-ray/1").version == 1


def test_sweep_on_ray_matches_local(ray_cluster: None, settings: Settings) -> None:
    module = [sys.modules[tp.__name__]]
    grid = {"C": [0.05, 5.0]}
    local = tp.training.sweep(grid, params={"rows": 300}, cache=False)
    on_ray = tp.training.sweep(
        grid, params={"rows": 300}, cache=False, executor="ray", modules=module
    )
    for a, b in zip(local, on_ray, strict=True):
        assert a.params == b.params
        assert a.value["score"] == b.value["score"]
        assert a.digest("fit") == b.digest("fit")


def test_batch_scoring_on_ray_data_matches_local(
    ray_cluster: None, settings: Settings, breast_cancer: Any, logreg: Any, tmp_path: Path
) -> None:
    from tests.integration.test_batch_scoring import frame, read_output

    X, _ = breast_cancer
    with sy.start_run(experiment="batch") as run:
        run.log_model(logreg, name="bc", input_example=X[:5], onnx=False)
    data = tmp_path / "in"
    data.mkdir()
    frame(3000, 1).to_parquet(data / "a.parquet")
    frame(1200, 2).to_csv(data / "b.csv", index=False)
    local = score_files(settings, "bc/1", data, tmp_path / "local", chunk_rows=700, workers=1)
    on_ray = score_files(
        settings, "bc/1", data, tmp_path / "ray", chunk_rows=700, workers=2, executor="ray"
    )
    assert on_ray.rows == local.rows == 4200
    a, b = read_output(tmp_path / "local"), read_output(tmp_path / "ray")
    pd.testing.assert_frame_equal(a, b, check_dtype=False)
    # a rerun skips the finished files
    again = score_files(
        settings, "bc/1", data, tmp_path / "ray", chunk_rows=700, workers=2, executor="ray"
    )
    assert again.skipped_chunks == 2 and again.rows == 4200 and again.chunks == 2
