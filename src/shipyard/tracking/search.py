"""The run filter language, parsed into store clauses (never into SQL text).

    metrics.auc > 0.9 and params.model = "rf"
    tags.team IN ('a', 'b') AND status = 'FINISHED' AND params.name LIKE 'rf-%'

Prefixes: `metrics.` / `metric.`, `params.` / `param.`, `tags.` / `tag.`, `attributes.` /
`attr.` / `run.`; a bare name is an attribute (status, name, start_time, end_time, user, id,
git_commit, experiment). Keys with unusual characters go in backquotes: metrics.`val/auc`.
Clauses are joined with AND; the error for a bad filter points at the offending token.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from shipyard.errors import FilterSyntaxError, InvalidArgumentError
from shipyard.stores.records import Clause, FilterKind, OrderKey

_PREFIXES: dict[str, FilterKind] = {
    "metrics": "metrics",
    "metric": "metrics",
    "params": "params",
    "param": "params",
    "tags": "tags",
    "tag": "tags",
    "attributes": "attributes",
    "attribute": "attributes",
    "attr": "attributes",
    "run": "attributes",
}
_ATTRIBUTES = {
    "id",
    "run_id",
    "name",
    "run_name",
    "status",
    "start_time",
    "end_time",
    "user",
    "git_commit",
    "experiment",
}
_NUMERIC_ATTRIBUTES = {"start_time", "end_time"}
# Each clause is a subquery joined in; past a few hundred, SQLite refuses the statement
# ("expression tree too large"). Far more than any search a person writes.
MAX_FILTER_CLAUSES = 100
MAX_FILTER_CHARS = 10_000
MAX_ORDER_KEYS = 20
_COMPARE = {"=", "!=", ">", ">=", "<", "<="}
_STRING_OPS = {"=", "!=", "LIKE", "ILIKE", "IN", "NOT IN"}

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
  | (?P<number>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?(?![A-Za-z_]))
  | (?P<op>==|!=|<>|>=|<=|=|>|<)
  | (?P<lparen>\()
  | (?P<rparen>\))
  | (?P<comma>,)
  | (?P<ident>(?:[A-Za-z_][A-Za-z0-9_]*\.)?(?:`[^`]+`|[A-Za-z_][A-Za-z0-9_\-./:]*))
    """,
    re.VERBOSE,
)


@dataclass(frozen=True)
class Token:
    kind: str
    text: str
    pos: int


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise FilterSyntaxError(f"unexpected character {text[pos]!r}", text=text, position=pos)
        kind = m.lastgroup or ""
        if kind != "ws":
            tokens.append(Token(kind, m.group(), pos))
        pos = m.end()
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0

    def error(self, message: str, token: Token | None = None) -> FilterSyntaxError:
        pos = token.pos if token is not None else len(self.text)
        return FilterSyntaxError(message, text=self.text, position=pos)

    def peek(self) -> Token | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self) -> Token:
        tok = self.peek()
        if tok is None:
            raise self.error("the filter ends too early")
        self.i += 1
        return tok

    def word(self, tok: Token | None) -> str | None:
        return tok.text.upper() if tok is not None and tok.kind == "ident" else None

    def parse(self) -> list[Clause]:
        clauses = [self.clause()]
        while self.peek() is not None:
            if len(clauses) == MAX_FILTER_CLAUSES:
                raise InvalidArgumentError(
                    f"the filter has more than {MAX_FILTER_CLAUSES} comparisons; "
                    f"the limit is {MAX_FILTER_CLAUSES}",
                    field="filter",
                    limit=MAX_FILTER_CLAUSES,
                )
            tok = self.take()
            word = self.word(tok)
            if word == "OR":
                raise self.error("OR is not supported; run two searches or use IN (...)", tok)
            if word != "AND":
                raise self.error(f"expected AND between comparisons, found {tok.text!r}", tok)
            clauses.append(self.clause())
        return clauses

    def key(self, tok: Token) -> tuple[FilterKind, str]:
        if tok.kind != "ident":
            raise self.error(f"expected a name like metrics.auc, found {tok.text!r}", tok)
        prefix, dot, key = tok.text.partition(".")
        if not dot:
            kind: FilterKind = "attributes"
            key = prefix
        elif prefix.lower() in _PREFIXES:
            kind = _PREFIXES[prefix.lower()]
        else:
            raise self.error(
                f"unknown prefix '{prefix}'; use metrics., params., tags. or attributes.", tok
            )
        if key.startswith("`") and key.endswith("`"):
            key = key[1:-1]
        if not key:
            raise self.error("empty key", tok)
        if kind == "attributes" and key not in _ATTRIBUTES:
            raise self.error(
                f"unknown run attribute '{key}'; known: {', '.join(sorted(_ATTRIBUTES))} "
                "(or did you mean metrics.{key} / params.{key}?)".replace("{key}", key),
                tok,
            )
        return kind, key

    def clause(self) -> Clause:
        key_tok = self.take()
        kind, key = self.key(key_tok)
        op_tok = self.take()
        op = self.operator(op_tok)
        if kind == "metrics" or (kind == "attributes" and key in _NUMERIC_ATTRIBUTES):
            if op not in _COMPARE:
                raise self.error(f"{op} does not apply to numbers; use = != > >= < <=", op_tok)
            return Clause(kind, key, op, self.number())
        if op not in _STRING_OPS:
            raise self.error(f"{op} does not apply to {kind}; use = != LIKE ILIKE IN", op_tok)
        if op in ("IN", "NOT IN"):
            return Clause(kind, key, op, self.string_list())
        return Clause(kind, key, op, self.string())

    def operator(self, tok: Token) -> str:
        if tok.kind == "op":
            return {"==": "=", "<>": "!="}.get(tok.text, tok.text)
        word = self.word(tok)
        if word in ("LIKE", "ILIKE", "IN"):
            return word
        if word == "NOT":
            nxt = self.take()
            if self.word(nxt) == "IN":
                return "NOT IN"
            raise self.error("expected IN after NOT", nxt)
        raise self.error(
            f"expected a comparison (= != > >= < <= LIKE ILIKE IN), found {tok.text!r}", tok
        )

    def number(self) -> float:
        tok = self.take()
        if tok.kind != "number":
            raise self.error(f"expected a number, found {tok.text!r}", tok)
        return float(tok.text)

    def string(self) -> str:
        tok = self.take()
        if tok.kind == "string":
            return _unquote(tok.text)
        if tok.kind == "number":  # params are text: params.C = 1.0 means the text "1.0"
            return tok.text
        raise self.error(f"expected a quoted string, found {tok.text!r}", tok)

    def string_list(self) -> tuple[str, ...]:
        tok = self.take()
        if tok.kind != "lparen":
            raise self.error("expected '(' to start the list", tok)
        items = [self.string()]
        while True:
            tok = self.take()
            if tok.kind == "rparen":
                return tuple(items)
            if tok.kind != "comma":
                raise self.error("expected ',' or ')' in the list", tok)
            items.append(self.string())


def _unquote(text: str) -> str:
    body = text[1:-1]
    return re.sub(r"\\(.)", r"\1", body)


def parse_filter(text: str | None) -> list[Clause]:
    """Parse a filter string; empty or None means no filter."""
    if text is None or not text.strip():
        return []
    if len(text) > MAX_FILTER_CHARS:
        raise InvalidArgumentError(
            f"the filter is {len(text)} characters long; the limit is {MAX_FILTER_CHARS}",
            field="filter",
            limit=MAX_FILTER_CHARS,
        )
    return _Parser(text).parse()


def parse_order_by(items: Sequence[str] | str | None) -> list[OrderKey]:
    """`["metrics.auc DESC", "start_time"]` → order keys."""
    if items is None:
        return []
    if isinstance(items, str):
        items = [items]
    if len(items) > MAX_ORDER_KEYS or sum(map(len, items)) > MAX_FILTER_CHARS:
        raise InvalidArgumentError(
            f"order_by takes at most {MAX_ORDER_KEYS} keys of {MAX_FILTER_CHARS} characters in all",
            field="order_by",
            limit=MAX_ORDER_KEYS,
        )
    keys: list[OrderKey] = []
    for item in items:
        parser = _Parser(item)
        if not parser.tokens:
            continue
        kind, key = parser.key(parser.take())
        descending = False
        if (tok := parser.peek()) is not None:
            word = parser.word(parser.take())
            if word not in ("ASC", "DESC"):
                raise parser.error(f"expected ASC or DESC, found {tok.text!r}", tok)
            descending = word == "DESC"
            if (extra := parser.peek()) is not None:
                raise parser.error(f"unexpected {extra.text!r}", extra)
        keys.append(OrderKey(kind, key, descending))
    return keys


def describe(clauses: Sequence[Clause]) -> list[dict[str, Any]]:
    return [{"kind": c.kind, "key": c.key, "op": c.op, "value": c.value} for c in clauses]
