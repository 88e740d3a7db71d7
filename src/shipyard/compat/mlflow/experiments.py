"""MLflow's experiment routes on shipyard's `Experiments`.

MLflow's ids are strings of shipyard's experiment ids; its default experiment "0" is the one
named "default" (made when first asked for). Delete and restore are MLflow's soft delete (a
lifecycle stage). Tags are kept; a search filters by them (`tags.team = 'a'`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from shipyard.compat.mlflow import convert
from shipyard.errors import AlreadyExistsError, InvalidArgumentError, NotFoundError

if TYPE_CHECKING:
    from shipyard.tracking import Experiments
    from shipyard.tracking.experiments import ExperimentRecord

MAX_EXPERIMENTS_PAGE = 50_000
VIEW_TYPES = {"ACTIVE_ONLY": "active", "DELETED_ONLY": "deleted", "ALL": None}
_VIEW_NUMBERS = {"1": "ACTIVE_ONLY", "2": "DELETED_ONLY", "3": "ALL"}
_CLAUSE = re.compile(
    r"""\s*(?:attributes?\.|attr\.)?(?P<key>name|creation_time|last_update_time
    |tags\.`[^`]+`|tags\."[^"]+"|tags\.[\w.\-]+)\s*
    (?P<op>=|!=|>=|<=|>|<|(?i:not\s+like|like|ilike))\s*
    (?P<value>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|-?\d+)\s*""",
    re.VERBOSE,
)
_ORDER = re.compile(
    r"^\s*(?:attributes?\.|attr\.)?(name|experiment_id|creation_time|last_update_time)"
    r"(?:\s+(ASC|DESC))?\s*$",
    re.IGNORECASE,
)


def view_type(body: Mapping[str, Any], name: str) -> str | None:
    """The lifecycle stage a view type asks for: "active", "deleted" or None (all)."""
    value = convert.text(body, name, required=False) or "ACTIVE_ONLY"
    value = _VIEW_NUMBERS.get(value, value).upper()
    if value not in VIEW_TYPES:
        raise InvalidArgumentError(
            f"'{name}' must be one of {', '.join(VIEW_TYPES)}, got {value!r}", field=name
        )
    return VIEW_TYPES[value]


class ExperimentRoutes:
    def __init__(self, experiments: Experiments) -> None:
        self.experiments = experiments

    def record(self, exp_id: str) -> ExperimentRecord:
        """The experiment with MLflow id `exp_id` ("0": the default one, made if missing)."""
        if exp_id == convert.DEFAULT_EXPERIMENT_ID:
            try:
                return self.experiments.get(convert.DEFAULT_EXPERIMENT)
            except NotFoundError:
                try:
                    return self.experiments.create(convert.DEFAULT_EXPERIMENT)
                except AlreadyExistsError:  # made meanwhile by another request
                    return self.experiments.get(convert.DEFAULT_EXPERIMENT)
        if not exp_id.isdigit():
            raise InvalidArgumentError(
                f"experiment_id must be a number, got {exp_id!r}", field="experiment_id"
            )
        return self.experiments.get_by_id(int(exp_id))

    def create(self, body: Mapping[str, Any]) -> dict[str, Any]:
        name = convert.required(body, "name")
        tags = convert.key_values(body, "tags")
        return {"experiment_id": convert.experiment_id(self.experiments.create(name, tags=tags))}

    def set_tag(self, body: Mapping[str, Any]) -> dict[str, Any]:
        exp = self.record(convert.required(body, "experiment_id"))
        value = convert.text(body, "value", required=False) or ""
        self.experiments.set_tag(exp.name, convert.required(body, "key"), value)
        return {}

    def delete_tag(self, body: Mapping[str, Any]) -> dict[str, Any]:
        exp = self.record(convert.required(body, "experiment_id"))
        self.experiments.delete_tag(exp.name, convert.required(body, "key"))
        return {}

    def get(self, body: Mapping[str, Any]) -> dict[str, Any]:
        exp_id = convert.required(body, "experiment_id")
        return {"experiment": convert.experiment_json(self.record(exp_id))}

    def get_by_name(self, body: Mapping[str, Any]) -> dict[str, Any]:
        name = convert.required(body, "experiment_name")
        return {"experiment": convert.experiment_json(self.experiments.get(name))}

    def update(self, body: Mapping[str, Any]) -> dict[str, Any]:
        exp_id, new_name = (
            convert.required(body, "experiment_id"),
            convert.required(body, "new_name"),
        )
        self.experiments.rename(self.record(exp_id).name, new_name)
        return {}

    def delete(self, body: Mapping[str, Any]) -> dict[str, Any]:
        exp_id = convert.required(body, "experiment_id")
        self.experiments.mark_deleted(self.record(exp_id).name)
        return {}

    def restore(self, body: Mapping[str, Any]) -> dict[str, Any]:
        exp_id = convert.required(body, "experiment_id")
        self.experiments.restore(self.record(exp_id).name)
        return {}

    def search(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Filtered by name and times, ordered, paged by offset (experiments are few)."""
        limit = convert.integer(body, "max_results", 1000) or 0
        if not 1 <= limit <= MAX_EXPERIMENTS_PAGE:
            raise InvalidArgumentError(
                f"max_results must be between 1 and {MAX_EXPERIMENTS_PAGE}, got {limit}",
                field="max_results",
            )
        stage = view_type(body, "view_type")
        found = [
            convert.experiment_json(r)
            for r in self.experiments.list()
            if stage is None or r.lifecycle_stage == stage
        ]
        found = [e for e in found if _matches(e, convert.text(body, "filter", required=False))]
        _sort(found, convert.strings(body, "order_by"))
        start = convert.read_offset(convert.text(body, "page_token", required=False))
        page = found[start : start + limit]
        out: dict[str, Any] = {"experiments": page}
        if start + limit < len(found):
            out["next_page_token"] = convert.offset_token(start + limit)
        return out


def _matches(experiment: dict[str, Any], text: str | None) -> bool:
    """Whether the experiment passes an MLflow experiment filter (name, time and tag
    clauses joined by AND; an experiment without the tag does not pass)."""
    if not text or not text.strip():
        return True
    for part in re.split(r"\s+and\s+", text.strip(), flags=re.IGNORECASE):
        m = _CLAUSE.fullmatch(part)
        if m is None:
            raise InvalidArgumentError(
                f"cannot search experiments by {part!r}: use name (= != LIKE ILIKE), "
                "creation_time, last_update_time or tags.<key>",
                field="filter",
            )
        key = m["key"]
        if key.startswith("tags."):
            tags = {t["key"]: t["value"] for t in experiment["tags"]}
            actual = tags.get(key[5:].strip('`"'))
            if actual is None:
                return False
        else:
            actual = experiment[key]
        if not _compare(actual, " ".join(m["op"].upper().split()), m["value"]):
            return False
    return True


def _compare(actual: Any, op: str, raw: str) -> bool:
    if raw[0] in "'\"":
        value: Any = re.sub(r"\\(.)", r"\1", raw[1:-1])
    else:
        value = int(raw)
    if isinstance(actual, int) != isinstance(value, int):
        raise InvalidArgumentError(f"wrong type of value {raw} for {op}", field="filter")
    if op in ("LIKE", "ILIKE", "NOT LIKE"):
        hit = convert.like(actual, value, fold=op == "ILIKE")
        return hit if op != "NOT LIKE" else not hit
    ops = {
        "=": actual == value,
        "!=": actual != value,
        ">": actual > value,
        ">=": actual >= value,
        "<": actual < value,
        "<=": actual <= value,
    }
    return bool(ops[op])


def _sort(found: list[dict[str, Any]], order_by: list[str]) -> None:
    """MLflow's default: last update first, then the id."""
    keys = [("last_update_time", True)]
    if order_by:
        keys = []
        for item in order_by:
            m = _ORDER.match(item)
            if m is None:
                raise InvalidArgumentError(
                    f"cannot order experiments by {item!r}", field="order_by"
                )
            keys.append((m.group(1).lower(), (m.group(2) or "ASC").upper() == "DESC"))
    found.sort(key=lambda e: int(e["experiment_id"]))
    for key, descending in reversed(keys):
        if key == "experiment_id":
            found.sort(key=lambda e: int(e["experiment_id"]), reverse=descending)
        else:
            found.sort(key=lambda e, k=key: e[k], reverse=descending)  # type: ignore[misc]
