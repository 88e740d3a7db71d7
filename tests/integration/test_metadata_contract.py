"""The metadata store contract, run on SQLite and on PostgreSQL (the `db_url` fixture)."""

from __future__ import annotations

import math
import threading

import pytest
import sqlalchemy as sa

from shipyard.errors import AlreadyExistsError, InvalidArgumentError, NotFoundError
from shipyard.stores import MetadataStore, database
from shipyard.stores.records import ArtifactRecord, Clause, DatasetRecord, MetricPoint, OrderKey


@pytest.fixture
def store(db_url: str) -> MetadataStore:
    return MetadataStore(db_url)


def test_migrations_run_on_first_use_and_only_once(store: MetadataStore, db_url: str) -> None:
    store.runs.list_experiments()
    engine = sa.create_engine(db_url)
    with engine.connect() as conn:
        version = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
        assert version == database.HEAD_REVISION
        tables = set(sa.inspect(conn).get_table_names())
    engine.dispose()
    assert {
        "runs",
        "metrics",
        "latest_metrics",
        "model_versions",
        "aliases",
        "audit_events",
        "endpoints",
        "datasets",
        "pipeline_runs",
        "step_runs",
        "step_outputs",
        "model_gates",
        "gate_reports",
    } <= tables
    again = MetadataStore(db_url)  # a second process opening the same database
    assert again.runs.list_experiments() == []
    again.close()


def test_run_lifecycle(store: MetadataStore) -> None:
    run_id = store.runs.create_run(
        experiment="exp",
        name="first",
        user="u",
        params={"C": 1.0, "model": "rf"},
        tags={"team": "a"},
    )
    store.runs.log_batch(
        run_id,
        metrics=[
            MetricPoint("loss", 0.5, 0, 1),
            MetricPoint("loss", 0.25, 1, 2),
            MetricPoint("auc", math.nan, 0, 1),
        ],
    )
    store.runs.end_run(run_id, "FINISHED")
    run = store.runs.get_run(run_id)
    assert run.status == "FINISHED" and run.end_time is not None
    assert run.params == {"C": "1.0", "model": "rf"}
    assert run.tags == {"team": "a"}
    assert run.metrics["loss"] == 0.25
    assert math.isnan(run.metrics["auc"])
    assert [p.value for p in store.runs.metric_history(run_id, "loss")] == [0.5, 0.25]
    assert store.runs.get_run(run_id[:10]).id == run_id  # a unique prefix is enough


def test_latest_metric_is_the_highest_step_not_the_last_written(store: MetadataStore) -> None:
    run_id = store.runs.create_run(experiment="exp", name=None, user="u")
    store.runs.log_batch(run_id, metrics=[MetricPoint("acc", 0.9, 5, 10)])
    store.runs.log_batch(run_id, metrics=[MetricPoint("acc", 0.1, 2, 20)])
    assert store.runs.get_run(run_id).metrics["acc"] == 0.9


def test_params_are_immutable_and_a_failed_batch_changes_nothing(store: MetadataStore) -> None:
    run_id = store.runs.create_run(experiment="exp", name=None, user="u", params={"C": 1})
    store.runs.log_batch(run_id, params={"C": 1})  # same value: fine
    with pytest.raises(InvalidArgumentError, match="immutable"):
        store.runs.log_batch(run_id, metrics=[MetricPoint("m", 1.0, 0, 0)], params={"C": 2})
    run = store.runs.get_run(run_id)
    assert run.params == {"C": "1"}
    assert run.metrics == {}  # the metric of the refused batch did not land


def test_unknown_run(store: MetadataStore) -> None:
    with pytest.raises(NotFoundError):
        store.runs.get_run("f" * 32)
    with pytest.raises(NotFoundError):
        store.runs.log_batch("f" * 32, metrics=[MetricPoint("m", 1.0, 0, 0)])


def test_search(store: MetadataStore) -> None:
    ids = {}
    for i, (model, auc) in enumerate([("rf", 0.95), ("rf", 0.85), ("lr", 0.97), ("rf", 0.92)]):
        rid = store.runs.create_run(
            experiment="search", name=f"r{i}", user="u", params={"model": model}, tags={"i": str(i)}
        )
        store.runs.log_batch(rid, metrics=[MetricPoint("auc", auc, 0, 0)])
        ids[i] = rid
    store.runs.create_run(experiment="other", name="x", user="u", params={"model": "rf"})
    found = store.runs.search_runs(
        experiments=["search"],
        clauses=[Clause("metrics", "auc", ">", 0.9), Clause("params", "model", "=", "rf")],
        order_by=[OrderKey("metrics", "auc", descending=True)],
    )
    assert [r.id for r in found] == [ids[0], ids[3]]
    by_auc = store.runs.search_runs(experiments=["search"], order_by=[OrderKey("metrics", "auc")])
    assert [r.metrics["auc"] for r in by_auc] == [0.85, 0.92, 0.95, 0.97]
    assert len(store.runs.search_runs(clauses=[Clause("params", "model", "IN", ("lr",))])) == 1
    assert len(store.runs.search_runs(clauses=[Clause("params", "model", "LIKE", "r%")])) == 4
    assert len(store.runs.search_runs(clauses=[Clause("params", "model", "ILIKE", "R%")])) == 4
    assert (
        len(store.runs.search_runs(clauses=[Clause("attributes", "experiment", "=", "other")])) == 1
    )
    assert len(store.runs.search_runs(experiments=["search"], limit=2)) == 2
    # runs without the metric sort last either way
    rid = store.runs.create_run(experiment="search", name="none", user="u")
    assert (
        store.runs.search_runs(
            experiments=["search"], order_by=[OrderKey("metrics", "auc", descending=True)]
        )[-1].id
        == rid
    )


def test_injection_attempts_are_just_values(store: MetadataStore) -> None:
    store.runs.create_run(experiment="exp", name=None, user="u", params={"p": "x"})
    evil = "x' OR '1'='1"
    assert store.runs.search_runs(clauses=[Clause("params", "p", "=", evil)]) == []
    assert len(store.runs.search_runs()) == 1


def test_datasets_and_artifacts(store: MetadataStore) -> None:
    rid = store.runs.create_run(experiment="exp", name=None, user="u")
    ds = DatasetRecord(
        "a" * 64, "train", {"x": "float64"}, 10, {"rows": 10, "columns": {}}, "train"
    )
    store.runs.log_dataset(rid, ds)
    store.runs.log_dataset(rid, ds)  # idempotent
    store.runs.log_artifact(rid, ArtifactRecord("report.html", "b" * 64, 42))
    run = store.runs.get_run(rid)
    assert run.datasets == (ds,)
    assert run.artifacts == (ArtifactRecord("report.html", "b" * 64, 42),)
    assert store.runs.get_dataset("a" * 64).rows == 10


def test_versions_aliases_and_audit(store: MetadataStore) -> None:
    models = store.models
    v1 = models.create_version(
        "churn",
        actor="alice",
        flavor="sklearn",
        artifact_digest="a" * 64,
        signature={"inputs": []},
        run_id=None,
    )
    v2 = models.create_version(
        "churn",
        actor="bob",
        flavor="sklearn",
        artifact_digest="b" * 64,
        signature=None,
        run_id=None,
        tags={"onnx": "ok"},
    )
    assert (v1.version, v2.version) == (1, 2)
    assert v2.tags == {"onnx": "ok"}
    models.set_alias("churn", "champion", 1, actor="alice", reason="first")
    models.set_alias("churn", "champion", 2, actor="bob", reason="better")
    assert models.resolve_alias("churn", "champion") == 2
    assert models.get_version("churn", 2).aliases == ("champion",)
    assert models.get_model("churn").aliases == {"champion": 2}
    models.delete_alias("churn", "champion", actor="carol", reason="retired")
    with pytest.raises(NotFoundError):
        models.resolve_alias("churn", "champion")
    events = store.audit.list(subject_prefix="churn")
    assert [e.action for e in events][:3] == ["alias.delete", "alias.set", "alias.set"]
    assert events[1].before == {"alias": "champion", "version": 1}
    assert events[1].after == {"alias": "champion", "version": 2}
    assert (events[1].actor, events[1].reason) == ("bob", "better")
    assert {e.action for e in events} >= {"model.create", "version.register"}


def test_the_registry_summary_reads(store: MetadataStore) -> None:
    """What the registry's pages read in one query each: approval counts per model, each
    version's latest gate result, the versions carrying a tag value."""
    models = store.models
    for name, tags in (("churn", {}), ("churn", {"optimize_parent": "1"}), ("fraud", {})):
        models.create_version(
            name,
            actor="a",
            flavor="sklearn",
            artifact_digest="c" * 64,
            signature=None,
            run_id=None,
            tags=tags,
        )
    models.set_approval("churn", 1, state="approved", reviewer="r", comment="", actor="a")
    assert models.approval_counts() == {
        "churn": {"approved": 1, "pending": 1},
        "fraud": {"pending": 1},
    }
    assert models.versions_tagged("churn", "optimize_parent", "1") == [2]
    assert models.versions_tagged("churn", "optimize_parent", "2") == []
    gates = store.gates
    assert gates.latest_results("churn") == {}
    gates.record_report("churn", 1, passed=True, report={}, actor="a")
    gates.record_report("churn", 1, passed=False, report={}, actor="a")
    gates.record_report("churn", 2, passed=True, report={}, actor="a")
    results = gates.latest_results("churn")
    assert {v: passed for v, (passed, _) in results.items()} == {1: False, 2: True}


def test_registry_errors_leave_state_alone(store: MetadataStore) -> None:
    store.models.create_version(
        "churn", actor="a", flavor="sklearn", artifact_digest="a" * 64, signature=None, run_id=None
    )
    before = len(store.audit.list())
    with pytest.raises(NotFoundError, match="did you mean 'churn'"):
        store.models.get_model("chrun")
    with pytest.raises(NotFoundError, match="no version 7"):
        store.models.set_alias("churn", "champion", 7, actor="a")
    with pytest.raises(InvalidArgumentError, match="not valid"):
        store.models.set_alias("churn", "12", 1, actor="a")
    with pytest.raises(AlreadyExistsError):
        store.models.create_model("churn", actor="a")
    assert len(store.audit.list()) == before


def test_version_numbers_stay_unique_under_concurrent_registration(store: MetadataStore) -> None:
    errors: list[BaseException] = []

    def register() -> None:
        try:
            for _ in range(5):
                store.models.create_version(
                    "race",
                    actor="t",
                    flavor="sklearn",
                    artifact_digest="c" * 64,
                    signature=None,
                    run_id=None,
                )
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=register) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert [v.version for v in store.models.list_versions("race")] == list(range(1, 21))


def test_first_sets_of_one_alias_at_once_all_succeed(store: MetadataStore) -> None:
    """Eight callers setting a new alias at the same moment: one row, eight audited moves,
    no unique violation (it was a 500 on PostgreSQL)."""
    for _ in range(2):
        store.models.create_version(
            "race",
            actor="t",
            flavor="sklearn",
            artifact_digest="c" * 64,
            signature=None,
            run_id=None,
        )
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def move(version: int) -> None:
        try:
            barrier.wait()
            store.models.set_alias("race", "champion", version, actor=f"t{version}")
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=move, args=(1 + i % 2,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert store.models.resolve_alias("race", "champion") in (1, 2)
    moves = [e for e in store.audit.list() if e.action == "alias.set"]
    assert len(moves) == 8 and moves[-1].before["version"] is None


def test_endpoints(store: MetadataStore) -> None:
    e = store.endpoints.create("churn", "models:/churn@champion", actor="a")
    assert e.generation == 1
    with pytest.raises(AlreadyExistsError):
        store.endpoints.create("churn", "models:/churn/1", actor="a")
    e2 = store.endpoints.create("churn", "models:/churn/1", actor="a", replace=True)
    assert (e2.generation, e2.model_uri) == (2, "models:/churn/1")
    assert [x.name for x in store.endpoints.list()] == ["churn"]
    with pytest.raises(NotFoundError, match="did you mean 'churn'"):
        store.endpoints.get("chrun")
    store.endpoints.delete("churn", actor="a", reason="gone")
    assert store.endpoints.list() == []
    assert [ev.action for ev in store.audit.list(subject_type="endpoint")] == [
        "endpoint.delete",
        "endpoint.update",
        "endpoint.create",
    ]


def test_unreachable_database_is_a_clear_error() -> None:
    from shipyard.errors import StoreUnavailableError

    store = MetadataStore("postgresql+psycopg://nobody:secret@127.0.0.1:1/none")
    with pytest.raises(StoreUnavailableError) as info:
        store.runs.list_experiments()
    assert "secret" not in str(info.value)
    assert "unavailable" in str(info.value)
