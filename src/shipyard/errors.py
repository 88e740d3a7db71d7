"""The shipyard error tree. Every error carries the HTTP status it maps to.

ShipyardError (500)
 ├── InvalidArgumentError (400)
 │    ├── FilterSyntaxError (400)        a bad search filter, with the offending position
 │    └── SignatureError (422)           input that does not match a model signature
 ├── NotFoundError (404)                 with "did you mean" suggestions
 ├── ConflictError (409)                 well-formed, but not possible in the current state
 │    └── AlreadyExistsError (409)
 ├── PayloadTooLargeError (413)
 ├── HeadersTooLargeError (431)          a request head over the server's limit
 ├── ClientTimeoutError (408)            a request head or body that did not arrive in time
 ├── UntrustedModelError (403)           pickle-like artifact loaded without trusted=True
 ├── IntegrityError (500)                artifact digest mismatch
 ├── StoreError (503)
 │    └── StoreUnavailableError (503)
 ├── MissingDependencyError (500)        also an ImportError
 ├── ConversionError (422)               a converted model does not match the original
 └── ServingError (500)
      ├── ModelLoadError (503)
      └── OverloadedError (503)
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any, ClassVar


class ShipyardError(Exception):
    """Root of every error shipyard raises on purpose."""

    http_status: ClassVar[int] = 500

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.message, "type": type(self).__name__}
        body.update(self.details)
        return body


class InvalidArgumentError(ShipyardError):
    http_status = 400


class FilterSyntaxError(InvalidArgumentError):
    """A search filter that does not parse; `position` is the offending character offset."""

    def __init__(self, message: str, *, text: str, position: int) -> None:
        pointer = f"\n  {text}\n  {' ' * position}^"
        super().__init__(f"{message} at position {position}{pointer}", position=position)


class SignatureError(InvalidArgumentError):
    http_status = 422


class NotFoundError(ShipyardError):
    http_status = 404

    @classmethod
    def for_name(cls, kind: str, name: str, candidates: Iterable[str] = ()) -> NotFoundError:
        close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        return cls(f"{kind} '{name}' not found{hint}", kind=kind, name=name)


class ConflictError(ShipyardError):
    http_status = 409


class AlreadyExistsError(ConflictError):
    http_status = 409


class UnauthorizedError(ShipyardError):
    http_status = 401


class ForbiddenError(ShipyardError):
    http_status = 403


class RateLimitedError(ShipyardError):
    http_status = 429


class PayloadTooLargeError(ShipyardError):
    http_status = 413


class HeadersTooLargeError(ShipyardError):
    http_status = 431


class ClientTimeoutError(ShipyardError):
    http_status = 408


class UntrustedModelError(ShipyardError):
    http_status = 403


class IntegrityError(ShipyardError):
    http_status = 500


class StoreError(ShipyardError):
    """A store failed. The message names it (a file path, a host and user) and quotes its
    driver, for the operator: the CLI and the server's log. An HTTP caller is told only
    `public` (`to_dict`): nothing about where the data lives or who connects to it."""

    http_status = 503

    def __init__(self, message: str, *, public: str = "a store is unavailable", **details: Any):
        super().__init__(message, **details)
        self.public = public

    def to_dict(self) -> dict[str, Any]:
        body = super().to_dict()
        body["error"] = f"{self.public}; the server's log has the cause"
        return body


class StoreUnavailableError(StoreError):
    http_status = 503


class MissingDependencyError(ShipyardError, ImportError):
    http_status = 500


class ConversionError(ShipyardError):
    http_status = 422


class GateBlockedError(ShipyardError):
    """A version that has not passed its model's quality gates may not get an alias or serve."""

    http_status = 409


class ContractFailedError(ShipyardError):
    """A data contract's blocking expectation failed; `report` lists every failure."""

    http_status = 422


class StepFailedError(ShipyardError):
    """A pipeline step raised; the message names the step, `error` keeps the traceback."""

    http_status = 500


class ServingError(ShipyardError):
    http_status = 500


class ModelLoadError(ServingError):
    http_status = 503


class RequestTimeoutError(ServingError):
    http_status = 504


class OverloadedError(ServingError):
    http_status = 503


_BY_NAME: dict[str, type[ShipyardError]] = {
    cls.__name__: cls
    for cls in (
        ShipyardError,
        InvalidArgumentError,
        FilterSyntaxError,
        SignatureError,
        NotFoundError,
        AlreadyExistsError,
        ConflictError,
        UnauthorizedError,
        ForbiddenError,
        RateLimitedError,
        PayloadTooLargeError,
        HeadersTooLargeError,
        ClientTimeoutError,
        UntrustedModelError,
        IntegrityError,
        StoreError,
        StoreUnavailableError,
        MissingDependencyError,
        ConversionError,
        GateBlockedError,
        ContractFailedError,
        StepFailedError,
        ServingError,
        ModelLoadError,
        RequestTimeoutError,
        OverloadedError,
    )
}


def from_dict(body: dict[str, Any]) -> ShipyardError:
    """Rebuild a typed error from an HTTP error body (the client side of `to_dict`)."""
    cls = _BY_NAME.get(str(body.get("type")), ShipyardError)
    err = ShipyardError.__new__(cls)
    ShipyardError.__init__(err, str(body.get("error", "unknown error")))
    return err
