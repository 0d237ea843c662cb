"""A selector's Opsgenie search query applied to JSM incidents (already in the Opsgenie shape).

Jira lists incidents with JQL, not Opsgenie's search syntax, so the query that query.py builds
from `apiQueryParams` / `opsgenieQuery` is evaluated here on each shaped incident: terms
`field:value` and `field>=epoch-ms` (also `>`, `<`, `<=`) joined with AND, OR, NOT and
parentheses. Anything else is a configuration error that says to use `--jsm-incident-jql`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from opsgenie_export.errors import ConfigError
from opsgenie_export.jsm.shape import opsgenie_time

Predicate = Callable[[dict[str, Any]], bool]

_TOKEN = re.compile(r'\s*(\(|\)|(?:AND|OR|NOT)(?=[\s(]|$)|[A-Za-z_]+(?:>=|<=|:|>|<)(?:"(?:[^"\\]|\\.)*"|[^\s()]+))')
_TERM = re.compile(r"^([A-Za-z_]+)(>=|<=|:|>|<)(.*)$", re.S)
TEXT_FIELDS = {"status", "priority", "message", "tinyId", "jsmStatus"}
TIME_FIELDS = {"createdAt", "updatedAt"}
LIST_FIELDS = {"tags"}


def incident_filter(query: str) -> Predicate:
    """A predicate over shaped incidents; ConfigError when the query uses what JSM cannot answer."""
    if not query.strip():
        return lambda item: True
    tokens = _tokens(query)
    parser = _Parser(tokens, query)
    predicate = parser.or_()
    if parser.position != len(tokens):
        parser.fail("unexpected text")
    return predicate


def _tokens(query: str) -> list[str]:
    tokens, position = [], 0
    while position < len(query):
        if not query[position:].strip():
            break
        match = _TOKEN.match(query, position)
        if not match:
            raise ConfigError(_unsupported(query, f"cannot read {query[position:].strip()[:40]!r}"))
        tokens.append(match.group(1))
        position = match.end()
    return tokens


class _Parser:
    def __init__(self, tokens: list[str], query: str) -> None:
        self.tokens = tokens
        self.query = query
        self.position = 0

    def fail(self, why: str) -> None:
        raise ConfigError(_unsupported(self.query, why))

    def peek(self) -> str | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def take(self) -> str:
        token = self.peek()
        if token is None:
            self.fail("the query ends early")
        self.position += 1
        return token  # type: ignore[return-value]

    def or_(self) -> Predicate:
        parts = [self.and_()]
        while self.peek() == "OR":
            self.take()
            parts.append(self.and_())
        return parts[0] if len(parts) == 1 else (lambda item: any(p(item) for p in parts))

    def and_(self) -> Predicate:
        parts = [self.not_()]
        while self.peek() == "AND":
            self.take()
            parts.append(self.not_())
        return parts[0] if len(parts) == 1 else (lambda item: all(p(item) for p in parts))

    def not_(self) -> Predicate:
        token = self.take()
        if token == "NOT":
            inner = self.not_()
            return lambda item: not inner(item)
        if token == "(":
            inner = self.or_()
            if self.take() != ")":
                self.fail("a parenthesis is not closed")
            return inner
        if token in (")", "AND", "OR"):
            self.fail(f"unexpected {token}")
        return self.term(token)

    def term(self, token: str) -> Predicate:
        match = _TERM.match(token)
        if not match:
            self.fail(f"cannot read {token!r}")
        name, operator, raw = match.groups()  # type: ignore[union-attr]
        value = raw[1:-1].replace('\\"', '"').replace("\\\\", "\\") if raw.startswith('"') else raw
        if name in TIME_FIELDS and operator != ":":
            bound = int(value) if value.isdigit() else self.fail(f"{name} needs epoch milliseconds")
            return _time_term(name, operator, bound)  # type: ignore[arg-type]
        if operator != ":":
            self.fail(f"{name}{operator} is not supported")
        wanted = value.casefold()
        if name in TEXT_FIELDS:
            return lambda item: str(item.get(name) or "").casefold() == wanted
        if name in LIST_FIELDS:
            return lambda item: any(str(v).casefold() == wanted for v in item.get(name) or [])
        if name == "teams":
            return lambda item: any(
                r.get("type") == "team" and str(r.get("id")).casefold() == wanted for r in item.get("responders") or []
            )
        self.fail(f"JSM incidents cannot be filtered by {name!r}")
        raise AssertionError  # unreachable: fail raises


def _time_term(name: str, operator: str, bound: int) -> Predicate:
    compare = {
        ">=": lambda a: a >= bound,
        ">": lambda a: a > bound,
        "<=": lambda a: a <= bound,
        "<": lambda a: a < bound,
    }[operator]

    def check(item: dict[str, Any]) -> bool:
        text = opsgenie_time(item.get(name))
        if not isinstance(text, str) or not text.endswith("Z"):
            return False
        from opsgenie_export.opsgenie.query import iso_to_ms

        return compare(iso_to_ms(text[:-1] + "+00:00"))

    return check


def _unsupported(query: str, why: str) -> str:
    return (
        f"selector query {query!r} cannot be applied to JSM incidents ({why}); JSM incidents accept status, "
        "priority, message, tags, teams (team ids), createdAt and updatedAt — choose other incidents with "
        "--jsm-incident-jql / JSM_INCIDENT_JQL instead"
    )
