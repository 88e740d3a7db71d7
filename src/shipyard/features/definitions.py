"""Feature definitions: what a feature is, where its values come from, who uses it.

>>> driver = Entity("driver", join_keys=["driver_id"])
>>> stats = FeatureView(
...     "driver_stats",
...     entity=driver,
...     source=Source.parquet("data/driver_stats/"),
...     timestamp="event_timestamp",
...     features={"trips": "long", "rating": "double"},
...     ttl=timedelta(days=2),
...     default={"trips": 0, "rating": None},   # or "error": a missing driver is a 4xx
...     on_expired="default",   # or "refuse": a value older than ttl is a 4xx, not a default
... )
>>> @on_demand(sources=[stats], request={"amount": "double"}, features={"per_trip": "double"})
... def per_trip(df):
...     return pd.DataFrame({"per_trip": df["amount"] / df["trips"].clip(lower=1)})
>>> churn = FeatureService("churn", features=[stats, per_trip])

Feature types are the model-signature types: double, float, long, integer, boolean, string.
Timestamps: a timezone-naive timestamp is read as UTC; an aware one is converted to UTC.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import inspect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from shipyard.errors import InvalidArgumentError

if TYPE_CHECKING:
    import pandas as pd

FEATURE_TYPES: frozenset[str] = frozenset(
    {"double", "float", "long", "integer", "boolean", "string"}
)
SourceKind = Literal["parquet", "csv", "sql", "dataframe"]
OnExpired = Literal["default", "refuse"]


def _check_name(name: str, what: str) -> None:
    if not name or not name.replace("_", "").replace("-", "").isalnum():
        raise InvalidArgumentError(
            f"{what} name {name!r} must be letters, digits, '_' or '-'", field="name"
        )


def _check_types(features: Mapping[str, str], where: str) -> dict[str, str]:
    if not features:
        raise InvalidArgumentError(f"{where} declares no features", field="features")
    out: dict[str, str] = {}
    for name, dtype in features.items():
        if dtype not in FEATURE_TYPES:
            raise InvalidArgumentError(
                f"{where}: feature '{name}' has type {dtype!r}; "
                f"use one of {', '.join(sorted(FEATURE_TYPES))}",
                field=name,
            )
        out[str(name)] = str(dtype)
    return out


@dataclass(frozen=True)
class Entity:
    """What features describe (a driver, a customer), identified by its join key column(s)."""

    name: str
    join_keys: list[str]
    description: str = ""
    key_type: str = "long"  # the type of a single join key; several keys are always strings

    def __post_init__(self) -> None:
        _check_name(self.name, "entity")
        if isinstance(self.join_keys, str):
            object.__setattr__(self, "join_keys", [self.join_keys])
        if not self.join_keys:
            raise InvalidArgumentError(f"entity '{self.name}' has no join keys", field="join_keys")

    def to_spec(self) -> dict[str, Any]:
        return {
            "join_keys": list(self.join_keys),
            "description": self.description,
            "key_type": self.key_type,
        }

    @classmethod
    def from_spec(cls, name: str, spec: Mapping[str, Any]) -> Entity:
        return cls(name, list(spec["join_keys"]), spec.get("description", ""), spec["key_type"])


@dataclass(frozen=True, eq=False)
class Source:
    """Where a view's rows come from. Build one with `Source.parquet(path)`,
    `Source.csv(path)` (a file, a folder of files, or a glob), `Source.sql(query, url=None)`
    (DuckDB SQL when `url` is None, else a query run on that SQLAlchemy database) or
    `Source.frame(df)` (in-process only: it cannot be re-read by another process)."""

    kind: SourceKind
    path: str | None = None
    query: str | None = None
    url: str | None = None
    frame: pd.DataFrame | None = field(default=None, repr=False)

    @classmethod
    def parquet(cls, path: str | Path) -> Source:
        return cls("parquet", path=str(path))

    @classmethod
    def csv(cls, path: str | Path) -> Source:
        return cls("csv", path=str(path))

    @classmethod
    def sql(cls, query: str, url: str | None = None) -> Source:
        return cls("sql", query=query, url=url)

    @classmethod
    def from_frame(cls, df: pd.DataFrame) -> Source:
        return cls("dataframe", frame=df)

    def resolved(self, base: Path | None) -> Source:
        """The same source with a relative path made absolute against `base`."""
        if self.path is None or base is None or Path(self.path).is_absolute():
            return self
        return Source(
            self.kind, str((base / self.path).resolve()), self.query, self.url, self.frame
        )

    def to_spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = {"kind": self.kind}
        if self.path is not None:
            spec["path"] = self.path
        if self.query is not None:
            spec["query"] = self.query
        if self.url is not None:
            spec["url"] = self.url
        return spec

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> Source:
        return cls(spec["kind"], spec.get("path"), spec.get("query"), spec.get("url"))


@dataclass(frozen=True, eq=False)
class FeatureView:
    """Typed features of one entity, read from one source, each valid for `ttl` after its
    event time. `default` says what a lookup of an unknown (or expired) entity returns: a dict
    of per-feature defaults (missing names are null), None (all null) or "error" (a 404).
    `on_expired="refuse"` makes a value older than `ttl` a 404 naming the entity and the view
    even where there is a default (an unknown entity still gets it); with "default" (the
    default) it is served the default, flagged in the lookup's result and counted."""

    name: str
    entity: Entity
    source: Source
    features: Mapping[str, str]
    timestamp: str = "event_timestamp"
    ttl: dt.timedelta | None = None
    online: bool = True
    owner: str = ""
    description: str = ""
    default: Mapping[str, Any] | Literal["error"] | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    on_expired: OnExpired = "default"

    def __post_init__(self) -> None:
        _check_name(self.name, "feature view")
        if self.on_expired not in ("default", "refuse"):
            raise InvalidArgumentError(
                f"view '{self.name}': on_expired must be 'default' or 'refuse', "
                f"not {self.on_expired!r}",
                field="on_expired",
            )
        object.__setattr__(self, "features", _check_types(self.features, f"view '{self.name}'"))
        if self.ttl is not None and self.ttl.total_seconds() <= 0:
            raise InvalidArgumentError(f"view '{self.name}': ttl must be positive", field="ttl")
        clash = set(self.features) & {*self.entity.join_keys, self.timestamp}
        if clash:
            raise InvalidArgumentError(
                f"view '{self.name}': feature(s) {sorted(clash)} shadow a key or the timestamp",
                field="features",
            )
        if isinstance(self.default, str) and self.default != "error":
            raise InvalidArgumentError(
                f"view '{self.name}': default must be a dict, None or 'error'", field="default"
            )
        if isinstance(self.default, Mapping):
            unknown = set(self.default) - set(self.features)
            if unknown:
                raise InvalidArgumentError(
                    f"view '{self.name}': default names unknown feature(s) {sorted(unknown)}",
                    field="default",
                )

    @property
    def join_keys(self) -> list[str]:
        return list(self.entity.join_keys)

    @property
    def ttl_seconds(self) -> float | None:
        return self.ttl.total_seconds() if self.ttl is not None else None

    def schema(self) -> dict[str, Any]:
        """What readers depend on: a change here makes a new, incompatible version."""
        return {
            "join_keys": self.join_keys,
            "timestamp": self.timestamp,
            "features": dict(self.features),
        }

    def to_spec(self) -> dict[str, Any]:
        spec = {
            "entity": self.entity.name,
            "entity_spec": self.entity.to_spec(),
            "source": self.source.to_spec(),
            "timestamp": self.timestamp,
            "features": dict(self.features),
            "ttl_seconds": self.ttl_seconds,
            "online": self.online,
            "owner": self.owner,
            "description": self.description,
            "default": self.default
            if not isinstance(self.default, Mapping)
            else dict(self.default),
            "tags": dict(self.tags),
        }
        if self.on_expired != "default":  # absent when default: older specs keep their digest
            spec["on_expired"] = self.on_expired
        return spec

    @classmethod
    def from_spec(cls, name: str, spec: Mapping[str, Any], frame: Any = None) -> FeatureView:
        source = Source.from_spec(spec["source"])
        if frame is not None:
            source = Source("dataframe", frame=frame)
        ttl = spec.get("ttl_seconds")
        return cls(
            name,
            entity=Entity.from_spec(spec["entity"], spec["entity_spec"]),
            source=source,
            features=dict(spec["features"]),
            timestamp=spec["timestamp"],
            ttl=dt.timedelta(seconds=ttl) if ttl is not None else None,
            online=bool(spec.get("online", True)),
            owner=spec.get("owner", ""),
            description=spec.get("description", ""),
            default=spec.get("default"),
            tags=dict(spec.get("tags") or {}),
            on_expired=spec.get("on_expired", "default"),
        )


@dataclass(frozen=True, eq=False)
class OnDemandView:
    """Features computed by a Python function from request fields and fetched features, the
    same function in training frames and online. The function takes a DataFrame with the
    request fields and the source views' features and returns a DataFrame of `features`."""

    name: str
    function: Callable[[pd.DataFrame], pd.DataFrame]
    sources: list[str]  # names of the feature views it reads
    request: Mapping[str, str]
    features: Mapping[str, str]
    description: str = ""
    owner: str = ""
    module_path: str | None = None

    def __post_init__(self) -> None:
        _check_name(self.name, "on-demand view")
        object.__setattr__(
            self, "features", _check_types(self.features, f"on-demand view '{self.name}'")
        )
        for fname, dtype in self.request.items():
            if dtype not in FEATURE_TYPES:
                raise InvalidArgumentError(
                    f"on-demand view '{self.name}': request field '{fname}' has type {dtype!r}",
                    field=fname,
                )

    @property
    def code(self) -> str:
        try:
            return inspect.getsource(self.function)
        except (OSError, TypeError):
            return ""

    @property
    def code_digest(self) -> str:
        return hashlib.sha256(self.code.encode()).hexdigest()

    def schema(self) -> dict[str, Any]:
        return {
            "sources": list(self.sources),
            "request": dict(self.request),
            "features": dict(self.features),
            "code": self.code_digest,
        }

    def to_spec(self) -> dict[str, Any]:
        return {
            **self.schema(),
            "function": self.function.__name__,
            "module_path": self.module_path,
            "code_text": self.code,
            "description": self.description,
            "owner": self.owner,
        }


def on_demand(
    *,
    sources: Iterable[FeatureView | str],
    features: Mapping[str, str],
    request: Mapping[str, str] | None = None,
    name: str | None = None,
    description: str = "",
    owner: str = "",
) -> Callable[[Callable[[pd.DataFrame], pd.DataFrame]], OnDemandView]:
    """Declare an on-demand view from a function `f(df) -> DataFrame` (see `OnDemandView`)."""

    def wrap(fn: Callable[[pd.DataFrame], pd.DataFrame]) -> OnDemandView:
        module_file = inspect.getsourcefile(fn)
        return OnDemandView(
            name or fn.__name__,
            fn,
            [s if isinstance(s, str) else s.name for s in sources],
            dict(request or {}),
            dict(features),
            description or (inspect.getdoc(fn) or "").split("\n")[0],
            owner,
            str(Path(module_file).resolve()) if module_file else None,
        )

    return wrap


@dataclass(frozen=True, eq=False)
class FeatureService:
    """The named set of features one model uses: views (all their features), on-demand
    views, or "view:feature" references."""

    name: str
    features: list[FeatureView | OnDemandView | str]
    description: str = ""
    owner: str = ""

    def __post_init__(self) -> None:
        _check_name(self.name, "feature service")
        if not self.features:
            raise InvalidArgumentError(f"service '{self.name}' names no features")

    def references(self) -> list[str]:
        refs: list[str] = []
        for item in self.features:
            if isinstance(item, str):
                refs.append(item)
            else:
                refs.extend(f"{item.name}:{f}" for f in item.features)
        return refs

    def to_spec(self) -> dict[str, Any]:
        return {"features": self.references(), "description": self.description, "owner": self.owner}


Definition = Entity | FeatureView | OnDemandView | FeatureService


def kind_of(obj: Definition) -> str:
    if isinstance(obj, Entity):
        return "entity"
    if isinstance(obj, FeatureView):
        return "view"
    if isinstance(obj, OnDemandView):
        return "on_demand"
    return "service"
