"""Online lookups: a resolved plan of features, and one read of the online store per lookup.

`lookup(online, plan, rows)` is the whole hot path of serving features: one round trip for all
rows and views, a decode per record, the view's TTL and default (or a 404), then the on-demand
features computed by the same code as training frames. A value older than its view's TTL is
served the default (flagged per row in `OnlineFeatures.expired`) or, when the view says
`on_expired="refuse"`, is a 404 naming the entity and the view.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from shipyard.errors import InvalidArgumentError, NotFoundError

if TYPE_CHECKING:
    from shipyard.features.definitions import FeatureView, OnDemandView
    from shipyard.stores.online import OnlineStore

KEY_SEP = "\x1f"


def encode_key(values: Sequence[Any], key_type: str) -> str:
    """The online key of one entity: its join key value(s) as text, ints normalized."""
    if len(values) == 1:
        v = values[0]
        if type(v) is int:
            return str(v)
        if key_type in ("long", "integer"):
            try:
                return str(int(v))
            except (TypeError, ValueError) as exc:
                raise InvalidArgumentError(f"entity key {v!r} is not an integer") from exc
        return str(v)
    return KEY_SEP.join(str(v) for v in values)


def table_name(view: str, version: int) -> str:
    return f"{view}@{version}"


def online_store_identity(online: Any) -> str:
    """Which online store this is, for its materialization state: the kind and location (a
    Redis URL without credentials, plus the key prefix; a SQLite file's real path)."""
    kind = str(getattr(online, "kind", type(online).__name__))
    url = getattr(online, "url", None)
    if isinstance(url, str) and url:
        from urllib.parse import parse_qs, urlsplit

        parts = urlsplit(url)
        host = parts.hostname or ""
        where = f"{host}:{parts.port}" if parts.port else host
        # the query may choose the database (`?db=8`): another database is another store
        # (only `db` is kept: other query settings are no part of where the data lives)
        db = parse_qs(parts.query).get("db")
        query = f"?db={db[-1]}" if db else ""
        prefix = getattr(online, "prefix", "")
        return f"{kind}:{parts.scheme}://{where}{parts.path}{query}#{prefix}"
    path = getattr(online, "path", None)
    if path is not None:
        from pathlib import Path

        return f"{kind}:{Path(path).resolve()}"
    return kind


@dataclass
class ViewPlan:
    """How to read some features of one view version from the online store."""

    view: FeatureView
    version: int
    table: str
    positions: list[int]  # index of each wanted feature in the stored record (after the time)
    names: list[str]  # output names
    ttl_ms: int | None
    defaults: list[Any] | None  # None: the view says "error"
    refuse_expired: bool = False  # the view says on_expired="refuse"

    @cached_property
    def pairs(self) -> list[tuple[str, int]]:
        """(output name, record position) of each feature."""
        return list(zip(self.names, self.positions, strict=True))


@dataclass
class OnlinePlan:
    """A resolved list of features, ready for repeated online lookups (serving keeps one)."""

    views: list[ViewPlan]
    on_demand: list[tuple[OnDemandView, list[str], list[str]]]  # (view, features, out names)
    columns: list[str]  # output names in reference order
    entity_keys: list[str]
    request_fields: dict[str, str]
    feature_types: dict[str, str] = field(default_factory=dict)  # output name -> type

    @cached_property
    def in_order(self) -> bool:
        """The views' outputs, concatenated, are exactly `columns` (nothing to reorder)."""
        return [n for v in self.views for n in v.names] == self.columns


class OnlineFeatures(dict[str, list[Any]]):
    """Feature name -> one value per entity row (a plain dict to read), and which rows got a
    default because their value was older than the view's TTL."""

    def __init__(
        self,
        columns: Mapping[str, list[Any]],
        *,
        expired: Mapping[str, list[bool]] | None = None,
        views: Sequence[str] = (),
        rows: int = 0,
    ) -> None:
        super().__init__(columns)
        self._expired = dict(expired or {})  # only the views with an expired row
        self._views = list(views)
        self._rows = rows

    @property
    def expired(self) -> dict[str, list[bool]]:
        """View name -> per row, whether its value had expired (and the default was served)."""
        return {v: self._expired.get(v) or [False] * self._rows for v in self._views}

    @property
    def expired_rows(self) -> list[bool]:
        """Per row: did any of its views' values expire?"""
        return [any(flags) for flags in zip(*self._expired.values(), strict=True)] or [
            False
        ] * self._rows

    @property
    def expired_counts(self) -> dict[str, int]:
        """View name -> how many rows got its default because their value expired."""
        return {v: sum(flags) for v, flags in self._expired.items()}


def lookup(
    online: OnlineStore, plan: OnlinePlan, entity_rows: Sequence[Mapping[str, Any]]
) -> OnlineFeatures:
    """Fetch `plan`'s features for `entity_rows` in one online round trip."""
    from orjson import loads

    n = len(entity_rows)
    requests = _read_requests(plan, entity_rows)
    blobs = online.read_many(requests)
    now = time.time_ns() // 1_000_000
    out: dict[str, list[Any]] = {}
    expired: dict[str, list[bool]] = {}
    for vp, (_, keys), found in zip(plan.views, requests, blobs, strict=True):
        recs = [loads(b) if b is not None else None for b in found]
        if vp.ttl_ms is not None:
            oldest = now - vp.ttl_ms
            stale = [r is not None and r[0] < oldest for r in recs]
            if True in stale:
                if vp.refuse_expired:
                    raise _expired_error(vp, keys[stale.index(True)])
                expired[vp.view.name] = stale
                recs = [None if s else r for r, s in zip(recs, stale, strict=True)]
        if None in recs:
            if vp.defaults is None:
                i = recs.index(None)
                too_old = found[i] is not None
                raise NotFoundError(
                    f"no online features of view '{vp.view.name}' for entity "
                    f"{keys[i]!r}" + (" (expired)" if too_old else ""),
                    field=vp.view.join_keys[0],
                    view=vp.view.name,
                    entity=keys[i],
                    expired=too_old,
                )
            for name, p, d in zip(vp.names, vp.positions, vp.defaults, strict=True):
                out[name] = [r[p] if r is not None else d for r in recs]
        elif n == 1:  # the common online case: one entity, found
            rec = recs[0]
            assert rec is not None
            for name, p in vp.pairs:
                out[name] = [rec[p]]
        else:  # every entity found: no per-value check
            for name, p in vp.pairs:
                out[name] = [r[p] for r in recs]  # type: ignore[index]
    if plan.on_demand:
        _add_on_demand(plan, entity_rows, out)
    if not (plan.in_order and not plan.on_demand):  # reorder, and drop hidden columns
        out = {c: out[c] for c in plan.columns}
    return OnlineFeatures(out, expired=expired, views=[vp.view.name for vp in plan.views], rows=n)


def _read_requests(
    plan: OnlinePlan, entity_rows: Sequence[Mapping[str, Any]]
) -> list[tuple[str, list[str]]]:
    """Per view of `plan`: its table and the encoded key of each entity row (one loop over
    the views, so a lookup costs one call here whatever their number)."""
    requests: list[tuple[str, list[str]]] = []
    for vp in plan.views:
        jk = vp.view.join_keys
        kt = vp.view.entity.key_type
        try:
            if len(jk) == 1:
                k0 = jk[0]
                raw = [row[k0] for row in entity_rows]
                keys = [str(v) if type(v) is int else encode_key([v], kt) for v in raw]
            else:
                keys = [encode_key([row[k] for k in jk], kt) for row in entity_rows]
        except KeyError as exc:
            raise InvalidArgumentError(
                f"entity rows need the join key {exc.args[0]!r}", field=str(exc.args[0])
            ) from None
        requests.append((vp.table, keys))
    return requests


def _add_on_demand(
    plan: OnlinePlan, entity_rows: Sequence[Mapping[str, Any]], out: dict[str, list[Any]]
) -> None:
    """Compute the plan's on-demand features from the request fields and fetched values."""
    import pandas as pd

    from shipyard.features import ondemand

    n = len(entity_rows)
    frame_cols: dict[str, Any] = {}
    for f in plan.request_fields:
        try:
            frame_cols[f] = [row[f] for row in entity_rows]
        except KeyError:
            raise InvalidArgumentError(
                f"the request needs the field '{f}' for on-demand features", field=f
            ) from None
    for vp in plan.views:
        for name, f_idx in zip(vp.names, vp.positions, strict=True):
            feat = list(vp.view.features)[f_idx - 1]
            frame_cols[feat] = pd.array(out[name], dtype=_pd_type(vp.view.features[feat]))  # type: ignore[call-overload]
    frame = pd.DataFrame(frame_cols, index=range(n))
    for od, feats, names in plan.on_demand:
        computed = ondemand.compute(od, frame)
        for f, name in zip(feats, names, strict=True):
            out[name] = [None if pd.isna(v) else _py(v) for v in computed[f]]


def _expired_error(vp: ViewPlan, key: str) -> NotFoundError:
    return NotFoundError(
        f"the online features of view '{vp.view.name}' for entity {key!r} expired (older "
        f"than the view's ttl of {vp.view.ttl}) and the view refuses expired values "
        "(on_expired='refuse')",
        field=vp.view.join_keys[0],
        view=vp.view.name,
        entity=key,
        expired=True,
    )


def _py(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def _pd_type(t: str) -> str:
    return {"double": "float64", "float": "float32", "long": "Int64", "integer": "Int32"}.get(
        t, "object" if t == "string" else "boolean"
    )
