"""Who may call what: API keys (`sy_<id>_<secret>`, stored hashed) and JWT bearer tokens
(HS256 with a shared secret, RS256 with a public key), checked by an ASGI middleware before
any route runs.

Scopes: `predict` (POST predict/infer/feedback), `read` (GET routes), `admin` (changes through
/api, and everything else). A key may be limited to some endpoints. Health, readiness,
/metrics and the API docs stay open so probes and scrapers work without secrets.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.errors import ForbiddenError, RateLimitedError, ShipyardError, UnauthorizedError
from shipyard.serving import protocol
from shipyard.serving.ratelimit import RateLimiter, retry_after_header

if TYPE_CHECKING:
    from shipyard.config import Settings
    from shipyard.stores.keys import ApiKeyStore

_OPEN = re.compile(r"^/(health/|v2/health/|metrics$|docs|openapi\.json$|redoc|v2$|favicon)")
_ENDPOINT = re.compile(r"^/(?:endpoints|v2/models)/([^/]+)")
_PREDICT = re.compile(
    r"^/(endpoints/[^/]+/(predict|feedback)|v2/models/[^/]+(/versions/[^/]+)?/infer)$"
)


@dataclass(frozen=True)
class Principal:
    id: str
    name: str
    scopes: frozenset[str]
    endpoints: frozenset[str] | None = None
    rate_per_second: float | None = None
    burst: int | None = None

    def allows(self, scope: str) -> bool:
        return "admin" in self.scopes or scope in self.scopes


def required_scope(method: str, path: str) -> str | None:
    """The scope a request needs; None for open routes."""
    if _OPEN.match(path):
        return None
    if method == "POST" and _PREDICT.match(path):
        return "predict"
    if method in ("GET", "HEAD"):
        return "read"
    return "admin"


class Authenticator:
    def __init__(self, settings: Settings, keys: ApiKeyStore | None) -> None:
        self.settings = settings
        self.keys = keys
        self._cache: dict[str, tuple[Principal | None, float]] = {}
        self._jwt_key: Any = None

    async def authenticate(self, token: str) -> Principal:
        if token.count(".") == 2:
            return self._jwt(token)
        return await self._api_key(token)

    async def _api_key(self, token: str) -> Principal:
        now = time.monotonic()
        hit = self._cache.get(token)
        if hit is not None and hit[1] > now:
            principal = hit[0]
        else:
            record = await asyncio.to_thread(self.keys.verify, token) if self.keys else None
            principal = (
                None
                if record is None
                else Principal(
                    f"key:{record.id}",
                    record.name,
                    frozenset(record.scopes),
                    frozenset(record.endpoints) if record.endpoints else None,
                    record.rate_per_second,
                    record.burst,
                )
            )
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[token] = (principal, now + self.settings.auth_cache_seconds)
        if principal is None:
            raise UnauthorizedError("invalid or revoked API key")
        return principal

    def _verification_key(self, algorithm: str) -> Any:
        s = self.settings
        if algorithm.startswith("HS"):
            if s.jwt_secret is None:
                raise UnauthorizedError("HS* tokens are not accepted: no SHIPYARD_JWT_SECRET")
            return s.jwt_secret.get_secret_value()
        if s.jwt_public_key is None:
            raise UnauthorizedError("RS* tokens are not accepted: no SHIPYARD_JWT_PUBLIC_KEY")
        if self._jwt_key is None:
            text = s.jwt_public_key
            if "BEGIN" not in text:
                text = Path(text).read_text()
            self._jwt_key = text
        return self._jwt_key

    def _jwt(self, token: str) -> Principal:
        import jwt

        s = self.settings
        try:
            header = jwt.get_unverified_header(token)
            algorithm = str(header.get("alg", ""))
            if algorithm not in s.jwt_algorithms:
                raise UnauthorizedError(f"token algorithm {algorithm!r} is not accepted")
            claims = jwt.decode(
                token,
                self._verification_key(algorithm),
                algorithms=[algorithm],
                audience=s.jwt_audience,
                issuer=s.jwt_issuer,
                options={"require": ["exp", "sub"], "verify_aud": s.jwt_audience is not None},
            )
        except jwt.PyJWTError as exc:
            raise UnauthorizedError(f"invalid token: {exc}") from exc
        scope = claims.get("scope", claims.get("scopes", []))
        scopes = scope.split() if isinstance(scope, str) else list(scope)
        endpoints = claims.get("endpoints")
        return Principal(
            f"jwt:{claims['sub']}",
            str(claims["sub"]),
            frozenset(scopes),
            frozenset(endpoints) if endpoints else None,
            s.rate_per_second,
            s.rate_burst,
        )


class AuthMiddleware:
    """Pure ASGI: checks credentials, scope, endpoint and rate before the app sees a request."""

    def __init__(
        self, app: Any, authenticator: Authenticator, limiter: RateLimiter | None, *, required: bool
    ) -> None:
        self.app = app
        self.auth = authenticator
        self.limiter = limiter
        self.required = required

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refused = await self.refusal(scope)
        if refused is not None:
            status, body, headers = refused
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)

    async def refusal(self, scope: dict[str, Any]) -> tuple[int, bytes, list[Any]] | None:
        """None when the request may go on (its principal then in `scope["state"]`), else the
        answer that refuses it: status, JSON body, headers."""
        need = required_scope(scope["method"], scope["path"])
        token = _credentials(scope) if need is not None else None
        if need is None or (token is None and not self.required):
            return None
        try:
            principal = await self._check(scope["path"], need, token)
        except ShipyardError as exc:
            return _refusal(exc)
        scope.setdefault("state", {})["principal"] = principal
        return None

    async def _check(self, path: str, need: str, token: str | None) -> Principal:
        if token is None:
            raise UnauthorizedError(
                "this server requires credentials: send 'Authorization: Bearer <API key or JWT>' "
                "(create a key with `shipyard keys create`)"
            )
        principal = await self.auth.authenticate(token)
        if not principal.allows(need):
            raise ForbiddenError(f"'{principal.name}' lacks the '{need}' scope", scope=need)
        m = _ENDPOINT.match(path)
        if m and principal.endpoints is not None and m.group(1) not in principal.endpoints:
            raise ForbiddenError(f"'{principal.name}' may not use endpoint '{m.group(1)}'")
        rate = principal.rate_per_second or self.auth.settings.rate_per_second
        if rate and self.limiter is not None:
            burst = principal.burst or self.auth.settings.rate_burst or max(1, int(rate))
            allowed, wait = await self.limiter.take(principal.id, rate, burst)
            if not allowed:
                raise RateLimitedError(
                    f"rate limit of {rate:g}/s for '{principal.name}' exceeded; retry in "
                    f"{wait:.2f} s",
                    retry_after=round(wait, 3),
                )
        return principal


def _credentials(scope: dict[str, Any]) -> str | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            text = value.decode("latin-1")
            if text[:7].lower() == "bearer ":
                return text[7:].strip() or None
        elif name == b"x-api-key":
            return value.decode("latin-1").strip() or None
    return None


def _refusal(exc: ShipyardError) -> tuple[int, bytes, list[Any]]:
    body = protocol.dumps(exc.to_dict())
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if isinstance(exc, UnauthorizedError):
        headers.append((b"www-authenticate", b"Bearer"))
    if isinstance(exc, RateLimitedError):
        headers.append((b"retry-after", retry_after_header(exc.details["retry_after"]).encode()))
    return exc.http_status, body, headers


def install_auth(
    app: Any, settings: Settings, keys: ApiKeyStore | None, *, required: bool
) -> RateLimiter:
    """Wrap `app` with the auth middleware, and guard the data plane's outer fast path
    (`app.state.asgi`, which answers the hot routes before `app` sees them) with the same
    check; returns the limiter (close it at shutdown)."""
    limiter = RateLimiter(
        settings.redis_url,
        on_redis_error=settings.rate_limit_on_redis_error,
        retry_seconds=settings.rate_limit_redis_retry_seconds,
    )
    authenticator = Authenticator(settings, keys)
    app.add_middleware(
        AuthMiddleware, authenticator=authenticator, limiter=limiter, required=required
    )
    fast = getattr(app.state, "asgi", None)
    if fast is not None:
        fast.guarded = AuthMiddleware(fast.answer, authenticator, limiter, required=required)
    return limiter
