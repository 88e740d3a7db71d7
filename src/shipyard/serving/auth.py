"""Who may call what: API keys (`sy_<id>_<secret>`, stored hashed) and JWT bearer tokens
(HS256 with a shared secret, RS256 with a public key), checked by an ASGI middleware before
any route runs.

Scopes: `predict` (POST predict/infer), `feedback` (POST feedback: labels and outcomes,
which decide rollouts and alerts), `read` (GET routes), `admin` (changes through
/api, and everything else). Health, readiness (a model's V2 ready route too: a kubelet's
probe sends no key), /metrics and the API docs stay open so probes and scrapers work without
secrets.

A principal limited to some endpoints (a key's `--endpoint`, a JWT's `endpoints` claim) may
use, within its scopes, only the routes about one of them: `/endpoints/{name}/…`,
`/v2/models/{name}/…`, `/api/endpoints/{name}`, `/api/deployments/{name}/…` and
`/api/monitoring/{name}/…`; the listings `GET /api/endpoints`, `GET /api/deployments` and
`GET /api/monitoring` show it only its endpoints. Every other route (runs, models and their
aliases, gates, audit, features, keys, creating an endpoint) concerns more than its
endpoints: 403. An alias is not
its endpoint's: other endpoints may serve the same alias.

While a request runs, the audit log names its caller (`key:<id>/<name>`, `jwt:<sub>`, or
`anonymous@<address>` where credentials are optional), not the server's user.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from shipyard.errors import ForbiddenError, RateLimitedError, ShipyardError, UnauthorizedError
from shipyard.serving import protocol
from shipyard.serving.ratelimit import RateLimiter, retry_after_header
from shipyard.serving.routes import is_mlflow, required_scope
from shipyard.stores.audit import acting_as

if TYPE_CHECKING:
    from shipyard.config import Settings
    from shipyard.stores import Stores
    from shipyard.stores.keys import ApiKeyStore

# the routes about one endpoint (its name the group), and the listings filtered to a principal's
_ENDPOINT = re.compile(
    r"^/(?:endpoints|v2/models|api/(?:endpoints|deployments|monitoring))/([^/]+)"
)
_LISTING = re.compile(r"^/api/(?:endpoints|deployments|monitoring)\Z")


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

    @property
    def actor(self) -> str:
        """How the audit log names this caller: `key:<id>/<name>` or `jwt:<sub>`."""
        return f"{self.id}/{self.name}" if self.id.startswith("key:") else self.id

    def endpoint_refusal(self, method: str, path: str) -> str | None:
        """Why this principal may not call `path` for its endpoint limit; None if it may."""
        if self.endpoints is None:
            return None
        m = _ENDPOINT.match(path)
        if m is not None:
            if m.group(1) in self.endpoints:
                return None
            return f"'{self.name}' may not use endpoint '{m.group(1)}'"
        if method in ("GET", "HEAD") and (_LISTING.match(path) or path == "/api/whoami"):
            return None  # the handler lists only this principal's endpoints (or names it)
        return (
            f"'{self.name}' is limited to endpoint(s) {', '.join(sorted(self.endpoints)) or 'none'}"
            f"; {path} is not about one endpoint"
        )


def visible_endpoints(scope: Mapping[str, Any]) -> frozenset[str] | None:
    """The endpoints the caller of this request may see; None for all."""
    principal = scope.get("state", {}).get("principal")
    return principal.endpoints if isinstance(principal, Principal) else None


class Authenticator:
    def __init__(self, settings: Settings, keys: ApiKeyStore | None) -> None:
        self.settings = settings
        self.keys = keys
        self._cache: dict[str, tuple[Principal | None, float]] = {}
        self._revocations = keys.revocations if keys is not None else 0
        self._jwt_key: Any = None

    async def authenticate(self, token: str) -> Principal:
        if token.count(".") == 2:
            return self._jwt(token)
        return await self._api_key(token)

    async def _api_key(self, token: str) -> Principal:
        """The key's principal, from a cache kept `auth_cache_seconds`; a key revoked in this
        process (the API, or Python) drops it at once, one revoked elsewhere (the CLI, another
        replica) within that time."""
        now = time.monotonic()
        keys = self.keys
        revocations = keys.revocations if keys is not None else 0
        if revocations != self._revocations:
            self._cache.clear()
            self._revocations = revocations
        hit = self._cache.get(token)
        if hit is not None and hit[1] > now:
            principal = hit[0]
        else:
            record = await asyncio.to_thread(keys.verify, token) if keys is not None else None
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
            if keys is None or keys.revocations == revocations:  # none revoked meanwhile
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
        sub = claims["sub"]
        if not isinstance(sub, str) or not 0 < len(sub) <= 200:
            raise _bad_claim("sub", "a string of 1 to 200 characters")
        return Principal(
            f"jwt:{sub}", sub, _scopes(claims), _endpoints(claims), s.rate_per_second, s.rate_burst
        )


def _bad_claim(name: str, expected: str) -> UnauthorizedError:
    return UnauthorizedError(f"invalid token: claim '{name}' must be {expected}", claim=name)


def _scopes(claims: dict[str, Any]) -> frozenset[str]:
    """`scope` (or `scopes`): a space-separated string, as OAuth 2 sends it, or a list of
    strings; absent: no scope."""
    name = "scope" if "scope" in claims else "scopes"
    value = claims.get(name)
    if value is None:
        return frozenset()
    if isinstance(value, str):
        return frozenset(value.split())
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return frozenset(value)
    raise _bad_claim(name, "a space-separated string or a list of strings")


def _endpoints(claims: dict[str, Any]) -> frozenset[str] | None:
    """`endpoints`: a list of endpoint names (`[]`: none of them); absent or null: every
    endpoint. A string is refused, not split or guessed at: `"churn"` and `"churn other"`
    would each have one reading too many."""
    value = claims.get("endpoints")
    if value is None:
        return None
    if isinstance(value, list) and all(isinstance(v, str) and v for v in value):
        return frozenset(value)
    raise _bad_claim("endpoints", "a list of endpoint names")


class AuthMiddleware:
    """Pure ASGI: checks credentials, scope, endpoint and rate before the app sees a request."""

    def __init__(
        self, app: Any, authenticator: Authenticator, limiter: RateLimiter | None, *, required: bool
    ) -> None:
        self.app = app
        self.auth = authenticator
        self.limiter = limiter
        self.required = required
        self.allowed_hosts = frozenset(
            h.strip().lower() for h in authenticator.settings.allowed_hosts.split(",") if h.strip()
        )

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
        with acting_as(_actor(scope)):
            await self.app(scope, receive, send)

    async def refusal(self, scope: dict[str, Any]) -> tuple[int, bytes, list[Any]] | None:
        """None when the request may go on (its principal then in `scope["state"]`), else the
        answer that refuses it: status, JSON body, headers."""
        need = required_scope(scope["method"], scope["path"])
        token = _credentials(scope) if need is not None else None
        if need is None:
            return None
        if token is None and not self.required:
            return self._rebinding(scope)
        try:
            principal = await self._check(scope["method"], scope["path"], need, token)
        except ShipyardError as exc:
            return _refusal(exc, mlflow=is_mlflow(scope["path"]))
        scope.setdefault("state", {})["principal"] = principal
        return None

    def _rebinding(self, scope: dict[str, Any]) -> tuple[int, bytes, list[Any]] | None:
        """Anonymous callers on this machine must address it by IP or localhost. A web page
        whose domain was re-pointed at 127.0.0.1 (DNS rebinding) reaches a loopback server
        under its own name, with the browser's same-origin rule on its side: refused here."""
        client = scope.get("client")
        if not client or not _loopback_ip(client[0]):
            return None
        host = _host_name(scope)
        if host is None or host in self.allowed_hosts or _loopback_name(host):
            return None
        return _refusal(
            ForbiddenError(
                f"this server answers anonymous requests from its own machine only when "
                f"addressed by IP address or localhost, not as {host!r}: send credentials, or "
                "add the name to SHIPYARD_ALLOWED_HOSTS",
                field="host",
            )
        )

    async def _check(self, method: str, path: str, need: str, token: str | None) -> Principal:
        if token is None:
            raise UnauthorizedError(
                "this server requires credentials: send 'Authorization: Bearer <API key or JWT>' "
                "(create a key with `shipyard keys create`)"
            )
        principal = await self.auth.authenticate(token)
        if not principal.allows(need):
            raise ForbiddenError(f"'{principal.name}' lacks the '{need}' scope", scope=need)
        refused = principal.endpoint_refusal(method, path)
        if refused is not None:
            raise ForbiddenError(refused, endpoints=sorted(principal.endpoints or ()))
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


def _host_name(scope: dict[str, Any]) -> str | None:
    """The Host header's name, lower-case, without port or IPv6 brackets (None: no header)."""
    for name, value in scope["headers"]:
        if name == b"host":
            text: str = value.decode("latin-1").strip().lower()
            if text.startswith("["):
                return text[1 : text.find("]")] if "]" in text else text
            return text.rsplit(":", 1)[0] if text.count(":") == 1 else text
    return None


def _loopback_ip(address: str) -> bool:
    import ipaddress

    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def _loopback_name(host: str) -> bool:
    """An IP literal (no DNS, so no rebinding), localhost, or a name of one label (`test`, a
    container's name): rebinding needs a domain in public DNS, which has a dot."""
    import ipaddress

    host = host.rstrip(".")
    if "." not in host or host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _actor(scope: dict[str, Any]) -> str:
    principal = scope.get("state", {}).get("principal")
    if isinstance(principal, Principal):
        return principal.actor
    client = scope.get("client")
    return f"anonymous@{client[0]}" if client else "anonymous"


def _credentials(scope: dict[str, Any]) -> str | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            text = value.decode("latin-1")
            if text[:7].lower() == "bearer ":
                return text[7:].strip() or None
        elif name == b"x-api-key":
            return value.decode("latin-1").strip() or None
    return None


# MLflow's error codes for a refusal, sent beside shipyard's fields on MLflow's API so its
# client raises them as they are
_MLFLOW_CODES: Final = {
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    429: "REQUEST_LIMIT_EXCEEDED",
}


def _refusal(exc: ShipyardError, *, mlflow: bool = False) -> tuple[int, bytes, list[Any]]:
    doc = exc.to_dict()
    if mlflow:
        code = _MLFLOW_CODES.get(exc.http_status, "TEMPORARILY_UNAVAILABLE")
        doc |= {"error_code": code, "message": doc["error"]}
    body = protocol.dumps(doc)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if isinstance(exc, UnauthorizedError):
        headers.append((b"www-authenticate", b"Bearer"))
    if isinstance(exc, RateLimitedError):
        headers.append((b"retry-after", retry_after_header(exc.details["retry_after"]).encode()))
    return exc.http_status, body, headers


def install_auth(
    app: Any, settings: Settings, stores: Stores | None, *, required: bool
) -> RateLimiter:
    """Wrap `app` with the auth middleware (API keys from `stores`), and guard the data
    plane's outer fast path (`app.fast_path`, which answers the hot routes before `app` sees
    them) with the same check; returns the limiter (close it at shutdown)."""
    keys = stores.metadata.keys if stores is not None else None
    limiter = RateLimiter(
        settings.redis_url,
        on_redis_error=settings.rate_limit_on_redis_error,
        retry_seconds=settings.rate_limit_redis_retry_seconds,
    )
    authenticator = Authenticator(settings, keys)
    app.add_middleware(
        AuthMiddleware, authenticator=authenticator, limiter=limiter, required=required
    )
    from shipyard.serving.asgi import ServingApp

    fast = app.fast_path if isinstance(app, ServingApp) else None
    if fast is not None:
        fast.guarded = AuthMiddleware(fast.answer, authenticator, limiter, required=required)
    return limiter
