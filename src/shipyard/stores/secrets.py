"""The local signing key: what lets shipyard tell bytes it wrote itself from bytes someone
else put in a shared store.

`SHIPYARD_SECRET_KEY` when set (a team shares it to share signed caches); otherwise 32 random
bytes in `$SHIPYARD_HOME/secret.key`, created once with mode 0600.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shipyard.config import Settings

_KEY_FILE = "secret.key"


def signing_key(settings: Settings) -> bytes:
    if settings.secret_key is not None:
        return hashlib.sha256(settings.secret_key.get_secret_value().encode()).digest()
    path = settings.home / _KEY_FILE
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    settings.home.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{_KEY_FILE}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(secrets.token_bytes(32))
    try:
        os.link(tmp, path)  # first writer wins; a concurrent one reads the winner's key
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return path.read_bytes()


def sign(key: bytes, data: bytes) -> str:
    return hmac.new(key, data, hashlib.sha256).hexdigest()


def verify(key: bytes, data: bytes, mac: str | None) -> bool:
    return mac is not None and hmac.compare_digest(sign(key, data), mac)
