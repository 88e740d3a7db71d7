"""Several processes write to one SQLite file at once; every point arrives."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import shipyard as sy

WRITER = textwrap.dedent("""
    import sys
    import shipyard as sy
    from shipyard.config import Settings
    worker, points = int(sys.argv[1]), int(sys.argv[2])
    # small flush batches, so the writers interleave many transactions
    settings = Settings(metrics_flush_points=25, metrics_flush_seconds=0.01)
    with sy.start_run(experiment="concurrent", params={"worker": worker}, settings=settings) as run:
        for i in range(points):
            run.log_metric("m", float(i), step=i)
            if i % 50 == 0:
                run.set_tag("progress", str(i))
    print(run.id)
""")


@pytest.mark.slow
def test_processes_writing_one_sqlite_store_lose_nothing(tmp_home: Path) -> None:
    workers, points = 6, 600
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(w), str(points)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(workers)
    ]
    run_ids = []
    for p in procs:
        out, err = p.communicate(timeout=240)
        assert p.returncode == 0, err
        run_ids.append(out.strip())
    runs = sy.search_runs(experiments="concurrent")
    assert len(runs) == workers
    assert sorted(r.params["worker"] for r in runs) == [str(w) for w in range(workers)]
    for run_id in run_ids:
        history = sy.get_metric_history(run_id, "m")
        assert [p.step for p in history] == list(range(points))
        assert sy.get_run(run_id).metrics["m"] == points - 1


@pytest.mark.slow
def test_processes_registering_versions_get_unique_numbers(tmp_home: Path) -> None:
    code = textwrap.dedent("""
        from shipyard.stores import open_stores
        store = open_stores().metadata.models
        for _ in range(10):
            store.create_version("race", actor="p", flavor="sklearn", artifact_digest="a" * 64,
                                 signature=None, run_id=None)
    """)
    procs = [
        subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    from shipyard.stores import open_stores

    versions = [v.version for v in open_stores().metadata.models.list_versions("race")]
    assert versions == list(range(1, 41))
