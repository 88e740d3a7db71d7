"""Request ids that only the server can issue: the key feedback is joined on.

A prediction's id is 24 random hex digits and a 16-digit tag, a keyed BLAKE2b (a MAC) of the
endpoint's name and those digits under a server secret. Feedback for an id is checked without
a lookup: any replica that shares the secret can tell an id its endpoint issued from one a
caller made up or took from another endpoint, however long ago the prediction was logged.

    ids = RequestIds(key)
    rid = ids.issue("churn")
    ids.issued("churn", rid)    # True
    ids.issued("fraud", rid)    # False

The key is derived from the installation's signing key: `SHIPYARD_SECRET_KEY` (set the same one
on every replica), else the random key in `$SHIPYARD_HOME/secret.key` (shared by the workers
of one machine).
"""

from __future__ import annotations

import hashlib
import hmac
import random
from typing import TYPE_CHECKING

from shipyard.errors import NotFoundError

if TYPE_CHECKING:
    from shipyard.config import Settings

_NONCE = 24  # hex digits: 96 random bits, no collision in any log's lifetime
_TAG = 8  # bytes: a forged id is accepted with probability 2**-64
LENGTH = _NONCE + 2 * _TAG
_PERSON = b"shipyard-rid-v1"
_CACHED_ENDPOINTS = 1024  # names from URLs: the cache of prepared hashes stays bounded


class RequestIds:
    """Issues and checks request ids under one secret `key` (bytes, at most 64)."""

    def __init__(self, key: bytes) -> None:
        if not 16 <= len(key) <= 64:
            raise ValueError("a request id key is 16 to 64 bytes")
        self._base = hashlib.blake2b(key=key, digest_size=_TAG, person=_PERSON)
        self._prepared: dict[str, hashlib.blake2b] = {}
        self._bits = random.getrandbits  # seeded from the OS, and again in a forked worker

    def _mac(self, endpoint: str) -> hashlib.blake2b:
        prepared = self._prepared.get(endpoint)
        if prepared is None:
            prepared = self._base.copy()
            prepared.update(endpoint.encode("utf-8", "surrogateescape") + b"\x00")
            if len(self._prepared) < _CACHED_ENDPOINTS:
                self._prepared[endpoint] = prepared
        return prepared.copy()

    def issue(self, endpoint: str) -> str:
        """A fresh id for a prediction of `endpoint`: one random draw and one keyed hash."""
        nonce = f"{self._bits(96):024x}"
        mac = self._mac(endpoint)
        mac.update(nonce.encode("ascii"))
        return nonce + mac.hexdigest()

    def issued(self, endpoint: str, request_id: str) -> bool:
        """Whether `request_id` is one this server (or a replica with its secret) issued for
        `endpoint`; compared in constant time."""
        if len(request_id) != LENGTH or not request_id.isascii():
            return False
        nonce, tag = request_id[:_NONCE], request_id[_NONCE:]
        mac = self._mac(endpoint)
        mac.update(nonce.encode("ascii"))
        return hmac.compare_digest(mac.hexdigest(), tag)

    def check(self, endpoint: str, request_ids: list[str]) -> None:
        """Feedback names only ids `endpoint` issued (a forged or foreign one would poison its
        accuracy and A/B outcomes): refuse the batch, naming the first other id."""
        unknown = [(i, rid) for i, rid in enumerate(request_ids) if not self.issued(endpoint, rid)]
        if unknown:
            i, rid = unknown[0]
            more = f" (nor {len(unknown) - 1} more in this batch)" if len(unknown) > 1 else ""
            raise NotFoundError(
                f"request_id '{rid[:64]}' was not issued by endpoint '{endpoint}'{more}",
                field="request_id",
                request_id=rid[:64],
                item=i,
                unknown=len(unknown),
            )


def request_id_key(settings: Settings) -> bytes:
    """The key request ids are signed with, derived from the installation's signing key
    (`SHIPYARD_SECRET_KEY`, else `$SHIPYARD_HOME/secret.key`; see `stores.secrets`)."""
    from shipyard.stores.secrets import signing_key

    return hashlib.blake2b(signing_key(settings), digest_size=32, person=_PERSON).digest()
