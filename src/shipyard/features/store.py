"""`FeatureStore`: register definitions, build point-in-time-correct training frames,
materialize and push to the online store, and look features up online.

>>> store = FeatureStore()
>>> store.apply([driver, driver_stats, per_trip, churn])
>>> train = store.get_training_frame(events, features=churn)      # or ["driver_stats:trips"]
>>> store.materialize()                                            # incremental
>>> store.get_online_features(churn, [{"driver_id": 7, "amount": 12.5}])
{'trips': [31], 'rating': [4.8], 'per_trip': [0.4]}

Feature references are "view:feature" or a view name (all its features); a `FeatureService`
(or its name) stands for its list. Output columns are the feature names (`full_names=True`
gives "view__feature", needed when two views share a feature name).
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.errors import InvalidArgumentError, NotFoundError
from shipyard.features.definitions import (
    Entity,
    FeatureService,
    FeatureView,
    OnDemandView,
    kind_of,
)
from shipyard.features.online import (
    OnlineFeatures,
    OnlinePlan,
    ViewPlan,
    encode_key,
    lookup,
    online_store_identity,
    table_name,
)
from shipyard.features.push import MISSING, append_offline, as_records, check_value

if TYPE_CHECKING:
    import pandas as pd

    from shipyard.config import Settings
    from shipyard.stores import Stores
    from shipyard.stores.features import ApplyResult
    from shipyard.stores.online import OnlineStore

Features = FeatureService | str | Sequence[str]
Progress = Callable[[str, int, int], None]  # (view, records done, records total)


class FeatureStore:
    """The feature store of one shipyard installation (metadata DB + online store)."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        stores: Stores | None = None,
        online: OnlineStore | None = None,
        memory_limit: str = "400MB",
        registry_ttl_seconds: float = 10.0,
    ) -> None:
        from shipyard.config import get_settings

        self.settings = settings or get_settings()
        self._stores = stores
        self._online = online
        self.memory_limit = memory_limit
        self.registry_ttl_seconds = registry_ttl_seconds
        self._frames: dict[str, Any] = {}  # in-process DataFrame sources, by view name
        self._functions: dict[str, OnDemandView] = {}  # on-demand views applied here
        self._plans: dict[Any, tuple[float, OnlinePlan]] = {}
        self._lock = threading.Lock()

    @property
    def stores(self) -> Stores:
        if self._stores is None:
            from shipyard.stores import open_stores

            self._stores = open_stores(self.settings)
        return self._stores

    @property
    def online(self) -> OnlineStore:
        if self._online is None:
            from shipyard.stores.online import open_online_store

            # generous: a materialization is one large atomic write; never wait forever
            self._online = open_online_store(self.settings, timeout=30.0)
        return self._online

    @property
    def _registry(self) -> Any:
        return self.stores.metadata.features

    # -- definitions ---------------------------------------------------------------------------

    def apply(
        self, objects: Iterable[Any], *, base_path: Path | str | None = None
    ) -> list[tuple[str, ApplyResult]]:
        """Register definitions (entities, views, on-demand views, services). A changed
        definition becomes a new version; an unchanged one is left as it is. Relative source
        paths are resolved against `base_path` (default: the working directory)."""
        base = Path(base_path) if base_path is not None else Path.cwd()
        objs = list(objects)
        for obj in list(objs):  # entities of views count as declared
            if isinstance(obj, FeatureView) and not any(
                isinstance(o, Entity) and o.name == obj.entity.name for o in objs
            ):
                objs.insert(0, obj.entity)
        order = {"entity": 0, "view": 1, "on_demand": 2, "service": 3}
        objs.sort(key=lambda o: order[kind_of(o)])
        seen: dict[tuple[str, str], Any] = {}
        for obj in objs:
            key = (kind_of(obj), obj.name)
            if key in seen and seen[key] is not obj:
                raise InvalidArgumentError(f"{key[0]} '{obj.name}' is defined twice")
            seen[key] = obj
        views = {o.name for o in objs if isinstance(o, FeatureView)}
        known_views = views | {r.name for r in self._registry.latest("view")}
        for obj in objs:  # check everything first: a bad definition applies nothing
            if isinstance(obj, OnDemandView):
                for src in obj.sources:
                    if src not in known_views:
                        raise NotFoundError.for_name("feature view", src, known_views)
            elif isinstance(obj, FeatureService):
                self._resolve_refs(obj.references(), pending=objs)
        results: list[tuple[str, ApplyResult]] = []
        actor = self.stores.actor
        for obj in objs:
            kind = kind_of(obj)
            if isinstance(obj, FeatureView):
                source = obj.source.resolved(base)
                obj = FeatureView(**{**_fields(obj), "source": source})
                if source.kind == "dataframe":
                    self._frames[obj.name] = source.frame
            elif isinstance(obj, OnDemandView):
                self._functions[obj.name] = obj
            schema = obj.schema() if hasattr(obj, "schema") else obj.to_spec()
            result = self._registry.apply(kind, obj.name, obj.to_spec(), schema, actor=actor)
            results.append((kind, result))
        with self._lock:
            self._plans.clear()
        return results

    def list_definitions(self, kind: str | None = None) -> list[Any]:
        """The newest version of every definition (records with kind, name, version, spec)."""
        return list(self._registry.latest(kind))

    def versions(self, kind: str, name: str) -> list[Any]:
        """Every version of one definition, oldest first (records with version, spec)."""
        return list(self._registry.versions(kind, name))

    def materialized_until(self, view: str, version: int) -> int | None:
        """Epoch ms up to which (exclusive) a view version is in the online store, if at all."""
        until: int | None = self._registry.materialized_until(view, version)
        return until

    def get_view(self, name: str, version: int | None = None) -> tuple[FeatureView, int]:
        try:
            rec = self._registry.get("view", name, version)
        except NotFoundError:
            names = [r.name for r in self._registry.latest("view")]
            names += [r.name for r in self._registry.latest("on_demand")]
            raise NotFoundError.for_name("feature view", name, names) from None
        return FeatureView.from_spec(name, rec.spec, self._frames.get(name)), rec.version

    def get_on_demand(self, name: str) -> OnDemandView:
        rec = self._registry.get("on_demand", name)
        local = self._functions.get(name)
        if local is not None and local.code_digest == rec.spec.get("code"):
            return local
        from shipyard.features.ondemand import load_function

        view = load_function(name, rec.spec)
        self._functions[name] = view
        return view

    def get_service(self, name: str) -> FeatureService:
        rec = self._registry.get("service", name)
        spec = rec.spec
        return FeatureService(name, list(spec["features"]), spec.get("description", ""))

    def _resolve_refs(
        self, refs: Sequence[str], pending: Sequence[Any] = ()
    ) -> list[tuple[str, str, str]]:
        """References → [(kind, view name, feature)], checked against the registered (or
        about to be registered) definitions, in order, without duplicates."""
        local_views = {o.name: o for o in pending if isinstance(o, (FeatureView, OnDemandView))}
        latest = {r.name: r for r in self._registry.latest("view")}
        latest_od = {r.name: r for r in self._registry.latest("on_demand")}
        out: list[tuple[str, str, str]] = []
        for ref in refs:
            if not isinstance(ref, str) or not ref:
                raise InvalidArgumentError(f"feature reference {ref!r} is not 'view:feature'")
            view_name, _, feat = ref.partition(":")
            obj = local_views.get(view_name)
            if obj is not None:
                kind = "view" if isinstance(obj, FeatureView) else "on_demand"
                features = list(obj.features)
            elif view_name in latest:
                kind, features = "view", list(latest[view_name].spec["features"])
            elif view_name in latest_od:
                kind, features = "on_demand", list(latest_od[view_name].spec["features"])
            else:
                names = [*local_views, *latest, *latest_od]
                every = [f"{v}:{f}" for v, r in latest.items() for f in r.spec["features"]]
                raise NotFoundError.for_name("feature", ref, names if not feat else every)
            wanted = features if not feat else [feat]
            for f in wanted:
                if f not in features:
                    raise NotFoundError.for_name(
                        "feature", ref, [f"{view_name}:{x}" for x in features]
                    )
                item = (kind, view_name, f)
                if item not in out:
                    out.append(item)
        return out

    def _refs(self, features: Features) -> list[str]:
        if isinstance(features, FeatureService):
            return features.references()
        if isinstance(features, str):
            if ":" in features:
                return [features]
            try:
                return self.get_service(features).references()
            except NotFoundError:
                return [features]
        refs = list(features)
        if not refs:
            raise InvalidArgumentError("no features requested", field="features")
        return refs

    def _output_names(
        self, items: list[tuple[str, str, str]], full_names: bool
    ) -> dict[tuple[str, str], str]:
        names: dict[tuple[str, str], str] = {}
        taken: dict[str, str] = {}
        for _, view, feat in items:
            name = f"{view}__{feat}" if full_names else feat
            if name in taken and taken[name] != view:
                raise InvalidArgumentError(
                    f"feature '{feat}' is in views '{taken[name]}' and '{view}'; "
                    "pass full_names=True to get view__feature columns",
                    field=feat,
                )
            taken[name] = view
            names[(view, feat)] = name
        return names

    # -- offline -------------------------------------------------------------------------------

    def get_training_frame(
        self,
        entity_df: pd.DataFrame,
        features: Features,
        *,
        timestamp: str = "event_timestamp",
        full_names: bool = False,
    ) -> pd.DataFrame:
        """`entity_df` with one column per feature: each feature's latest value at or before
        the row's `timestamp`, within the view's TTL, else null. Same rows, same order, same
        index (duplicates kept). Timezone-naive timestamps are read as UTC."""
        import pandas as pd

        from shipyard.features.offline import add_on_demand, fill_defaults, point_in_time_join

        if not isinstance(entity_df, pd.DataFrame):
            raise InvalidArgumentError("entity_df must be a pandas DataFrame", field="entity_df")
        items = self._resolve_refs(self._refs(features))
        names = self._output_names(items, full_names)
        # on-demand views need their source views' features, wanted or not
        od_views = {v: self.get_on_demand(v) for k, v, _ in items if k == "on_demand"}
        wanted, helper = self._offline_wanted(items, od_views)
        views = [(self.get_view(v)[0], fs) for v, fs in wanted.items()]
        all_names = {**names, **helper}
        columns = point_in_time_join(
            entity_df,
            views,
            timestamp=timestamp,
            names=all_names,
            memory_limit=self.memory_limit,
        )
        fill_defaults(views, all_names, columns)
        out = entity_df.copy()
        for (view, feat), name in names.items():
            if (view, feat) in all_names and all_names[(view, feat)] in columns:
                out[name] = columns[all_names[(view, feat)]]
        sources = {src: self.get_view(src)[0] for od in od_views.values() for src in od.sources}
        add_on_demand(out, entity_df, od_views, sources, names, columns, all_names)
        return out

    def _offline_wanted(
        self, items: list[tuple[str, str, str]], od_views: dict[str, OnDemandView]
    ) -> tuple[dict[str, list[str]], dict[tuple[str, str], str]]:
        """View name → the features to join, and the helper output names of the source
        features that on-demand views need but the caller did not ask for."""
        wanted: dict[str, list[str]] = {}
        for kind, view, feat in items:
            if kind == "view":
                wanted.setdefault(view, []).append(feat)
        helper: dict[tuple[str, str], str] = {}
        for od in od_views.values():
            for src in od.sources:
                view_obj, _ = self.get_view(src)
                for f in view_obj.features:
                    if f not in wanted.setdefault(src, []):
                        wanted[src].append(f)
                        helper[(src, f)] = f"__sy_{src}__{f}"
        return wanted, helper

    # -- online --------------------------------------------------------------------------------

    def materialize(
        self,
        start: dt.datetime | None = None,
        end: dt.datetime | None = None,
        *,
        views: Sequence[str] | None = None,
        progress: Progress | None = None,
    ) -> dict[str, int]:
        """Load the latest value per entity with event time in [start, end) of every online
        view (or `views`) into the online store. `start` defaults to where the last
        materialization of that view version ended (from the beginning the first time), `end`
        to now. Each view is written atomically: on failure its online values stay as they
        were and its materialization state does not move. Returns records written per view."""
        from shipyard.features.offline import latest_per_entity, normalize_timestamps

        end_ts = _utc(end) if end is not None else dt.datetime.now(dt.UTC).replace(tzinfo=None)
        start_ts = _utc(start) if start is not None else None
        if start_ts is not None and start_ts >= end_ts:
            raise InvalidArgumentError("--start must be before --end", field="start")
        names = (
            list(views) if views is not None else [r.name for r in self._registry.latest("view")]
        )
        written: dict[str, int] = {}
        store = online_store_identity(self.online)
        for name in names:
            view, version = self.get_view(name)
            if not view.online:
                if views is not None:
                    raise InvalidArgumentError(f"view '{name}' is not online (online=False)")
                continue
            since = start_ts
            if since is None:
                until = self._registry.materialized_until(name, version, store)
                if until is not None:
                    since = dt.datetime.fromtimestamp(until / 1000, dt.UTC).replace(tzinfo=None)
            if since is not None and since >= end_ts:
                written[name] = 0
                continue
            table = latest_per_entity(view, since, end_ts, memory_limit=self.memory_limit)
            total = table.num_rows
            records = self._records(view, table, normalize_timestamps, progress, total)
            self.online.write(table_name(name, version), records)
            self._registry.record_materialization(
                name, version, _ms(end_ts), total, actor=self.stores.actor, store=store
            )
            written[name] = total
        return written

    def _records(
        self, view: FeatureView, table: Any, _norm: Any, progress: Progress | None, total: int
    ) -> Iterator[tuple[str, int, bytes]]:
        import orjson
        import pyarrow.compute as pc

        from shipyard.features.offline import VTS

        ts_ms = pc.divide(table.column(VTS).cast("int64"), 1000).to_pylist()
        if len(view.join_keys) == 1:
            # the same text as encode_key gives: str(int) for integer keys, str() else
            keys = [str(k) for k in table.column(view.join_keys[0]).to_pylist()]
        else:
            columns = [table.column(k).to_pylist() for k in view.join_keys]
            keys = [encode_key(list(ks), "string") for ks in zip(*columns, strict=True)]
        values = [table.column(f).to_pylist() for f in view.features]
        step = max(total // 100, 1000)
        dumps = orjson.dumps
        # a record is [event time, value, ...]: orjson writes the tuple as a JSON array
        for i, row in enumerate(zip(ts_ms, *values, strict=True)):
            yield keys[i], row[0], dumps(row)
            if progress is not None and (i + 1) % step == 0:
                progress(view.name, i + 1, total)
        if progress is not None:
            progress(view.name, total, total)

    def push(
        self,
        view_name: str,
        rows: pd.DataFrame | Sequence[Mapping[str, Any]],
        *,
        to: str = "online",
    ) -> int:
        """Write fresh values of one view, now: to the online store (`to="online"`), to the
        offline store (`"offline"`: a new Parquet file in the view's source folder, so training
        frames see the values too), or both (`"online_and_offline"`, offline first). Each row
        needs the join keys, the view's timestamp column (or none: now) and every feature,
        with values of the declared types; all rows are checked before anything is written.
        Returns the rows stored online (older than what is online already are skipped), or
        the rows written offline when `to="offline"`."""
        import orjson

        from shipyard.features.offline import normalize_timestamps

        if to not in ("online", "offline", "online_and_offline"):
            raise InvalidArgumentError(
                f"to={to!r}: use 'online', 'offline' or 'online_and_offline'", field="to"
            )
        view, version = self.get_view(view_name)
        if to != "offline" and not view.online:
            raise InvalidArgumentError(f"view '{view_name}' is not online (online=False)")
        records_in = as_records(rows)
        if not records_in:
            raise InvalidArgumentError("push needs at least one row", field="rows")
        now = time.time_ns() // 1_000_000
        stamps = [r.get(view.timestamp) for r in records_in]
        if any(s is not None for s in stamps):
            import pandas as pd

            filled = [s if s is not None else pd.Timestamp(now, unit="ms") for s in stamps]
            series = normalize_timestamps(pd.Series(filled, dtype=object), view.timestamp)
            ts_ms = (series.astype("int64") // 1000).tolist()
        else:
            ts_ms = [now] * len(records_in)
        checked: list[tuple[list[Any], list[Any]]] = []
        for i, row in enumerate(records_in):
            missing = [k for k in view.join_keys if row.get(k) is None]
            if missing:
                raise InvalidArgumentError(
                    f"rows[{i}]: missing join key '{missing[0]}'", field=missing[0]
                )
            values = [
                check_value(view.name, i, f, t, row.get(f, MISSING))
                for f, t in view.features.items()
            ]
            checked.append(([row[k] for k in view.join_keys], values))
        if to in ("offline", "online_and_offline"):
            append_offline(view, checked, ts_ms)
            if to == "offline":
                return len(checked)
        out = [
            (
                encode_key(keys, view.entity.key_type),
                ts_ms[i],
                orjson.dumps([ts_ms[i], *values]),
            )
            for i, (keys, values) in enumerate(checked)
        ]
        return self.online.write(table_name(view_name, version), out)

    def online_plan(self, features: Features, *, full_names: bool = False) -> OnlinePlan:
        """Resolve `features` once for repeated lookups (cached for `registry_ttl_seconds`)."""
        cache_key = (
            features.name
            if isinstance(features, FeatureService)
            else features
            if isinstance(features, str)
            else tuple(features),
            full_names,
        )
        now = time.monotonic()
        cached = self._plans.get(cache_key)
        if cached is not None and cached[0] > now:
            return cached[1]
        plan = self._build_plan(features, full_names)
        with self._lock:
            self._plans[cache_key] = (now + self.registry_ttl_seconds, plan)
        return plan

    def _build_plan(self, features: Features, full_names: bool) -> OnlinePlan:
        items = self._resolve_refs(self._refs(features))
        names = self._output_names(items, full_names)
        wanted: dict[str, list[str]] = {}
        od: dict[str, list[str]] = {}
        for kind, vname, feat in items:
            (wanted if kind == "view" else od).setdefault(vname, []).append(feat)
        od_views = {n: self.get_on_demand(n) for n in od}
        hidden: dict[str, list[str]] = {}
        for o in od_views.values():
            for src in o.sources:
                for f in self.get_view(src)[0].features:
                    if f not in wanted.get(src, []):
                        hidden.setdefault(src, []).append(f)
        plans: list[ViewPlan] = []
        keys: list[str] = []
        types: dict[str, str] = {}
        for vname in [*wanted, *(v for v in hidden if v not in wanted)]:
            view, version = self.get_view(vname)
            if not view.online:
                raise InvalidArgumentError(f"view '{vname}' is not online (online=False)")
            feats = wanted.get(vname, []) + hidden.get(vname, [])
            order = list(view.features)
            out_names = [
                names[(vname, f)] if f in wanted.get(vname, []) else f"__sy_{vname}__{f}"
                for f in feats
            ]
            defaults: list[Any] | None
            if view.default == "error":
                defaults = None
            elif isinstance(view.default, Mapping):
                defaults = [view.default.get(f) for f in feats]
            else:
                defaults = [None] * len(feats)
            plans.append(
                ViewPlan(
                    view,
                    version,
                    table_name(vname, version),
                    [order.index(f) + 1 for f in feats],
                    out_names,
                    int(view.ttl.total_seconds() * 1000) if view.ttl else None,
                    defaults,
                    refuse_expired=view.on_expired == "refuse",
                )
            )
            for k in view.join_keys:
                if k not in keys:
                    keys.append(k)
            for f, n in zip(feats, out_names, strict=True):
                types[n] = view.features[f]
        request: dict[str, str] = {}
        od_plan = []
        for oname, feats in od.items():
            o = od_views[oname]
            request.update(o.request)
            od_plan.append((o, feats, [names[(oname, f)] for f in feats]))
            for f in feats:
                types[names[(oname, f)]] = o.features[f]
        columns = [names[(v, f)] for _, v, f in items]
        return OnlinePlan(plans, od_plan, columns, keys, request, types)

    def get_online_features(
        self,
        features: Features,
        entity_rows: Sequence[Mapping[str, Any]],
        *,
        full_names: bool = False,
    ) -> OnlineFeatures:
        """The latest online values for each entity row, as column → list of values. A
        missing (or expired) entity gets its view's default, or a NotFoundError (404) when the
        view's default is "error". A value older than the view's TTL is flagged per row in the
        result's `expired` (view → one flag per row), or is a NotFoundError naming the entity
        and the view when the view says `on_expired="refuse"`. On-demand features are
        computed from the row's request fields."""
        plan = self.online_plan(features, full_names=full_names)
        return lookup(self.online, plan, entity_rows)


def _utc(value: Any) -> dt.datetime:
    """A naive UTC datetime: naive input is UTC, aware input is converted."""
    import pandas as pd

    ts = pd.Timestamp(value)
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts.to_pydatetime()  # type: ignore[no-any-return]


def _ms(value: dt.datetime) -> int:
    return int(value.replace(tzinfo=dt.UTC).timestamp() * 1000)


def _fields(view: FeatureView) -> dict[str, Any]:
    import dataclasses

    return {f.name: getattr(view, f.name) for f in dataclasses.fields(view)}
