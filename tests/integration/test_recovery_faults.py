"""Faults with a real SIGKILL, on SQLite and PostgreSQL: a child process runs `log_model`, a
registration, a metric flush, an alias move, an artifact write, a materialize or a batch-scoring
job and is killed at a chosen point (the child's own test code pauses there and drops a marker
file; nothing in shipyard knows about it). After the kill and `shipyard admin doctor`: no
half-registered version, no artifact whose digest does not match, every acknowledged metric
present, the conversion resumed, the run marked failed, the temporary files gone; a rerun of
the materialize or the scoring job gives exactly what one clean run gives."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import shipyard as sy
from shipyard.config import Settings
from shipyard.errors import NotFoundError
from shipyard.registry import Registry
from shipyard.stores import Stores
from shipyard.stores.artifacts import file_digest
from shipyard.tracking.doctor import doctor

pytestmark = pytest.mark.slow

# Test-only code of the child: pause (and say so with a marker file) at the next commit once
# armed, or wherever the scenario calls pause(); the parent kills the child there.
PRELUDE = """
import os, pathlib, sys, time
import sqlalchemy as sa
from sqlalchemy import event

MARK = pathlib.Path(os.environ["FAULT_MARKER"])
ARMED = []

def pause(note):
    MARK.write_text(note)
    time.sleep(600)

@event.listens_for(sa.engine.Engine, "commit")
def _before_commit(conn):
    if ARMED:
        pause("commit")

def ack(name, value=""):
    pathlib.Path(os.environ["FAULT_ACKS"], name).write_text(str(value))

def small_model():
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    return LogisticRegression(max_iter=200).fit(X, y), X
"""


def kill_at_marker(tmp_path: Path, body: str, timeout: float = 180, group: bool = False) -> Path:
    """Run PRELUDE + body in a child; SIGKILL it once it drops its marker (`group`: the child
    and every process it started, e.g. a pool's workers). Returns the folder of its
    acknowledgements (what it saw committed before the kill)."""
    marker, acks = tmp_path / "marker", tmp_path / "acks"
    acks.mkdir()
    log = tmp_path / "child.log"
    env = {**os.environ, "FAULT_MARKER": str(marker), "FAULT_ACKS": str(acks)}
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", PRELUDE + textwrap.dedent(body)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=group,
        )
        deadline = time.monotonic() + timeout
        while not marker.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                os.killpg(proc.pid, signal.SIGKILL) if group else proc.kill()
                proc.wait()
                pytest.fail(f"the child never reached its kill point:\n{log.read_text()}")
            time.sleep(0.05)
        if group:
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    if group:
        wait_group_gone(proc.pid)
    return acks


def wait_group_gone(pgid: int, timeout: float = 30) -> None:
    """Wait until every process of group `pgid` has exited (zombies count as exited): SIGKILL
    is delivered at once, but a killed worker may still be tearing down when its parent has
    been reaped, and until then it looks alive to the code under test."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                text = stat.read_text()
            except OSError:
                continue
            fields = text[text.rindex(")") + 2 :].split()
            if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
                alive.append(stat.parent.name)
        if not alive:
            return
        time.sleep(0.05)
    pytest.fail(f"processes {alive} of the killed group {pgid} still run after {timeout} s")


def assert_artifacts_intact(settings: Settings) -> None:
    root = Path(settings.resolved_artifacts) / "sha256"
    files = [p for p in root.glob("*/*") if p.is_file()]
    assert files
    for path in files:
        assert file_digest(path) == path.name, f"{path} does not match its digest"


def test_kill_during_log_model_conversion(settings: Settings, stores: Stores, tmp_path) -> None:  # type: ignore[no-untyped-def]
    acks = kill_at_marker(
        tmp_path,
        """
        import shipyard as sy
        import shipyard.flavors as flavors
        from shipyard.registry import Registry

        flavors.convert_saved = lambda *a, **k: pause("converting")  # dies mid-conversion
        model, X = small_model()
        run = sy.start_run(experiment="faults")
        ack("run", run.id)
        for step in range(50):
            run.log_metric("loss", 1.0 / (step + 1), step=step)
        run.flush()
        ack("metrics", 50)
        mv = run.log_model(model, name="churn", input_example=X[:5])
        ack("version", mv.version)
        Registry.wait_for_conversions()
        """,
    )
    run_id = (acks / "run").read_text()
    assert (acks / "version").read_text() == "1"
    assert sy.get_run(run_id).status == "RUNNING"
    assert Registry(stores).resolve("models:/churn/1").onnx_status == "pending"
    report = doctor(settings)
    assert [(r.run_id, r.action) for r in report.runs] == [(run_id, "failed")]
    assert [(c.version, c.action) for c in report.conversions] == [(1, "converted")]
    run = sy.get_run(run_id)
    assert run.status == "FAILED" and (run.error or "").startswith("process gone (")
    history = stores.metadata.runs.metric_history(run_id, "loss")
    assert [p.step for p in history] == list(range(50))  # every acknowledged point
    mv = Registry(stores).resolve("models:/churn/1")
    assert mv.onnx_status == "ok"
    model = Registry(stores).load("models:/churn/1")
    assert model.backend == "onnxruntime"
    assert_artifacts_intact(settings)
    assert doctor(settings).healthy


def test_kill_inside_the_registration_transaction(
    settings: Settings, stores: Stores, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    kill_at_marker(
        tmp_path,
        """
        from shipyard.registry import Registry
        from shipyard.stores import open_stores

        model, X = small_model()
        stores = open_stores()
        registry = Registry(stores)
        create = stores.metadata.models.create_version
        def create_then_die(*a, **k):
            ARMED.append(1)  # the version's transaction pauses at its commit
            return create(*a, **k)
        stores.metadata.models.create_version = create_then_die
        registry.register("churn", model, input_example=X[:5])
        """,
    )
    with pytest.raises(NotFoundError):  # nothing half-registered: not even the model
        Registry(stores).get_model("churn")
    assert stores.metadata.recovery.pending_conversions() == []
    assert_artifacts_intact(settings)  # saved before the transaction, whole
    report = doctor(settings)
    assert report.healthy and report.conversions == []
    from sklearn.linear_model import LogisticRegression

    X = [[0.0, 1.0], [1.0, 0.0], [0.5, 0.5], [1.0, 1.0]]
    model = LogisticRegression().fit(X, [0, 1, 0, 1])
    mv = Registry(stores).register("churn", model, input_example=X, onnx=False)
    assert mv.version == 1  # numbering stays dense


def test_kill_inside_a_metric_flush(settings: Settings, stores: Stores, tmp_path) -> None:  # type: ignore[no-untyped-def]
    acks = kill_at_marker(
        tmp_path,
        """
        import shipyard as sy

        run = sy.start_run(experiment="faults")
        ack("run", run.id)
        run.log_metrics({"acked": 1.0, "other": 2.0}, step=1)
        run.flush()
        ack("flushed")
        for step in range(2, 200):
            run.log_metrics({"acked": float(step), "other": 0.0}, step=step)
        ARMED.append(1)
        run.flush()
        """,
    )
    run_id = (acks / "run").read_text()
    assert (acks / "flushed").exists()
    history = stores.metadata.runs.metric_history(run_id, "acked")
    assert [(p.step, p.value) for p in history] == [(1, 1.0)]  # the acked batch, whole; no more
    assert sy.get_run(run_id).metrics == {"acked": 1.0, "other": 2.0}
    report = doctor(settings)
    assert [(r.run_id, r.action) for r in report.runs] == [(run_id, "failed")]


def test_kill_inside_an_alias_move(settings: Settings, stores: Stores, tmp_path) -> None:  # type: ignore[no-untyped-def]
    kill_at_marker(
        tmp_path,
        """
        from shipyard.registry import Registry
        from shipyard.stores import open_stores

        model, X = small_model()
        registry = Registry(open_stores())
        for _ in range(2):
            registry.register("churn", model, input_example=X[:5], onnx=False)
        registry.set_alias("churn", "champion", 1)
        ARMED.append(1)
        registry.set_alias("churn", "champion", 2, reason="promote")
        """,
    )
    registry = Registry(stores)
    assert registry.resolve("models:/churn@champion").version == 1
    moves = [e for e in registry.audit("churn") if e.action == "alias.set"]
    assert [e.after["version"] for e in moves] == [1]  # the audit agrees with the alias
    assert [v.version for v in registry.list_versions("churn")] == [1, 2]
    registry.set_alias("churn", "champion", 2)
    assert registry.resolve("models:/churn@champion").version == 2
    assert doctor(settings).healthy


def test_kill_during_an_artifact_write(settings: Settings, stores: Stores, tmp_path) -> None:  # type: ignore[no-untyped-def]
    kill_at_marker(
        tmp_path,
        """
        import io
        from shipyard.stores import open_stores

        class Trickle(io.RawIOBase):
            chunks = 0
            def readable(self):
                return True
            def read(self, n=-1):
                self.chunks += 1
                if self.chunks == 3:
                    pause("writing")
                return b"x" * (1 << 20)

        stores = open_stores()
        stores.artifacts.put_bytes(b"a whole artifact")
        stores.artifacts.put_stream(Trickle())
        """,
    )
    tmp = Path(settings.resolved_artifacts) / "tmp"
    left = list(tmp.iterdir())
    assert len(left) == 1 and left[0].stat().st_size == 2 << 20  # half written, not renamed
    assert_artifacts_intact(settings)  # only whole artifacts under their digest
    assert doctor(settings).temp_files == []  # within the grace period: could be in flight
    report = doctor(settings, grace_seconds=0)
    assert [(f.path, f.action) for f in report.temp_files] == [(str(left[0]), "removed")]
    assert list(tmp.iterdir()) == []
    assert doctor(settings, grace_seconds=0).healthy


# -- a materialize ------------------------------------------------------------------------------

DRIVERS = 3000  # three Redis script chunks; progress reported at 1000, 2000, 3000 records
VIEW_TABLE = "driver_stats@1"


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def online_spec(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Where the online store is, as text a child process can be given: "sqlite <path>" or
    "redis <url> <key prefix>" (a fresh prefix, deleted afterwards)."""
    if request.param == "sqlite":
        yield f"sqlite {tmp_path / 'online.db'}"
        return
    url = os.environ.get("SHIPYARD_TEST_REDIS_URL")
    if not url:
        pytest.skip("SHIPYARD_TEST_REDIS_URL is not set (e.g. redis://127.0.0.1:6379/0)")
    prefix = f"faults-{uuid.uuid4().hex[:8]}"
    yield f"redis {url} {prefix}"
    store = open_online(f"redis {url} {prefix}")
    for key in store.client.scan_iter(f"{prefix}:*"):
        store.client.delete(key)
    store.close()


def open_online(spec: str) -> Any:
    from shipyard.stores.online import RedisOnlineStore, SqliteOnlineStore

    kind, *where = spec.split()
    if kind == "sqlite":
        return SqliteOnlineStore(where[0])
    return RedisOnlineStore(where[0], prefix=where[1])


def feature_repo(path: Path, now: pd.Timestamp) -> list[Any]:
    """Every driver has values 30 h and 20 h ago; two in three also 10 h and 5 h ago."""
    from shipyard.features import Entity, FeatureView, Source

    ids = np.arange(DRIVERS)
    parts = []
    for hours in (30, 20, 10, 5):
        sel = ids if hours > 15 else ids[ids % 3 != 0]
        parts.append(
            pd.DataFrame(
                {
                    "driver_id": sel,
                    "event_timestamp": now - pd.Timedelta(hours=hours),
                    "trips": sel * 10 + hours,
                    "rating": sel / 1000 + hours / 100,
                }
            )
        )
    pd.concat(parts, ignore_index=True).to_parquet(path)
    driver = Entity("driver", ["driver_id"])
    stats = FeatureView(
        "driver_stats",
        entity=driver,
        source=Source.parquet(path),
        features={"trips": "long", "rating": "double"},
        ttl=dt.timedelta(days=2),
    )
    return [driver, stats]


def online_contents(online: Any) -> tuple[int, list[bytes | None]]:
    """The stored record of every driver, byte for byte, and how many records there are."""
    return online.count(VIEW_TABLE), online.read(VIEW_TABLE, [str(d) for d in range(DRIVERS)])


@pytest.mark.parametrize("point", ["online-write", "state-commit"])
def test_kill_during_a_materialize(  # type: ignore[no-untyped-def]
    settings: Settings, stores: Stores, online_spec: str, point: str, tmp_path
) -> None:
    """Killed with the online write half sent (SQLite: 1000 of 3000 rows inserted in its
    transaction; Redis: MULTI and part of the scripts on the wire, no EXEC) or inside the
    commit that records the new state: the state never runs ahead of the online values, and a
    rerun leaves exactly what one clean run gives."""
    from shipyard.features import FeatureStore

    now = pd.Timestamp.now(tz="UTC").floor("s").tz_localize(None)
    first_end = now - pd.Timedelta(hours=15)
    repo = feature_repo(tmp_path / "stats.parquet", now)
    clean_home = tmp_path / "clean"
    clean = FeatureStore(
        Settings(home=clean_home, db_url=f"sqlite:///{tmp_path / 'clean.db'}", user="tester"),
        online=open_online(f"sqlite {clean_home / 'online.db'}"),
    )
    clean.apply(repo)
    assert clean.materialize(end=now) == {"driver_stats": DRIVERS}
    expected = online_contents(clean.online)
    fs = FeatureStore(settings, stores=stores, online=open_online(online_spec))
    fs.apply(repo)
    assert fs.materialize(end=first_end) == {"driver_stats": DRIVERS}
    before = online_contents(fs.online)
    assert before != expected
    kill_at_marker(
        tmp_path,
        f"""
        import pandas as pd
        from shipyard.features import FeatureStore
        from shipyard.stores.online import RedisOnlineStore, SqliteOnlineStore

        kind, *where = {online_spec!r}.split()
        if kind == "sqlite":
            online = SqliteOnlineStore(where[0])
        else:
            online = RedisOnlineStore(where[0], prefix=where[1])
        fs = FeatureStore(online=online)
        progress = None
        if {point!r} == "state-commit":
            record = fs.stores.metadata.features.record_materialization
            def record_then_die(*a, **k):
                ARMED.append(1)  # the state's transaction pauses at its commit
                return record(*a, **k)
            fs.stores.metadata.features.record_materialization = record_then_die
        elif kind == "sqlite":  # records are inserted as produced, inside the transaction
            progress = lambda view, done, total: pause("writing")
        else:  # send half of MULTI ... EXEC, then die
            from redis.connection import AbstractConnection
            send = AbstractConnection.send_packed_command
            def send_half(self, command, check_health=True):
                data = b"".join(command) if isinstance(command, list) else command
                if data.startswith(b"*1\\r\\n$5\\r\\nMULTI"):
                    send(self, [data[: len(data) // 2]], check_health)
                    pause("sending")
                return send(self, command, check_health)
            AbstractConnection.send_packed_command = send_half
        fs.materialize(end=pd.Timestamp({str(now)!r}), progress=progress)
        """,
    )
    features = stores.metadata.features
    first_ms = int(first_end.tz_localize("UTC").timestamp() * 1000)
    assert features.materialized_until("driver_stats", 1) == first_ms  # never ahead
    after_kill = online_contents(open_online(online_spec))
    if point == "online-write":
        assert after_kill == before  # nothing of the killed write is visible
    else:
        assert after_kill == expected  # the write is whole; only its state did not move
    restarted = FeatureStore(settings, online=open_online(online_spec))
    assert restarted.materialize(end=now) == {"driver_stats": DRIVERS * 2 // 3}
    assert online_contents(restarted.online) == expected
    assert features.materialized_until("driver_stats", 1) == int(
        now.tz_localize("UTC").timestamp() * 1000
    )
    assert restarted.materialize(end=now) == {"driver_stats": 0}


# -- a batch-scoring chunk ----------------------------------------------------------------------


def test_kill_during_a_batch_scoring_chunk(  # type: ignore[no-untyped-def]
    settings: Settings, stores: Stores, breast_cancer, logreg, tmp_path
) -> None:
    """The job (its parent and both workers, one process group) is killed while workers hold
    written but unrenamed chunks; a rerun skips the finished chunks, leaves no temporary file
    and gives the clean run's output row for row."""
    from shipyard.batch import score_files

    X, _ = breast_cancer
    Registry(stores).register("bc", logreg, input_example=X[:5], onnx=False)
    rng = np.random.default_rng(0)
    rows = X.iloc[rng.integers(0, len(X), 12_000)].reset_index(drop=True)
    rows.assign(id=np.arange(len(rows))).to_parquet(tmp_path / "in.parquet", row_group_size=1000)
    args = dict(chunk_rows=1000, workers=2, keep=["id"])
    clean = score_files(settings, "bc/1", tmp_path / "in.parquet", tmp_path / "clean", **args)
    assert (clean.chunks, clean.rows) == (12, 12_000)
    out = tmp_path / "out"
    acks = kill_at_marker(
        tmp_path,
        f"""
        import re
        from shipyard.batch import scoring
        from shipyard.config import get_settings

        pick = scoring._worker_context
        def context():
            ctx = pick()
            ack("context", ctx.get_start_method())
            return ctx
        scoring._worker_context = context
        write = scoring.write_parquet  # the forked workers call this one
        def write_then_die(table, path):
            write(table, path)
            if int(re.search(r"-(\\d{{6}})\\.parquet", path).group(1)) >= 5:
                pause("chunk written, not renamed")
        scoring.write_parquet = write_then_die
        scoring.score_files(
            get_settings(), "bc/1", {str(tmp_path / "in.parquet")!r}, {str(out)!r}, **{args!r}
        )
        """,
        group=True,
    )
    assert (acks / "context").read_text() == "fork"  # so the workers ran the patched writer
    finished = sorted(p.name for p in out.glob("part-*.parquet"))
    stale = sorted(p.name for p in out.glob("*.tmp-*"))
    assert 3 <= len(finished) < 12 and stale  # killed mid-job, with chunks half done
    again = score_files(settings, "bc/1", tmp_path / "in.parquet", out, **args)
    assert (again.chunks, again.skipped_chunks, again.rows) == (12, len(finished), 12_000)
    assert list(out.glob("*.tmp-*")) == []
    names = sorted(p.name for p in out.glob("part-*.parquet"))
    assert names == sorted(p.name for p in (tmp_path / "clean").glob("part-*.parquet"))
    for name in names:
        pd.testing.assert_frame_equal(
            pd.read_parquet(out / name), pd.read_parquet(tmp_path / "clean" / name)
        )
