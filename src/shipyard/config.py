"""Settings: the one place that reads the environment (prefix ``SHIPYARD_``)."""

from __future__ import annotations

import getpass
import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_home() -> Path:
    return Path.home() / ".shipyard"


class Settings(BaseSettings):
    """Every setting shipyard reads, typed. Build one with overrides in tests:
    ``Settings(home=tmp_path)``."""

    model_config = SettingsConfigDict(env_prefix="SHIPYARD_", frozen=True, extra="ignore")

    home: Path = Field(default_factory=_default_home)
    db_url: str | None = None
    artifacts: str | None = None
    user: str | None = None
    redis_url: str | None = None
    # serving
    max_body_bytes: int = 8 * 1024 * 1024
    max_rows: int = 10_000
    request_timeout_seconds: float = 30.0
    # what one connection may cost before its request is in: a request head larger than
    # max_header_bytes is answered 431; a head must arrive whole within header_timeout_seconds
    # and a body within request_timeout_seconds; an idle connection closes after
    # keep_alive_seconds. The control plane (/api) refuses bodies over api_max_body_bytes.
    max_header_bytes: int = Field(default=64 * 1024, ge=1024)
    header_timeout_seconds: float = Field(default=10.0, gt=0)
    keep_alive_seconds: float = Field(default=5.0, gt=0)
    api_max_body_bytes: int = Field(default=8 * 1024 * 1024, ge=0)
    # an artifact uploaded through MLflow's proxy (/api/2.0/mlflow-artifacts) streams to disk
    # in chunks, so its limit is the disk's: 50 GiB by default
    artifact_max_bytes: int = Field(default=50 * 1024**3, ge=0)
    # shipyard's own HTTP protocol on uvicorn's connections (hot routes answered directly, the
    # limits above, one write per answer); false: uvicorn's own protocol (serving/uvicorn_fence)
    fast_path: bool = True
    predlog_enabled: bool = True
    predlog_sample_rate: float = Field(default=1.0, ge=0.0, le=1.0)
    predlog_capacity_rows: int = 200_000
    predlog_flush_seconds: float = 2.0
    # monitoring
    monitor_interval_seconds: float = 60.0  # 0 turns the server's monitoring job off
    monitor_window_seconds: float = 3600.0
    monitor_alpha: float = 0.05
    # rollouts
    rollout_interval_seconds: float = 10.0  # 0 turns the server's rollout controller off
    # recovery after a crash (`shipyard admin doctor`, conversions resumed at start-up)
    run_heartbeat_seconds: float = Field(default=60.0, gt=0)  # a live run's heartbeat
    # a RUNNING run whose process cannot be checked from here (another host, or a run driven
    # over the REST API) is stale after this long without a heartbeat or a metric
    run_stale_seconds: float = Field(default=6 * 3600.0, gt=0)
    # a pending ONNX conversion's claim lapses this long after its holder's last heartbeat
    # (holders renew every 10 s)
    conversion_lease_seconds: float = Field(default=60.0, ge=20)
    temp_grace_seconds: float = Field(default=3600.0, ge=0)  # temp files younger are kept
    # feature store: online reads of serving endpoints
    feature_timeout_seconds: float = 0.05
    feature_breaker_failures: int = 5
    feature_breaker_reset_seconds: float = 5.0
    # Ray (pipelines and batch scoring with --executor ray); no address: a local Ray
    ray_address: str | None = None
    ray_temp_dir: Path | None = None  # default $SHIPYARD_HOME/ray
    # auth
    auth_required: bool = False
    # host names (comma-separated) an anonymous caller on this machine may address the server
    # by, beside IP addresses and localhost: anything else is refused (DNS rebinding)
    allowed_hosts: str = ""
    auth_cache_seconds: float = 5.0
    jwt_secret: SecretStr | None = None
    # signs what shipyard issues or writes and later trusts (request ids that feedback names,
    # the pipeline cache's pickles, alert commands); unset: a random key kept in
    # $SHIPYARD_HOME/secret.key. Set the same one on every replica and every machine that
    # shares a pipeline cache.
    secret_key: SecretStr | None = None
    jwt_public_key: str | None = None  # PEM text, or a path to a PEM file
    jwt_algorithms: list[str] = Field(default_factory=lambda: ["HS256", "RS256"])
    jwt_audience: str | None = None
    jwt_issuer: str | None = None
    rate_per_second: float | None = None  # default per-principal limit (keys may set their own)
    rate_burst: int | None = None
    rate_limit_on_redis_error: Literal["local", "open", "closed"] = "local"
    rate_limit_redis_retry_seconds: float = 5.0  # after a Redis failure, try again after this
    metrics_flush_points: int = 5000
    metrics_flush_seconds: float = 5.0

    @field_validator("secret_key")
    @classmethod
    def _secret_is_a_secret(cls, value: SecretStr | None) -> SecretStr | None:
        # a short or empty key is one an attacker can guess, and it signs what gets executed
        if value is not None and len(value.get_secret_value()) < 32:
            raise ValueError(
                "SHIPYARD_SECRET_KEY must be at least 32 characters; make one with "
                "python -c 'import secrets; print(secrets.token_hex(32))'"
            )
        return value

    @property
    def resolved_db_url(self) -> str:
        if self.db_url:
            return self.db_url
        return f"sqlite:///{self.home / 'shipyard.db'}"

    @property
    def resolved_artifacts(self) -> str:
        if self.artifacts:
            return self.artifacts
        return str(self.home / "artifacts")

    @property
    def predictions_dir(self) -> Path:
        """Where the prediction log's Parquet partitions go (beside the artifacts)."""
        return Path(self.resolved_artifacts) / "predictions"

    @property
    def labels_dir(self) -> Path:
        """Where late labels (feedback) go, partitioned like the prediction log."""
        return Path(self.resolved_artifacts) / "labels"

    @property
    def outcomes_dir(self) -> Path:
        """Where A/B outcomes (the `outcome` of feedback) go, partitioned like the labels."""
        return Path(self.resolved_artifacts) / "outcomes"

    @property
    def actor(self) -> str:
        """Who is acting, for the audit log: SHIPYARD_USER, else the OS user."""
        if self.user:
            return self.user
        return _os_user()


@lru_cache(maxsize=1)
def _os_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry in some containers
        return f"uid:{os.getuid()}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings from the environment; a bad value is an InvalidArgumentError naming the
    variable (and never echoing it: it may be a secret)."""
    from pydantic import ValidationError

    try:
        return Settings()
    except ValidationError as exc:
        from shipyard.errors import InvalidArgumentError

        problems = "; ".join(
            f"SHIPYARD_{'_'.join(str(p) for p in e['loc']).upper()}: "
            f"{e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors(include_input=False, include_url=False)
        )
        raise InvalidArgumentError(f"invalid setting {problems}", field="settings") from None


def reset_settings() -> None:
    """Forget the cached settings (after the environment changed, e.g. in tests)."""
    get_settings.cache_clear()
