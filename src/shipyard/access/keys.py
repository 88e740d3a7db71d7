"""API keys as the edges manage them: create (the secret is returned once), list, revoke.

Verification stays with the data plane's authenticator (`serving.auth`), which reads the same
store; a revocation here is seen by it at once in this process, by other replicas within
SHIPYARD_AUTH_CACHE_SECONDS.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shipyard.stores import Stores
    from shipyard.stores.keys import ApiKeyRecord


class ApiKeys:
    """The API keys of one metadata database; every change audited as the acting user."""

    def __init__(self, stores: Stores) -> None:
        self.stores = stores

    def create(
        self,
        name: str,
        *,
        scopes: Sequence[str],
        endpoints: Sequence[str] | None = None,
        rate_per_second: float | None = None,
        burst: int | None = None,
    ) -> tuple[ApiKeyRecord, str]:
        """A new key: its record and its secret (shown only now; only the hash is kept)."""
        return self.stores.metadata.keys.create(
            name,
            scopes=scopes,
            endpoints=endpoints,
            rate_per_second=rate_per_second,
            burst=burst,
            actor=self.stores.actor,
        )

    def list(self) -> list[ApiKeyRecord]:
        """Every key, oldest first (never a secret)."""
        return self.stores.metadata.keys.list()

    def revoke(self, key_id: str, *, reason: str | None = None) -> None:
        """Refuse the key from now on (revoking twice is a no-op)."""
        self.stores.metadata.keys.revoke(key_id, actor=self.stores.actor, reason=reason)
