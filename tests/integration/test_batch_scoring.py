"""Batch scoring: chunked, parallel, resumable, memory-bounded; predictions match the model."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import shipyard as sy
from shipyard.batch import score_files
from shipyard.config import Settings
from shipyard.errors import AlreadyExistsError, InvalidArgumentError


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'meta.db'}"


@pytest.fixture
def model(settings: Settings, breast_cancer, logreg) -> Any:  # type: ignore[no-untyped-def]
    X, _ = breast_cancer
    with sy.start_run(experiment="batch") as run:
        mv = run.log_model(logreg, name="bc", input_example=X[:5], onnx=False)
    sy.set_alias("bc", "champion", mv.version)
    return mv


def frame(n: int, seed: int = 0) -> pd.DataFrame:
    from sklearn.datasets import load_breast_cancer

    X = load_breast_cancer(as_frame=True).data
    rng = np.random.default_rng(seed)
    rows = X.iloc[rng.integers(0, len(X), n)].reset_index(drop=True)
    return rows.assign(id=np.arange(n))


def read_output(folder: Path) -> pd.DataFrame:
    parts = sorted(folder.glob("part-*.parquet"))
    return pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)


def test_scores_parquet_and_csv_in_chunks(
    settings: Settings,
    model: Any,
    logreg,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    data = tmp_path / "in"
    data.mkdir()
    a, b = frame(2500, 1), frame(1700, 2)
    a.to_parquet(data / "a.parquet")
    b.to_csv(data / "b.csv", index=False)
    seen: list[tuple[int, int | None]] = []
    result = score_files(
        settings,
        "bc@champion",
        data,
        tmp_path / "out",
        chunk_rows=1000,
        workers=2,
        keep=["id"],
        progress=lambda d, t: seen.append((d, t)),
    )
    assert (result.rows, result.files, result.chunks, result.skipped_chunks) == (4200, 2, 5, 0)
    out = read_output(tmp_path / "out")
    assert list(out.columns[:2]) == ["id", "_prediction"] and "_proba_1" in out.columns
    expected = np.r_[logreg.predict(a.drop(columns="id")), logreg.predict(b.drop(columns="id"))]
    np.testing.assert_array_equal(out["_prediction"].to_numpy(), expected)
    assert (out["_model_version"] == model.version).all()
    assert seen[-1][0] == 4200


def test_a_second_run_redoes_nothing_and_another_job_is_refused(
    settings: Settings, model: Any, tmp_path: Path
) -> None:
    frame(3000).to_parquet(tmp_path / "in.parquet")
    first = score_files(
        settings, "bc/1", tmp_path / "in.parquet", tmp_path / "out", chunk_rows=1000, workers=1
    )
    again = score_files(
        settings, "bc/1", tmp_path / "in.parquet", tmp_path / "out", chunk_rows=1000, workers=1
    )
    assert (first.skipped_chunks, again.skipped_chunks, again.rows) == (0, 3, 3000)
    with pytest.raises(AlreadyExistsError, match="another job"):
        score_files(settings, "bc/1", tmp_path / "in.parquet", tmp_path / "out", chunk_rows=500)
    with pytest.raises(InvalidArgumentError, match="no such file"):
        score_files(settings, "bc/1", tmp_path / "nope", tmp_path / "out2")
    with pytest.raises(InvalidArgumentError, match="no column"):
        score_files(settings, "bc/1", tmp_path / "in.parquet", tmp_path / "out3", keep=["zz"])


def test_a_rerun_removes_the_temporary_chunks_a_killed_run_left(
    settings: Settings, model: Any, tmp_path: Path
) -> None:
    frame(2000).to_parquet(tmp_path / "in.parquet")
    out = tmp_path / "out"
    out.mkdir()
    gone = [subprocess.Popen([sys.executable, "-c", "pass"]) for _ in range(2)]
    for p in gone:
        p.wait()
    stale = [out / f"part-00000-00000{i}.parquet.tmp-{p.pid}" for i, p in enumerate(gone)]
    others = [
        out / "part-00000-000000.parquet.tmp-mine",
        out / "notes.tmp-1",
        out / "keep.txt",
        out / f"part-00000-000001.parquet.tmp-{os.getpid()}",  # a live run's chunk in progress
    ]
    for path in [*stale, *others]:
        path.write_bytes(b"half a chunk")
    result = score_files(settings, "bc/1", tmp_path / "in.parquet", out, chunk_rows=1000, workers=1)
    assert (result.chunks, result.skipped_chunks, result.rows) == (2, 0, 2000)
    assert not any(p.exists() for p in stale)
    assert all(p.read_bytes() == b"half a chunk" for p in others)  # not ours: left alone


def _cli(settings: Settings, *args: str) -> list[str]:
    del settings
    return [sys.executable, "-m", "shipyard.cli.main", "batch", "score", *args]


@pytest.mark.slow
def test_a_crash_resumes_without_redoing_finished_chunks(
    settings: Settings, model: Any, tmp_path: Path
) -> None:
    frame(60_000).to_parquet(tmp_path / "in.parquet", row_group_size=2000)
    args = _cli(
        settings,
        "--model",
        "bc@champion",
        "--input",
        str(tmp_path / "in.parquet"),
        "--output",
        str(tmp_path / "out"),
        "--chunk-rows",
        "2000",
        "--workers",
        "1",
        "--json",
    )
    proc = subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    deadline = time.monotonic() + 120
    while len(list((tmp_path / "out").glob("part-*.parquet"))) < 3:
        assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the parent and its worker die mid-job
    proc.wait()
    written = len(list((tmp_path / "out").glob("part-*.parquet")))
    assert 3 <= written < 30
    done = subprocess.run(args, capture_output=True, text=True, check=True)
    result = json.loads(done.stdout)
    assert result["skipped_chunks"] >= written - 1 and result["rows"] == 60_000
    out = read_output(tmp_path / "out")
    assert len(out) == 60_000 and sorted(out["id"]) == list(range(60_000))


@pytest.mark.slow
def test_memory_stays_bounded_on_a_file_larger_than_the_cap(
    settings: Settings, model: Any, tmp_path: Path
) -> None:
    """The scoring process never holds the file: its peak memory grows far less than the
    file's size in memory."""
    big = frame(1_000_000)
    in_memory = big.memory_usage(deep=True).sum()  # ~250 MB
    big.to_parquet(tmp_path / "big.parquet", row_group_size=50_000)
    frame(1000).to_parquet(tmp_path / "small.parquet")
    del big

    def peak(path: Path, out: str) -> int:
        code = (
            "import resource, sys\nfrom shipyard.cli.main import main\nsys.argv=sys.argv[1:]\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)"
        )
        done = subprocess.run(
            [
                sys.executable,
                "-c",
                code,
                "shipyard",
                "batch",
                "score",
                "--model",
                "bc@champion",
                "--input",
                str(path),
                "--output",
                str(tmp_path / out),
                "--chunk-rows",
                "50000",
                "--workers",
                "2",
                "--keep",
                "id",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        return int(done.stderr.strip().splitlines()[-1]) * 1024

    baseline = peak(tmp_path / "small.parquet", "o1")
    scored = peak(tmp_path / "big.parquet", "o2")
    assert scored - baseline < in_memory / 2, (baseline, scored, in_memory)
    assert len(read_output(tmp_path / "o2")) == 1_000_000
