"""API keys: stored as a sha256 of the secret (keys are 160 random bits, so a fast hash is
enough; no password stretching needed). The secret is shown once, at creation."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from shipyard.errors import InvalidArgumentError, NotFoundError
from shipyard.stores import audit
from shipyard.stores import schema as t
from shipyard.stores.clock import now_ms

if TYPE_CHECKING:
    from shipyard.stores.database import Database

# track: write runs (params, metrics, tags) through the MLflow API (compat.mlflow)
SCOPES = ("predict", "feedback", "read", "track", "admin")
PREFIX = "sy"


@dataclass(frozen=True)
class ApiKeyRecord:
    id: str
    name: str
    scopes: tuple[str, ...]
    endpoints: tuple[str, ...] | None
    rate_per_second: float | None
    burst: int | None
    created_at: int
    created_by: str
    revoked_at: int | None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def split_key(key: str) -> tuple[str, str] | None:
    """`sy_<id>_<secret>` → (id, whole key); None when it does not look like one of ours."""
    parts = key.split("_")
    if len(parts) != 3 or parts[0] != PREFIX or not parts[1] or not parts[2]:
        return None
    return parts[1], key


class ApiKeyStore:
    def __init__(self, db: Database) -> None:
        self._db = db
        # bumped by every revocation through this store: whoever caches verified keys in this
        # process (the server's authenticator) drops its cache when it changes
        self.revocations = 0
        self._revoking = threading.Lock()

    def create(
        self,
        name: str,
        *,
        scopes: Sequence[str],
        actor: str,
        endpoints: Sequence[str] | None = None,
        rate_per_second: float | None = None,
        burst: int | None = None,
    ) -> tuple[ApiKeyRecord, str]:
        """A new key; returns the record and the secret key (shown only now)."""
        bad = [s for s in scopes if s not in SCOPES]
        if not scopes or bad:
            raise InvalidArgumentError(
                f"scopes must be some of {', '.join(SCOPES)}; got {', '.join(bad) or 'none'}",
                field="scopes",
            )
        if rate_per_second is not None and rate_per_second <= 0:
            raise InvalidArgumentError("rate must be positive", field="rate_per_second")
        if burst is not None and burst < 1:
            raise InvalidArgumentError("burst must be at least 1", field="burst")
        key_id = secrets.token_hex(4)
        key = f"{PREFIX}_{key_id}_{secrets.token_urlsafe(20).replace('_', 'x')}"
        row = {
            "id": key_id,
            "name": name,
            "hash": _hash(key),
            "scopes": list(scopes),
            "endpoints": list(endpoints) if endpoints else None,
            "rate_per_second": rate_per_second,
            "burst": burst,
            "created_at": now_ms(),
            "created_by": actor,
            "revoked_at": None,
        }
        with self._db.write() as conn:
            conn.execute(t.api_keys.insert().values(**row))
            audit.append(
                conn,
                actor=actor,
                action="key.create",
                subject_type="api_key",
                subject=key_id,
                after={"name": name, "scopes": list(scopes), "endpoints": row["endpoints"]},
            )
        return self.get(key_id), key

    def get(self, key_id: str) -> ApiKeyRecord:
        with self._db.read() as conn:
            row = conn.execute(sa.select(t.api_keys).where(t.api_keys.c.id == key_id)).first()
        if row is None:
            raise NotFoundError(f"API key '{key_id}' not found")
        return _record(row)

    def verify(self, key: str) -> ApiKeyRecord | None:
        """The live record of `key`, or None if it is unknown, wrong or revoked."""
        parts = split_key(key)
        if parts is None:
            return None
        with self._db.read() as conn:
            row = conn.execute(sa.select(t.api_keys).where(t.api_keys.c.id == parts[0])).first()
        if row is None or not hmac.compare_digest(row.hash, _hash(key)):
            return None
        record = _record(row)
        return None if record.revoked else record

    def list(self) -> list[ApiKeyRecord]:
        with self._db.read() as conn:
            return [
                _record(r)
                for r in conn.execute(sa.select(t.api_keys).order_by(t.api_keys.c.created_at))
            ]

    def revoke(self, key_id: str, *, actor: str, reason: str | None = None) -> None:
        with self._db.write() as conn:
            row = conn.execute(sa.select(t.api_keys).where(t.api_keys.c.id == key_id)).first()
            if row is None:
                raise NotFoundError(f"API key '{key_id}' not found")
            if row.revoked_at is not None:
                return
            conn.execute(
                t.api_keys.update().where(t.api_keys.c.id == key_id).values(revoked_at=now_ms())
            )
            audit.append(
                conn,
                actor=actor,
                action="key.revoke",
                subject_type="api_key",
                subject=key_id,
                before={"name": row.name},
                reason=reason,
            )
        with self._revoking:
            self.revocations += 1


def _record(row: Any) -> ApiKeyRecord:
    return ApiKeyRecord(
        row.id,
        row.name,
        tuple(row.scopes),
        tuple(row.endpoints) if row.endpoints else None,
        row.rate_per_second,
        row.burst,
        row.created_at,
        row.created_by,
        row.revoked_at,
    )
