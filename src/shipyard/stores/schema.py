"""The metadata schema (SQLAlchemy Core). Grown only by additive Alembic migrations.

Times are integer epoch milliseconds, as in MLflow, so they sort and compare the same way on
SQLite and PostgreSQL.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

experiments = sa.Table(
    "experiments",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(256), nullable=False, unique=True),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    # "active" or "deleted" (an MLflow client's soft delete, undone by restore)
    sa.Column("lifecycle_stage", sa.String(16), nullable=False, server_default="active"),
)

experiment_tags = sa.Table(
    "experiment_tags",
    metadata,
    sa.Column("experiment_id", sa.Integer, sa.ForeignKey("experiments.id"), primary_key=True),
    sa.Column("key", sa.String(250), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("experiment_id", sa.Integer, sa.ForeignKey("experiments.id"), nullable=False),
    sa.Column("name", sa.String(256), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("start_time", sa.BigInteger, nullable=False),
    sa.Column("end_time", sa.BigInteger, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("user", sa.String(256), nullable=False),
    sa.Column("source", sa.String(1024), nullable=True),
    sa.Column("git_commit", sa.String(64), nullable=True),
    sa.Column("git_dirty", sa.Boolean, nullable=True),
    sa.Column("environment_digest", sa.String(64), nullable=True),
    sa.Column("parent_run_id", sa.String(32), nullable=True),
    # the process that runs it (stores/owners.py) and its last heartbeat: a crash leaves RUNNING
    sa.Column("owner", sa.String(300), nullable=True),
    sa.Column("heartbeat_at", sa.BigInteger, nullable=True),
    # "active" or "deleted" (an MLflow client's soft delete): searches show active runs
    sa.Column("lifecycle_stage", sa.String(16), nullable=False, server_default="active"),
    sa.Index("ix_runs_experiment_start", "experiment_id", "start_time"),
    sa.Index("ix_runs_status", "status"),
)

params = sa.Table(
    "params",
    metadata,
    sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.id"), primary_key=True),
    sa.Column("key", sa.String(256), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
    sqlite_with_rowid=False,  # migration 0013: clustered on (run_id, key)
)

run_tags = sa.Table(
    "run_tags",
    metadata,
    sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.id"), primary_key=True),
    sa.Column("key", sa.String(256), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
    sqlite_with_rowid=False,
)

metrics = sa.Table(
    "metrics",
    metadata,
    sa.Column(
        "id",
        sa.BigInteger().with_variant(sa.Integer, "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.id"), nullable=False),
    sa.Column("key", sa.String(256), nullable=False),
    sa.Column("value", sa.Float, nullable=True),  # NULL is NaN (SQLite cannot store NaN)
    sa.Column("step", sa.BigInteger, nullable=False),
    sa.Column("timestamp", sa.BigInteger, nullable=False),
    sa.Index("ix_metrics_run_key_step", "run_id", "key", "step"),
)

latest_metrics = sa.Table(
    "latest_metrics",
    metadata,
    sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.id"), primary_key=True),
    sa.Column("key", sa.String(256), primary_key=True),
    sa.Column("value", sa.Float, nullable=True),  # NULL is NaN
    sa.Column("step", sa.BigInteger, nullable=False),
    sa.Column("timestamp", sa.BigInteger, nullable=False),
    sa.Index("ix_latest_metrics_key_value", "key", "value"),
    sqlite_with_rowid=False,
)

run_artifacts = sa.Table(
    "run_artifacts",
    metadata,
    sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.id"), primary_key=True),
    sa.Column("path", sa.String(1024), primary_key=True),
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
)

datasets = sa.Table(
    "datasets",
    metadata,
    sa.Column("digest", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(256), nullable=False),
    sa.Column("schema", sa.JSON, nullable=False),
    sa.Column("rows", sa.BigInteger, nullable=False),
    sa.Column("profile", sa.JSON, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
)

# MLflow 3's logged models (compat/mlflow): a model's files, params and tags before it is
# registered; tags and params are small JSON objects
logged_models = sa.Table(
    "logged_models",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("experiment_id", sa.Integer, sa.ForeignKey("experiments.id"), nullable=False),
    sa.Column("name", sa.String(256), nullable=False),
    sa.Column("model_type", sa.String(256), nullable=True),
    sa.Column("source_run_id", sa.String(32), nullable=True),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("status_message", sa.Text, nullable=True),
    sa.Column("creator", sa.String(256), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
    sa.Column("lifecycle_stage", sa.String(16), nullable=False, server_default="active"),
    sa.Column("tags", sa.JSON, nullable=False),
    sa.Column("params", sa.JSON, nullable=False),
    sa.Index("ix_logged_models_experiment", "experiment_id", "created_at"),
    sa.Index("ix_logged_models_run", "source_run_id"),
)

logged_model_artifacts = sa.Table(
    "logged_model_artifacts",
    metadata,
    sa.Column("model_id", sa.String(64), sa.ForeignKey("logged_models.id"), primary_key=True),
    sa.Column("path", sa.String(1024), primary_key=True),
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
)

dataset_inputs = sa.Table(
    "dataset_inputs",
    metadata,
    sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.id"), primary_key=True),
    sa.Column("dataset_digest", sa.String(64), sa.ForeignKey("datasets.digest"), primary_key=True),
    sa.Column("role", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(256), nullable=False),
)

registered_models = sa.Table(
    "registered_models",
    metadata,
    sa.Column("name", sa.String(256), primary_key=True),
    sa.Column("description", sa.Text, nullable=False, default=""),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
)

model_tags = sa.Table(
    "model_tags",
    metadata,
    sa.Column("name", sa.String(256), sa.ForeignKey("registered_models.name"), primary_key=True),
    sa.Column("key", sa.String(256), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

model_versions = sa.Table(
    "model_versions",
    metadata,
    sa.Column("name", sa.String(256), sa.ForeignKey("registered_models.name"), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("flavor", sa.String(64), nullable=False),
    sa.Column("artifact_digest", sa.String(64), nullable=False),
    sa.Column("signature", sa.JSON, nullable=True),
    sa.Column("run_id", sa.String(32), nullable=True),
    sa.Column("description", sa.Text, nullable=False, default=""),
    sa.Column("approval", sa.String(16), nullable=False, default="pending"),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("created_by", sa.String(256), nullable=False),
    # ONNX fast path: off | pending | ok | refused | unavailable | failed; the ONNX file is a
    # verified derived artifact
    sa.Column("onnx_status", sa.String(16), nullable=False, server_default="off"),
    sa.Column("onnx_digest", sa.String(64), nullable=True),
    sa.Column("onnx_detail", sa.Text, nullable=True),
    # a pending conversion is claimed by one process (stores/owners.py) and its lease renewed
    sa.Column("onnx_claimed_by", sa.String(300), nullable=True),
    sa.Column("onnx_claimed_at", sa.BigInteger, nullable=True),
    sa.Column("onnx_attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Index("ix_model_versions_onnx_status", "onnx_status"),
)

model_version_tags = sa.Table(
    "model_version_tags",
    metadata,
    sa.Column("name", sa.String(256), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("key", sa.String(256), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
    sa.ForeignKeyConstraint(["name", "version"], ["model_versions.name", "model_versions.version"]),
)

aliases = sa.Table(
    "aliases",
    metadata,
    sa.Column("name", sa.String(256), sa.ForeignKey("registered_models.name"), primary_key=True),
    sa.Column("alias", sa.String(256), primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
)

endpoints = sa.Table(
    "endpoints",
    metadata,
    sa.Column("name", sa.String(256), primary_key=True),
    sa.Column("model_uri", sa.String(1024), nullable=False),
    sa.Column("policy", sa.String(32), nullable=False, default="single"),
    sa.Column("config", sa.JSON, nullable=False),
    sa.Column("generation", sa.Integer, nullable=False, default=1),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
)

audit_events = sa.Table(
    "audit_events",
    metadata,
    sa.Column(
        "id",
        sa.BigInteger().with_variant(sa.Integer, "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    sa.Column("ts", sa.BigInteger, nullable=False),
    sa.Column("actor", sa.String(256), nullable=False),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("subject_type", sa.String(64), nullable=False),
    sa.Column("subject", sa.String(512), nullable=False),
    sa.Column("before", sa.JSON, nullable=True),
    sa.Column("after", sa.JSON, nullable=True),
    sa.Column("reason", sa.Text, nullable=True),
    sa.Index("ix_audit_subject", "subject_type", "subject", "id"),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.String(16), primary_key=True),
    sa.Column("name", sa.String(256), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.Column("scopes", sa.JSON, nullable=False),
    sa.Column("endpoints", sa.JSON, nullable=True),  # None: every endpoint
    sa.Column("rate_per_second", sa.Float, nullable=True),
    sa.Column("burst", sa.Integer, nullable=True),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("created_by", sa.String(256), nullable=False),
    sa.Column("revoked_at", sa.BigInteger, nullable=True),
)

alert_rules = sa.Table(
    "alert_rules",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("endpoint", sa.String(256), nullable=False),
    sa.Column("name", sa.String(256), nullable=False),
    sa.Column("metric", sa.String(256), nullable=False),
    sa.Column("op", sa.String(4), nullable=False),
    sa.Column("threshold", sa.Float, nullable=False),
    sa.Column("for_windows", sa.Integer, nullable=False),
    sa.Column("webhook", sa.String(2048), nullable=True),
    sa.Column("command", sa.Text, nullable=True),
    sa.Column("state", sa.String(16), nullable=False),  # ok | pending | firing
    sa.Column("breaches", sa.Integer, nullable=False),  # consecutive windows over threshold
    sa.Column("created_at", sa.BigInteger, nullable=False),
    # HMAC of (endpoint, name, command) under the signing key of whoever added the rule
    sa.Column("command_mac", sa.String(64), nullable=True),
    sa.UniqueConstraint("endpoint", "name", name="uq_alert_rules_endpoint_name"),
)

alert_events = sa.Table(
    "alert_events",
    metadata,
    sa.Column(
        "id",
        sa.BigInteger().with_variant(sa.Integer, "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    sa.Column("rule_id", sa.Integer, sa.ForeignKey("alert_rules.id"), nullable=False),
    sa.Column("ts", sa.BigInteger, nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),  # fired | resolved
    sa.Column("value", sa.Float, nullable=True),
    sa.Column("cause", sa.JSON, nullable=True),
    sa.Column("action", sa.JSON, nullable=True),  # what was done and how it went
)

# -- pipelines ------------------------------------------------------------------------------------

pipeline_runs = sa.Table(
    "pipeline_runs",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(256), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # RUNNING | FINISHED | FAILED
    sa.Column("executor", sa.String(16), nullable=False),
    sa.Column("params", sa.JSON, nullable=False),
    sa.Column("seed", sa.Integer, nullable=False),
    sa.Column("run_id", sa.String(32), nullable=True),  # the parent tracking run
    sa.Column("user", sa.String(256), nullable=False),
    sa.Column("started_at", sa.BigInteger, nullable=False),
    sa.Column("ended_at", sa.BigInteger, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Index("ix_pipeline_runs_name_started", "name", "started_at"),
)

step_runs = sa.Table(
    "step_runs",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("pipeline_run_id", sa.String(32), sa.ForeignKey("pipeline_runs.id"), nullable=False),
    sa.Column("step", sa.String(256), nullable=False),
    # FINISHED | CACHED | FAILED | SKIPPED (an upstream step failed)
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("cache_key", sa.String(64), nullable=False),
    sa.Column("code_hash", sa.String(64), nullable=False),
    sa.Column("inputs", sa.JSON, nullable=False),  # argument name -> input digest
    sa.Column("params", sa.JSON, nullable=False),
    sa.Column("outputs", sa.JSON, nullable=False),  # [{"digest", "kind"}, …]
    sa.Column("seed", sa.Integer, nullable=False),
    sa.Column("run_id", sa.String(32), nullable=True),  # the child tracking run
    sa.Column("cached_from", sa.String(32), nullable=True),  # the step run that made the outputs
    sa.Column("started_at", sa.BigInteger, nullable=False),
    sa.Column("ended_at", sa.BigInteger, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Index("ix_step_runs_cache_key", "cache_key"),
    sa.Index("ix_step_runs_pipeline_run", "pipeline_run_id"),
)

step_outputs = sa.Table(
    "step_outputs",
    metadata,
    sa.Column("digest", sa.String(64), primary_key=True),
    sa.Column("step_run_id", sa.String(32), sa.ForeignKey("step_runs.id"), primary_key=True),
    sa.Column("position", sa.Integer, nullable=False),
)

# -- quality gates --------------------------------------------------------------------------------

model_gates = sa.Table(
    "model_gates",
    metadata,
    sa.Column("name", sa.String(256), sa.ForeignKey("registered_models.name"), primary_key=True),
    sa.Column("config", sa.JSON, nullable=False),  # [{"kind": "metric", …}, …]
    sa.Column("updated_at", sa.BigInteger, nullable=False),
    sa.Column("updated_by", sa.String(256), nullable=False),
)

gate_reports = sa.Table(
    "gate_reports",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(256), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("passed", sa.Boolean, nullable=False),
    sa.Column("report", sa.JSON, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("created_by", sa.String(256), nullable=False),
    sa.ForeignKeyConstraint(["name", "version"], ["model_versions.name", "model_versions.version"]),
    sa.Index("ix_gate_reports_version", "name", "version", "id"),
)
