"""MLflow's run filter and order_by strings, said in shipyard's filter language
(`tracking/search.py`), which then parses and checks them.

    to_filter("metrics.acc > 0.9 and tags.\"mlflow.runName\" = 'rf'")
    # -> "metrics.`acc` > 0.9 and attributes.name = 'rf'"

The two languages share their shape (prefix.key op value, joined by AND); what differs is
spelled here: keys quoted in double quotes, MLflow's attribute names (run_id, run_name,
user_id, created) and the system tags shipyard keeps as run fields (mlflow.runName is the
run's name). What shipyard cannot search (dataset.*, artifact_uri, IS NULL) is refused with
INVALID_PARAMETER_VALUE naming it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from shipyard.errors import InvalidArgumentError

_QUOTED_KEY = re.compile(r"""\b([A-Za-z_]+)\.("(?:[^"\\]|\\.)*")""")
_ATTRIBUTE_PREFIXES = {"attributes", "attribute", "attr", "run"}
_KEYED_PREFIXES = {"metrics", "metric", "params", "param", "tags", "tag"}
_ATTRIBUTES = {
    "run_id": "id",
    "run_name": "name",
    "status": "status",
    "start_time": "start_time",
    "end_time": "end_time",
    "created": "start_time",
    "Created": "start_time",
    "user_id": "user",
}
# system tags that shipyard keeps as a run's own fields
_TAG_ATTRIBUTES = {"mlflow.runName": "name"}


def to_filter(text: str | None, field: str = "filter") -> str | None:
    """`text` in shipyard's filter language (None or blank: no filter)."""
    if text is None or not text.strip():
        return None
    from shipyard.tracking.search import tokenize

    text = _QUOTED_KEY.sub(lambda m: f"{m.group(1)}.`{_unescape(m.group(2))}`", text)
    out, end = [], 0  # the text between tokens is kept, so positions in errors stay close
    for token in tokenize(text):
        if token.kind == "ident" and token.text.upper() == "IS":
            raise InvalidArgumentError(
                "IS NULL / IS NOT NULL is not supported in this server's filter", field=field
            )
        if token.kind == "ident" and "." in token.text:
            out += [text[end : token.pos], _identifier(token.text, field)]
            end = token.pos + len(token.text)
    return "".join([*out, text[end:]])


def to_order_by(items: Sequence[str] | None) -> list[str]:
    """Each `key [ASC|DESC]` with its key said in shipyard's language."""
    out = []
    for item in items or ():
        text = to_filter(item, field="order_by")
        if text:
            out.append(text)
    return out


def _identifier(text: str, field: str) -> str:
    prefix, _, key = text.partition(".")
    if key.startswith("`") and key.endswith("`") and len(key) > 1:
        key = key[1:-1]
    lowered = prefix.lower()
    if lowered in _ATTRIBUTE_PREFIXES:
        if key not in _ATTRIBUTES:
            known = ", ".join(sorted(k for k in _ATTRIBUTES if k != "Created"))
            raise InvalidArgumentError(
                f"attribute '{key}' cannot be searched on this server; known: {known}",
                field=field,
            )
        return f"attributes.{_ATTRIBUTES[key]}"
    if lowered in _KEYED_PREFIXES:
        if lowered.startswith("tag") and key in _TAG_ATTRIBUTES:
            return f"attributes.{_TAG_ATTRIBUTES[key]}"
        if "`" in key:
            raise InvalidArgumentError(f"a key may not hold a backquote: {key!r}", field=field)
        return f"{lowered}.`{key}`"
    if lowered in ("dataset", "datasets"):
        raise InvalidArgumentError(
            "searching runs by dataset is not supported on this server yet", field=field
        )
    raise InvalidArgumentError(
        f"unknown prefix '{prefix}'; use metrics., params., tags. or attributes.", field=field
    )


def _unescape(quoted: str) -> str:
    return re.sub(r"\\(.)", r"\1", quoted[1:-1])
