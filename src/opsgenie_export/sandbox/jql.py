"""A small JQL subset for the Jira emulator: enough to select incidents and window them by date.

Grammar (keywords case-insensitive):

    query   := [or] [ORDER BY field [ASC|DESC] {, field [ASC|DESC]}]
    or      := and {OR and}
    and     := not {AND not}
    not     := NOT not | '(' or ')' | clause
    clause  := field op value | field [NOT] IN '(' value {, value} ')' | field IS [NOT] (EMPTY|NULL)
    op      := = | != | > | >= | < | <= | ~ | !~

Values are "double" or 'single' quoted strings, or bare words. Dates take Jira's forms
(`yyyy-MM-dd`, `yyyy/MM/dd`, either with ` HH:mm`), relative offsets (`-2d`, `-3h`, `-15m`, `-1w`),
or epoch milliseconds; like Jira, dates carry no seconds, and (in the emulator) are UTC.

Errors mirror Jira's messages, e.g. "Field 'foo' does not exist or you do not have permission
to view it." and "The value 'Bug' does not exist for the field 'issuetype'.".
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NoReturn

Row = dict[str, Any]
Predicate = Callable[[Row], bool]


class JqlError(ValueError):
    """An invalid query: Jira answers 400 with this message in `errorMessages`."""


@dataclass(frozen=True)
class Field:
    """How the emulator exposes one JQL field: its row key, kind and (for enumerations) values."""

    key: str
    kind: str  # "text" (~ only), "keyword", "date", "list", "id"
    values: frozenset[str] | None = None  # known values (case-insensitive) for validation


@dataclass
class Jql:
    text: str
    predicate: Predicate | None  # None: no search restriction (unbounded)
    order: list[tuple[str, bool]]  # (row key, descending)

    @property
    def bounded(self) -> bool:
        return self.predicate is not None

    def __call__(self, row: Row) -> bool:
        return self.predicate is None or self.predicate(row)


_TOKEN = re.compile(
    r"""\s*(?:
        (?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
      | (?P<op>!=|>=|<=|!~|=|>|<|~)
      | (?P<punct>[(),])
      | (?P<word>[^\s(),=!<>~"']+)
    )""",
    re.VERBOSE,
)
_RELATIVE = re.compile(r"([+-]?\d+)\s*([wdhm])")
_UNITS_MS = {"w": 7 * 86_400_000, "d": 86_400_000, "h": 3_600_000, "m": 60_000}


@dataclass(frozen=True)
class _Tok:
    kind: str  # str, op, punct, word
    text: str
    pos: int


def _tokenize(text: str) -> list[_Tok]:
    tokens, pos = [], 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise JqlError(
                f"Error in the JQL Query: the character '{text[pos].strip() or text[pos]}' is a reserved "
                f"JQL character (at position {pos})"
            )
        kind = match.lastgroup or "word"
        raw = match.group(kind)
        if kind == "str":
            raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
        tokens.append(_Tok(kind, raw, match.start(kind)))
        pos = match.end()
    return tokens


class _Parser:
    def __init__(self, text: str, fields: dict[str, Field], now_ms: int) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.i = 0
        self.fields = fields
        self.now_ms = now_ms

    # -- token helpers -------------------------------------------------------------------------
    def _peek(self) -> _Tok | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def _keyword(self, *words: str) -> bool:
        """Consume the keyword sequence if it comes next (bare words, case-insensitive)."""
        for offset, word in enumerate(words):
            j = self.i + offset
            if j >= len(self.tokens) or self.tokens[j].kind != "word" or self.tokens[j].text.upper() != word:
                return False
        self.i += len(words)
        return True

    def _expect_punct(self, char: str) -> None:
        token = self._peek()
        if token is None or token.kind != "punct" or token.text != char:
            self._fail(f"Expecting '{char}'")
        self.i += 1

    def _fail(self, why: str) -> NoReturn:
        token = self._peek()
        where = f"but got '{token.text}'" if token else "but reached the end of the query"
        raise JqlError(f"Error in the JQL Query: {why} {where}.")

    # -- grammar -------------------------------------------------------------------------------
    def parse(self) -> Jql:
        predicate = None
        if self._peek() is not None and not self._at_order_by():
            predicate = self._or()
        order: list[tuple[str, bool]] = []
        if self._keyword("ORDER", "BY"):
            order.append(self._order_item())
            while (token := self._peek()) is not None and token.kind == "punct" and token.text == ",":
                self.i += 1
                order.append(self._order_item())
        if self._peek() is not None:
            self._fail("Expecting either 'OR' or 'AND'")
        return Jql(self.text, predicate, order)

    def _at_order_by(self) -> bool:
        save = self.i
        found = self._keyword("ORDER", "BY")
        self.i = save
        return found

    def _order_item(self) -> tuple[str, bool]:
        field = self._field()
        descending = False
        if self._keyword("DESC"):
            descending = True
        else:
            self._keyword("ASC")
        return field.key, descending

    def _or(self) -> Predicate:
        parts = [self._and()]
        while self._keyword("OR"):
            parts.append(self._and())
        return parts[0] if len(parts) == 1 else (lambda row: any(p(row) for p in parts))

    def _and(self) -> Predicate:
        parts = [self._not()]
        while self._keyword("AND"):
            parts.append(self._not())
        return parts[0] if len(parts) == 1 else (lambda row: all(p(row) for p in parts))

    def _not(self) -> Predicate:
        if self._keyword("NOT"):
            inner = self._not()
            return lambda row: not inner(row)
        token = self._peek()
        if token is not None and token.kind == "punct" and token.text == "(":
            self.i += 1
            inner = self._or()
            self._expect_punct(")")
            return inner
        return self._clause()

    def _field(self) -> Field:
        token = self._peek()
        if token is None or token.kind not in ("word", "str"):
            self._fail("Expecting a field name")
        self.i += 1
        field = self.fields.get(token.text.lower())
        if field is None:
            raise JqlError(f"Field '{token.text}' does not exist or you do not have permission to view it.")
        return field

    def _clause(self) -> Predicate:
        name_token = self._peek()
        field = self._field()
        name = name_token.text if name_token else field.key
        if self._keyword("IS", "NOT"):
            self._empty_word()
            return lambda row: _present(row.get(field.key))
        if self._keyword("IS"):
            self._empty_word()
            return lambda row: not _present(row.get(field.key))
        if self._keyword("NOT", "IN"):
            inner = self._in(field, name)
            return lambda row: not inner(row)
        if self._keyword("IN"):
            return self._in(field, name)
        token = self._peek()
        if token is None or token.kind != "op":
            self._fail("Expecting operator")
        self.i += 1
        return self._compare(field, name, token.text, self._value())

    def _empty_word(self) -> None:
        if not (self._keyword("EMPTY") or self._keyword("NULL")):
            self._fail("Expecting 'EMPTY' or 'NULL'")

    def _value(self) -> str:
        token = self._peek()
        if token is None or token.kind not in ("word", "str"):
            self._fail("Expecting a value")
        self.i += 1
        return token.text

    def _in(self, field: Field, name: str) -> Predicate:
        self._expect_punct("(")
        values = [self._value()]
        while (token := self._peek()) is not None and token.kind == "punct" and token.text == ",":
            self.i += 1
            values.append(self._value())
        self._expect_punct(")")
        tests = [self._compare(field, name, "=", value) for value in values]
        return lambda row: any(test(row) for test in tests)

    # -- comparisons ---------------------------------------------------------------------------
    def _compare(self, field: Field, name: str, op: str, value: str) -> Predicate:
        key = field.key
        if field.kind == "date":
            if op in ("~", "!~"):
                raise JqlError(f"The operator '{op}' is not supported by the '{name}' field.")
            wanted = self._date(value, name)
            return lambda row: _ordered(op, row.get(key), wanted)
        if field.kind == "text":
            if op not in ("~", "!~"):
                raise JqlError(f"The operator '{op}' is not supported by the '{name}' field.")
            folded = value.casefold().strip("*")
            contains = lambda row: folded in str(row.get(key) or "").casefold()  # noqa: E731
            return contains if op == "~" else (lambda row: not contains(row))
        if op not in ("=", "!="):
            raise JqlError(f"The operator '{op}' is not supported by the '{name}' field.")
        if field.values is not None and value.casefold() not in field.values:
            raise JqlError(f"The value '{value}' does not exist for the field '{name}'.")
        folded = value.casefold()

        def equal(row: Row) -> bool:
            current = row.get(key)
            options = current if isinstance(current, list | tuple | set | frozenset) else [current]
            return any(str(option).casefold() == folded for option in options if option is not None)

        return equal if op == "=" else (lambda row: not equal(row))

    def _date(self, value: str, name: str) -> int:
        text = value.strip()
        if re.fullmatch(r"\d{10,}", text):
            return int(text)
        relative = _RELATIVE.fullmatch(text.replace(" ", ""))
        if relative:
            return self.now_ms + int(relative.group(1)) * _UNITS_MS[relative.group(2)]
        for pattern in ("%Y-%m-%d %H:%M", "%Y/%m/%d %H:%M", "%Y-%m-%d", "%Y/%m/%d"):
            try:
                moment = datetime.strptime(text, pattern).replace(tzinfo=UTC)
            except ValueError:
                continue
            return int(moment.timestamp() * 1000)
        raise JqlError(
            f"Date value '{value}' for field '{name}' is invalid. Valid formats include: 'yyyy/MM/dd HH:mm', "
            "'yyyy-MM-dd HH:mm', 'yyyy/MM/dd', 'yyyy-MM-dd', or a period format e.g. '-5d', '4w 2d'."
        )


def _present(value: Any) -> bool:
    return value not in (None, "", [], ())


def _ordered(op: str, left: Any, right: int) -> bool:
    if left is None:
        return op == "!="
    return {
        "=": left == right,
        "!=": left != right,
        ">": left > right,
        ">=": left >= right,
        "<": left < right,
        "<=": left <= right,
    }[op]


def parse_jql(text: str, fields: dict[str, Field], now_ms: int | None = None) -> Jql:
    """Parse `text` against the known `fields` (lower-cased names, aliases included)."""
    return _Parser(text or "", fields, now_ms if now_ms is not None else int(time.time() * 1000)).parse()


def sort_rows(
    items: Iterable[Any], order: list[tuple[str, bool]], row_of: Callable[[Any], Row] = lambda r: r
) -> list[Any]:
    """Stable multi-key sort of `items` by their rows; missing values sort first ascending, like Jira."""
    ordered = list(items)
    for key, descending in reversed(order):

        def sort_key(item: Any, key: str = key) -> tuple[bool, Any]:
            value = row_of(item).get(key)
            if isinstance(value, list):
                value = value[0] if value else None
            return (value is not None, value if value is not None else 0)

        ordered.sort(key=sort_key, reverse=descending)
    return ordered


__all__ = ["Field", "Jql", "JqlError", "parse_jql", "sort_rows"]
