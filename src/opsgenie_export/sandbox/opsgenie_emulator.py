"""A faithful emulator of the Opsgenie REST API's read side (docs/opsgenie-api.md), over real HTTP.

Strict where the real API is strict, and where it is unverified: GenieKey auth on every call,
the `{data, took, requestId}` envelope with absolute `paging` links, `limit` 1-100, the 20,000
offset ceiling (422), the required incident `query`, camelCase-only search fields (422 on
anything else), per-domain rate limits (429 + `X-RateLimit-*`, no `Retry-After`), and the
Incident API's plan restriction (402).

Fast on a 100,000-alert account: a page whose query is only a createdAt range, sorted by
createdAt, is two bisections and a slice; any other query is filtered once and its ordered result
cached until the account changes.
"""

from __future__ import annotations

import fnmatch
import re
import ssl
import threading
import time
import uuid
from collections import Counter, OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, NoReturn
from urllib.parse import unquote, urlencode

from opsgenie_export.sandbox.accounts import Account, Item, base_alert, iso_to_ms
from opsgenie_export.sandbox.server import EmulatorServer, FaultPlan, Request, Response

OFFSET_CEILING = 20_000
DOMAINS = ("search", "alert", "incident", "configuration", "schedule-oncalls")
ALERT_SORTS = (
    "createdAt", "updatedAt", "tinyId", "alias", "message", "status", "acknowledged", "isSeen", "snoozed",
    "snoozedUntil", "count", "lastOccurredAt", "source", "owner", "integration.name", "integration.type",
    "report.ackTime", "report.closeTime", "report.acknowledgedBy", "report.closedBy",
)  # fmt: skip
INCIDENT_SORTS = ("createdAt", "tinyId", "message", "status", "isSeen", "owner")
USER_SORTS = {"username": "username", "fullName": "fullName", "insertedAt": "createdAt"}
ISO_FIELDS = {"createdAt", "updatedAt", "lastOccurredAt", "snoozedUntil"}


class ApiProblem(Exception):
    """Raised by a handler: becomes the API's error body with this status."""

    def __init__(self, status: int, message: str, errors: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors


class QueryError(ValueError):
    """An invalid search query (the API answers 422 with this message)."""


# -- search query language ---------------------------------------------------------------------
@dataclass(frozen=True)
class Term:
    field: str
    op: str  # ':', '=', '!=', '>', '>=', '<', '<='
    value: str


@dataclass(frozen=True)
class And:
    parts: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    parts: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    part: Node


Node = Term | And | Or | Not
Predicate = Callable[[Item], bool]
Span = tuple[int, int]  # (offset, limit)

_FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")
_OP = re.compile(r"\s*(!=|>=|<=|:|=|>|<)\s*")
_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"')
_BARE = re.compile(r"[^\s()\"]+")
_UNESCAPE = re.compile(r"\\(.)")


class _Parser:
    """Recursive descent: or := and (OR and)*; and := not (AND not)*; not := NOT not | '(' or ')' | term."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def parse(self) -> Node | None:
        if not self.text.strip():
            return None
        node = self._or()
        self._skip()
        if self.pos < len(self.text):
            self._fail(f"unexpected {self.text[self.pos :]!r}")
        return node

    def _fail(self, why: str) -> NoReturn:
        raise QueryError(f"Invalid query: {why} (at position {self.pos})")

    def _skip(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def _keyword(self, word: str) -> bool:
        self._skip()
        end = self.pos + len(word)
        if self.text[self.pos : end].upper() != word:
            return False
        if end < len(self.text) and not (self.text[end].isspace() or self.text[end] == "("):
            return False
        self.pos = end
        return True

    def _or(self) -> Node:
        parts = [self._and()]
        while self._keyword("OR"):
            parts.append(self._and())
        return parts[0] if len(parts) == 1 else Or(tuple(parts))

    def _and(self) -> Node:
        parts = [self._not()]
        while self._keyword("AND"):
            parts.append(self._not())
        return parts[0] if len(parts) == 1 else And(tuple(parts))

    def _not(self) -> Node:
        if self._keyword("NOT"):
            return Not(self._not())
        self._skip()
        if self.text.startswith("(", self.pos):
            self.pos += 1
            node = self._or()
            self._skip()
            if not self.text.startswith(")", self.pos):
                self._fail("missing ')'")
            self.pos += 1
            return node
        return self._term()

    def _term(self) -> Term:
        name = self._match(_FIELD, "expected a field name")
        operator = self._match(_OP, f"expected an operator after {name!r}", group=1)
        quoted = _QUOTED.match(self.text, self.pos)
        if quoted:
            self.pos = quoted.end()
            return Term(name, operator, _UNESCAPE.sub(r"\1", quoted.group(1)))
        return Term(name, operator, self._match(_BARE, f"expected a value for {name!r}"))

    def _match(self, pattern: re.Pattern[str], why: str, group: int = 0) -> str:
        match = pattern.match(self.text, self.pos)
        if not match:
            self._fail(why)
        self.pos = match.end()
        return match.group(group)


# Field name -> (value type, path into the item). Types: time, int, tiny, bool, keyword (equality),
# text (substring), list (membership), priority, teams (team-name membership), address.
_ALERT_FIELDS: dict[str, tuple[str, str]] = {
    "createdAt": ("time", "createdAt"),
    "updatedAt": ("time", "updatedAt"),
    "lastOccurredAt": ("time", "lastOccurredAt"),
    "snoozedUntil": ("time", "snoozedUntil"),
    "status": ("keyword", "status"),
    "priority": ("priority", "priority"),
    "tag": ("list", "tags"),
    "tags": ("list", "tags"),
    "teams": ("teams", "teams"),
    "owner": ("keyword", "owner"),
    "acknowledged": ("bool", "acknowledged"),
    "isSeen": ("bool", "isSeen"),
    "snoozed": ("bool", "snoozed"),
    "seen": ("bool", "seen"),
    "message": ("text", "message"),
    "alias": ("keyword", "alias"),
    "tinyId": ("tiny", "tinyId"),
    "source": ("keyword", "source"),
    "acknowledgedBy": ("keyword", "report.acknowledgedBy"),
    "closedBy": ("keyword", "report.closedBy"),
    "count": ("int", "count"),
    "integration.name": ("keyword", "integration.name"),
    "integration.type": ("keyword", "integration.type"),
}
_INCIDENT_FIELDS: dict[str, tuple[str, str]] = {
    "createdAt": ("time", "createdAt"),
    "updatedAt": ("time", "updatedAt"),
    "status": ("keyword", "status"),
    "priority": ("priority", "priority"),
    "tag": ("list", "tags"),
    "tags": ("list", "tags"),
    "message": ("text", "message"),
    "tinyId": ("tiny", "tinyId"),
    "isSeen": ("bool", "isSeen"),
    "owner": ("keyword", "owner"),
    "teams": ("teams", "responders"),
}
_SERVICE_FIELDS: dict[str, tuple[str, str]] = {"name": ("text", "name")}
_USER_FIELDS: dict[str, tuple[str, str]] = {
    "username": ("keyword", "username"),
    "fullName": ("text", "fullName"),
    "blocked": ("bool", "blocked"),
    "verified": ("bool", "verified"),
    "role": ("keyword", "role.name"),
    "locale": ("keyword", "locale"),
    "timeZone": ("keyword", "timeZone"),
    "userAddress": ("address", "userAddress"),
    "createdAt": ("time", "createdAt"),
}
QUERY_FIELDS = {
    "alert": _ALERT_FIELDS,
    "incident": _INCIDENT_FIELDS,
    "service": _SERVICE_FIELDS,
    "user": _USER_FIELDS,
}
_EQUALITY_OPS = (":", "=", "!=")


def _get(item: Item, path: str) -> Any:
    value: Any = item
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _team_ids(item: Item, path: str) -> set[str]:
    """Alert `teams[{id}]`; incident team responders plus `ownerTeam`."""
    if path == "teams":
        return {t.get("id") for t in item.get("teams") or []}
    ids = {r.get("id") for r in item.get("responders") or [] if r.get("type") == "team"}
    if item.get("ownerTeam"):
        ids.add(item["ownerTeam"])
    return ids


def _time_value(text: str, name: str) -> int:
    stripped = text.strip()
    if re.fullmatch(r"-?\d+", stripped):
        return int(stripped)
    try:
        return iso_to_ms(stripped)
    except ValueError:
        raise QueryError(f"Invalid query: {text!r} is not a valid date for {name}") from None


def _number(text: str, name: str) -> int:
    if not re.fullmatch(r"-?\d+", text.strip()):
        raise QueryError(f"Invalid query: {text!r} is not a number for {name}")
    return int(text)


def _compare(op: str, left: Any, right: Any) -> bool:
    if left is None:
        return op == "!="
    if op in (":", "="):
        return bool(left == right)
    if op == "!=":
        return bool(left != right)
    return {">": left > right, ">=": left >= right, "<": left < right, "<=": left <= right}[op]


def _text_matcher(value: str, substring: bool) -> Callable[[Any], bool]:
    folded = value.casefold()
    if "*" in folded or "?" in folded:
        return lambda v: isinstance(v, str) and fnmatch.fnmatchcase(v.casefold(), folded)
    if substring:
        return lambda v: isinstance(v, str) and folded in v.casefold()
    return lambda v: isinstance(v, str) and v.casefold() == folded


def _compile_term(term: Term, fields: dict[str, tuple[str, str]], account: Account | None) -> Predicate:
    if term.field not in fields:
        raise QueryError(f"Invalid query: unknown field '{term.field}'")
    kind, path = fields[term.field]
    op = term.op
    if kind in ("time", "int", "tiny", "priority"):
        return _compile_ordered(term, kind, path)
    if op not in _EQUALITY_OPS:
        raise QueryError(f"Invalid query: operator {op!r} is not supported for field '{term.field}'")
    positive = _compile_match(term, kind, path, account)
    return (lambda item: not positive(item)) if op == "!=" else positive


def _compile_ordered(term: Term, kind: str, path: str) -> Predicate:
    op, name = term.op, term.field
    if kind == "time":
        wanted = _time_value(term.value, name)
        return lambda item: _compare(op, _safe_ms(item, path), wanted)
    if kind == "priority":
        match = re.fullmatch(r"[Pp]([1-5])", term.value.strip())
        if not match:
            raise QueryError(f"Invalid query: {term.value!r} is not a priority (P1-P5)")
        rank = int(match.group(1))
        return lambda item: _compare(op, _priority_rank(item.get(path)), rank)
    number = _number(term.value, name)
    if kind == "tiny":
        return lambda item: _compare(op, _int_or_none(item.get(path)), number)
    return lambda item: _compare(op, _int_or_none(_get(item, path)), number)


def _compile_match(term: Term, kind: str, path: str, account: Account | None) -> Predicate:
    if kind == "bool":
        lowered = term.value.strip().lower()
        if lowered not in ("true", "false"):
            raise QueryError(f"Invalid query: {term.value!r} is not a boolean for field '{term.field}'")
        wanted = lowered == "true"
        return lambda item: _get(item, path) is wanted
    if kind == "teams":
        ids = account.team_ids_named(term.value) if account is not None else set()
        return lambda item: bool(ids & _team_ids(item, path))
    matcher = _text_matcher(term.value, substring=kind in ("text", "address"))
    if kind == "list":
        return lambda item: any(matcher(v) for v in item.get(path) or [])
    if kind == "address":
        return lambda item: any(matcher(v) for v in (item.get(path) or {}).values())
    return lambda item: matcher(_get(item, path))


def _safe_ms(item: Item, path: str) -> int | None:
    value = _get(item, path)
    if value is None or value == "":
        return None
    return value if isinstance(value, int) else iso_to_ms(value)


def _priority_rank(value: Any) -> int | None:
    return int(value[1]) if isinstance(value, str) and re.fullmatch(r"P[1-5]", value) else None


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _compile(node: Node, fields: dict[str, tuple[str, str]], account: Account | None) -> Predicate:
    if isinstance(node, Term):
        return _compile_term(node, fields, account)
    if isinstance(node, Not):
        inner = _compile(node.part, fields, account)
        return lambda item: not inner(item)
    parts = [_compile(p, fields, account) for p in node.parts]
    if isinstance(node, And):
        return lambda item: all(p(item) for p in parts)
    return lambda item: any(p(item) for p in parts)


@dataclass
class Query:
    """A parsed search query: call it on an item. `bounds` narrows createdAt (epoch ms, [lo, hi))."""

    text: str
    node: Node | None
    predicate: Predicate = field(repr=False)
    bounds: tuple[int | None, int | None] = (None, None)
    pure_range: bool = True  # nothing but createdAt bounds: the bounds alone decide

    def __call__(self, item: Item) -> bool:
        return self.predicate(item)


def parse_query(text: str | None, kind: str = "alert", account: Account | None = None) -> Query:
    """Parse Opsgenie search syntax for `kind` (alert, incident, service, user); raise QueryError.

    `account` resolves `teams:<name>` to team ids; without it a teams term matches nothing.
    """
    text = text or ""
    node = _Parser(text).parse()
    if node is None:
        return Query(text, None, lambda item: True)
    predicate = _compile(node, QUERY_FIELDS[kind], account)
    conjuncts = node.parts if isinstance(node, And) else (node,)
    ranges = [t for t in conjuncts if isinstance(t, Term) and t.field == "createdAt" and t.op != "!="]
    bounds = _bounds(ranges)
    return Query(text, node, predicate, bounds, pure_range=len(ranges) == len(conjuncts))


def _bounds(terms: list[Term]) -> tuple[int | None, int | None]:
    lo: int | None = None
    hi: int | None = None
    for term in terms:
        value = _time_value(term.value, term.field)
        low, high = {
            ">": (value + 1, None),
            ">=": (value, None),
            "<": (None, value),
            "<=": (None, value + 1),
        }.get(term.op, (value, value + 1))
        if low is not None:
            lo = low if lo is None else max(lo, low)
        if high is not None:
            hi = high if hi is None else min(hi, high)
    return lo, hi


# -- sorting -----------------------------------------------------------------------------------
def _sort_value(item: Item, name: str) -> Any:
    if name in ISO_FIELDS:
        return _safe_ms(item, name)
    if name == "tinyId":
        return _int_or_none(item.get(name))
    value = _get(item, name)
    return int(value) if isinstance(value, bool) else value


def _sorted(items: list[Item], name: str, order: str) -> list[Item]:
    def key(item: Item) -> tuple[int, Any, str]:
        value = _sort_value(item, name)
        return (0, "", item.get("id", "")) if value is None else (1, value, item.get("id", ""))

    ordered = sorted(items, key=key)
    if order == "desc":
        ordered.reverse()
    return ordered


# -- rate limiting -----------------------------------------------------------------------------
class _Window:
    """Sliding-window limits for one domain: at most `per_second` in any 1 s, `per_minute` in 60 s."""

    def __init__(self, per_second: int | None, per_minute: int | None) -> None:
        self.per_second = per_second
        self.per_minute = per_minute
        self.second: deque[float] = deque()
        self.minute: deque[float] = deque()

    def take(self, now: float) -> int | None:
        """Admit a request (None) or name the period (1 or 60 s) whose limit it exceeds."""
        for log, span in ((self.second, 1.0), (self.minute, 60.0)):
            while log and log[0] <= now - span:
                log.popleft()
        if self.per_second and len(self.second) >= self.per_second:
            return 1
        if self.per_minute and len(self.minute) >= self.per_minute:
            return 60
        self.second.append(now)
        self.minute.append(now)
        return None


_DOMAIN_ROUTES = [
    (re.compile(r"^/v2/alerts(/count)?/?$"), "search"),
    (re.compile(r"^/v2/alerts/"), "alert"),
    (re.compile(r"^/v1/incidents(/|$)"), "incident"),
    (re.compile(r"^/v2/schedules(/[^/]+)?/on-calls/?$"), "schedule-oncalls"),
    (re.compile(r"^/v2/users/?$"), "search"),
    (re.compile(r"^/v1/services(/|$)"), "configuration"),
    (re.compile(r"^/v2/(teams|schedules|users|escalations|request-limits)(/|$)"), "configuration"),
]


def domain_of(path: str) -> str | None:
    """The rate-limit domain of a request path (None for paths the API does not have)."""
    return next((domain for pattern, domain in _DOMAIN_ROUTES if pattern.search(path)), None)


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return f"HTTP {status}"


# -- the emulator ------------------------------------------------------------------------------
@dataclass
class _Context:
    started: float
    request_id: str


class OpsgenieEmulator(EmulatorServer):
    name = "opsgenie-emulator"

    def __init__(
        self,
        account: Account,
        *,
        api_key: str = "sandbox-opsgenie-key",
        latency: float = 0.0,
        faults: FaultPlan | None = None,
        rate_limits: dict[str, tuple[int, int]] | None = None,
        incident_api: bool = True,
        now: Callable[[], float] | None = None,
    ) -> None:
        super().__init__(latency=latency, faults=faults)
        self.account = account
        self.api_key = api_key
        self.rate_limits = dict(rate_limits or {})
        self.incident_api = incident_api
        self.now = now or time.monotonic
        self.on_request: Callable[[Request], None] | None = None
        self.domain_counts: Counter[str] = Counter()
        self.throttled: Counter[str] = Counter()
        self._windows = {d: _Window(*limits) for d, limits in self.rate_limits.items() if limits}
        self._limit_lock = threading.Lock()
        self._cache: OrderedDict[tuple[str, ...], tuple[tuple[int, ...], list[Item]]] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._register_routes()

    def start(self, tls: ssl.SSLContext | None = None) -> OpsgenieEmulator:
        super().start(tls)
        return self

    def __enter__(self) -> OpsgenieEmulator:
        return self.start()

    def _register_routes(self) -> None:
        ident = r"(?P<identifier>[^/]+)"
        routes: list[tuple[str, Callable[..., Response]]] = [
            (r"/v2/alerts", self._list_alerts),
            (r"/v2/alerts/count", self._count_alerts),
            (rf"/v2/alerts/{ident}", self._get_alert),
            (r"/v1/incidents/?", self._list_incidents),
            (rf"/v1/incidents/{ident}/associated-alert-ids", self._associated_alerts),
            (rf"/v1/incidents/{ident}", self._get_incident),
            (r"/v1/services/?", self._list_services),
            (rf"/v1/services/{ident}", self._get_service),
            (r"/v2/teams/?", self._list_teams),
            (rf"/v2/teams/{ident}", self._get_team),
            (r"/v2/schedules/on-calls", self._all_oncalls),
            (rf"/v2/schedules/{ident}/on-calls", self._schedule_oncalls),
            (r"/v2/schedules/?", self._list_schedules),
            (rf"/v2/schedules/{ident}", self._get_schedule),
            (r"/v2/users/?", self._list_users),
            (rf"/v2/users/{ident}", self._get_user),
            (r"/v2/escalations/?", self._list_escalations),
            (rf"/v2/escalations/{ident}", self._get_escalation),
            (r"/v2/request-limits/?", self._request_limits),
        ]
        for pattern, handler in routes:
            self.add_route("GET", pattern, handler)

    # -- hooks -------------------------------------------------------------------------------
    def dispatch(self, request: Request) -> Response:
        try:
            return super().dispatch(request)
        except ApiProblem as problem:
            return self._error(problem.status, problem.message, problem.errors)
        except QueryError as exc:
            return self._error(422, str(exc))

    def error_response(self, status: int, message: str) -> Response:
        return self._error(status, message)

    def _error(self, status: int, message: str, errors: dict[str, str] | None = None) -> Response:
        body: dict[str, Any] = {"message": message}
        if errors:
            body["errors"] = errors
        return Response(status, body)

    def before_dispatch(self, request: Request) -> Response | None:
        request.og_context = _Context(time.perf_counter(), str(uuid.uuid4()))  # type: ignore[attr-defined]
        if request.headers.get("authorization", "") != f"GenieKey {self.api_key}":
            return self._error(401, "Could not authenticate")
        if self.on_request is not None:
            self.on_request(request)
        domain = domain_of(request.path)
        if domain is not None:
            throttled = self._throttle(domain)
            if throttled is not None:
                return throttled
        if request.path.startswith("/v1/incidents") and not self.incident_api:
            return self._error(402, "Your plan does not include the Incident API")
        return None

    def _throttle(self, domain: str) -> Response | None:
        with self._limit_lock:
            self.domain_counts[domain] += 1
            window = self._windows.get(domain)
            period = window.take(self.now()) if window else None
            if period is None:
                return None
            self.throttled[domain] += 1
        headers = {"X-RateLimit-Reason": "ACCOUNT", "X-RateLimit-Period-In-Sec": str(period)}
        return Response(429, {"message": "TooManyRequests"}, headers)

    def decorate(self, request: Request, response: Response) -> None:
        context: _Context | None = getattr(request, "og_context", None)
        if context is None:  # a fault answered before `before_dispatch` ran
            context = _Context(time.perf_counter(), str(uuid.uuid4()))
        took = time.perf_counter() - context.started
        if response.body is None and response.status >= 400:  # e.g. a fault plan's forced status
            response.body = {"message": _phrase(response.status)}
        if isinstance(response.body, dict):
            response.body.setdefault("took", round(took, 3))
            response.body.setdefault("requestId", context.request_id)
        headers = response.headers
        headers.setdefault("X-Request-ID", context.request_id)
        headers.setdefault("X-Response-Time", str(round(took * 1000)))
        headers.setdefault("X-RateLimit-State", "THROTTLED" if response.status == 429 else "OK")

    # -- parameters ----------------------------------------------------------------------------
    @staticmethod
    def _int_arg(request: Request, name: str, default: int, low: int, high: int | None) -> int:
        raw = request.arg(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise ApiProblem(422, f"Invalid {name}: {raw!r}", {name: "must be an integer"}) from None
        if value < low or (high is not None and value > high):
            bound = f"between {low} and {high}" if high is not None else f"at least {low}"
            raise ApiProblem(422, f"{name} must be {bound}", {name: f"must be {bound}"})
        return value

    def _window_args(self, request: Request, *, default: int, maximum: int, ceiling: bool) -> tuple[int, int]:
        offset = self._int_arg(request, "offset", 0, 0, None)
        limit = self._int_arg(request, "limit", default, 1, maximum)
        if ceiling and offset + limit > OFFSET_CEILING:
            raise ApiProblem(422, f"Offset + limit must be lower than or equal to {OFFSET_CEILING}")
        return offset, limit

    @staticmethod
    def _choice(request: Request, name: str, allowed: Any, default: str | None) -> str | None:
        value = request.arg(name)
        if value is None:
            return default
        if value not in allowed:
            expected = f"must be one of {', '.join(allowed)}"
            raise ApiProblem(422, f"Invalid {name}: {value!r}", {name: expected})
        return value

    @staticmethod
    def _flag(request: Request, name: str) -> bool:
        value = (request.arg(name) or "false").lower()
        if value not in ("true", "false"):
            raise ApiProblem(422, f"Invalid {name}: must be true or false")
        return value == "true"

    # -- envelopes -----------------------------------------------------------------------------
    @staticmethod
    def _data(data: Any, **extra: Any) -> Response:
        return Response(200, {"data": data, **extra})

    def _paged(
        self,
        request: Request,
        data: list[Any],
        window: tuple[int, int],
        total: int,
        echo: list[str],
        *,
        ceiling: bool = True,
        **extra: Any,
    ) -> Response:
        """Envelope with `paging` links that carry the request's `echo` parameters plus offset/limit."""
        offset, limit = window
        kept = [(name, request.arg(name) or "") for name in echo if request.arg(name) is not None]

        head = [param for param in kept if param[0] == "query"]
        tail = [param for param in kept if param[0] != "query"]

        def link(at: int) -> str:
            params = [*head, ("offset", str(at)), ("limit", str(limit)), *tail]
            return f"{self.url}{request.path}?{urlencode(params)}"

        last = max(0, (total - 1) // limit * limit)
        if ceiling:
            last = min(last, (OFFSET_CEILING - limit) // limit * limit)
        paging = {"first": link(0), "last": link(last)}
        if offset + limit < total:
            paging["next"] = link(offset + limit)
        if offset > 0:
            paging["prev"] = link(max(0, offset - limit))
        headers = {f"X-Paging-{name.title()}": url for name, url in paging.items()}
        return Response(200, {"data": data, **extra, "paging": paging}, headers)

    # -- listing core --------------------------------------------------------------------------
    def _ordered(self, kind: str, query: Query, sort: str, order: str) -> list[Item]:
        """Every matching item in page order, cached per (query, sort, order) and account version."""
        collection = "alerts" if kind == "alert" else "incidents"
        version = self.account.version(collection, "teams")
        key = (kind, query.text, sort, order)
        with self._cache_lock:
            cached = self._cache.get(key)
            if cached and cached[0] == version:
                self._cache.move_to_end(key)
                return cached[1]
        with self.account.lock:
            items = getattr(self.account, collection)
            start, stop = self._range(kind, query.bounds)
            matching = [item for item in items[start:stop] if query(item)]
        if sort == "createdAt":  # already in (createdAt, id) order
            ordered = matching[::-1] if order == "desc" else matching
        else:
            ordered = _sorted(matching, sort, order)
        with self._cache_lock:
            self._cache[key] = (version, ordered)
            while len(self._cache) > 32:
                self._cache.popitem(last=False)
        return ordered

    def _range(self, kind: str, bounds: tuple[int | None, int | None]) -> tuple[int, int]:
        if kind == "alert":
            return self.account.alert_range(*bounds)
        return self.account.incident_range(*bounds)

    def _page(self, kind: str, query: Query, sort: str, order: str, window: Span) -> tuple[list[Item], int]:
        offset, limit = window
        if query.pure_range and sort == "createdAt":
            with self.account.lock:
                self.account.version("alerts", "incidents")  # reindexes after direct list edits
                items = self.account.alerts if kind == "alert" else self.account.incidents
                start, stop = self._range(kind, query.bounds)
                total = stop - start
                if order == "asc":
                    return items[start + offset : min(stop, start + offset + limit)], total
                top = stop - offset
                return items[max(start, top - limit) : max(start, top)][::-1], total
        ordered = self._ordered(kind, query, sort, order)
        return ordered[offset : offset + limit], len(ordered)

    def _count(self, kind: str, query: Query) -> int:
        if query.pure_range:
            with self.account.lock:
                self.account.version("alerts", "incidents")
                start, stop = self._range(kind, query.bounds)
                return stop - start
        return len(self._ordered(kind, query, "createdAt", "asc"))

    # -- alerts --------------------------------------------------------------------------------
    def _list_alerts(self, request: Request) -> Response:
        window = self._window_args(request, default=20, maximum=100, ceiling=True)
        sort = self._choice(request, "sort", ALERT_SORTS, "createdAt") or "createdAt"
        order = self._choice(request, "order", ("asc", "desc"), "desc") or "desc"
        self._no_saved_search(request)
        query = parse_query(request.arg("query"), "alert", self.account)
        items, total = self._page("alert", query, sort, order, window)
        data = [base_alert(a) for a in items]
        return self._paged(request, data, window, total, ["query", "sort", "order"])

    @staticmethod
    def _no_saved_search(request: Request) -> None:
        if request.arg("searchIdentifier"):
            raise ApiProblem(422, "Saved searches (searchIdentifier) are not supported by the emulator")

    def _count_alerts(self, request: Request) -> Response:
        self._no_saved_search(request)
        query = parse_query(request.arg("query"), "alert", self.account)
        return self._data({"count": self._count("alert", query)})

    def _get_alert(self, request: Request, identifier: str) -> Response:
        kind = self._choice(request, "identifierType", ("id", "alias", "tiny"), "id") or "id"
        alert = self.account.find_alert(unquote(identifier), kind)
        if alert is None:
            raise ApiProblem(404, "Alert does not exist")
        return self._data(dict(alert))

    # -- incidents -----------------------------------------------------------------------------
    def _list_incidents(self, request: Request) -> Response:
        text = request.arg("query")
        if text is None or not text.strip():
            raise ApiProblem(422, "query is required", {"query": "must not be blank"})
        window = self._window_args(request, default=20, maximum=100, ceiling=True)
        sort = self._choice(request, "sort", INCIDENT_SORTS, "createdAt") or "createdAt"
        order = self._choice(request, "order", ("asc", "desc"), "desc") or "desc"
        query = parse_query(text, "incident", self.account)
        items, total = self._page("incident", query, sort, order, window)
        return self._paged(request, [dict(i) for i in items], window, total, ["query", "sort", "order"])

    def _incident(self, request: Request, identifier: str) -> Item:
        kind = self._choice(request, "identifierType", ("id", "tiny"), "id") or "id"
        incident = self.account.find_incident(unquote(identifier), kind)
        if incident is None:
            raise ApiProblem(404, f"Incident with {kind} [{unquote(identifier)}] does not exist")
        return incident

    def _get_incident(self, request: Request, identifier: str) -> Response:
        return self._data(dict(self._incident(request, identifier)))

    def _associated_alerts(self, request: Request, identifier: str) -> Response:
        incident = self._incident(request, identifier)
        window = self._window_args(request, default=20, maximum=25, ceiling=False)
        order = self._choice(request, "order", ("asc", "desc"), "asc")
        with self.account.lock:
            ids = list(self.account.associated_alerts.get(incident["id"], []))
        if order == "desc":
            ids.reverse()
        offset, limit = window
        page = ids[offset : offset + limit]
        return self._paged(request, page, window, len(ids), ["identifierType", "order"], ceiling=False)

    # -- services, teams, escalations ----------------------------------------------------------
    def _list_services(self, request: Request) -> Response:
        window = self._window_args(request, default=20, maximum=100, ceiling=True)
        query = parse_query(request.arg("query"), "service", self.account)
        matching = [s for s in self.account.services if query(s)]
        offset, limit = window
        return self._paged(request, matching[offset : offset + limit], window, len(matching), ["query"])

    def _get_service(self, request: Request, identifier: str) -> Response:
        service = self.account.find_service(unquote(identifier))
        if service is None:
            raise ApiProblem(404, f"Service with id [{unquote(identifier)}] not found")
        return self._data(dict(service))

    def _list_teams(self, request: Request) -> Response:
        teams = [{k: v for k, v in t.items() if k != "members"} for t in self.account.teams]
        return self._data(teams, expandable=["member"])

    def _get_team(self, request: Request, identifier: str) -> Response:
        kind = self._choice(request, "identifierType", ("id", "name"), "id") or "id"
        team = self.account.find_team(unquote(identifier), kind)
        if team is None:
            raise ApiProblem(404, f"No team exists with {kind} [{unquote(identifier)}]")
        return self._data(dict(team))

    def _list_escalations(self, request: Request) -> Response:
        return self._data([dict(e) for e in self.account.escalations])

    def _get_escalation(self, request: Request, identifier: str) -> Response:
        kind = self._choice(request, "identifierType", ("id", "name"), "id") or "id"
        escalation = self.account.find_escalation(unquote(identifier), kind)
        if escalation is None:
            raise ApiProblem(404, f"No escalation exists with {kind} [{unquote(identifier)}]")
        return self._data(dict(escalation))

    # -- schedules and on-calls ----------------------------------------------------------------
    def _list_schedules(self, request: Request) -> Response:
        expand = request.arg("expand")
        if expand not in (None, "", "rotation"):
            raise ApiProblem(422, f"Invalid expand: {expand!r}", {"expand": "must be rotation"})
        keep_rotations = expand == "rotation"
        schedules = [
            {k: v for k, v in schedule.items() if keep_rotations or k != "rotations"}
            for schedule in self.account.schedules
        ]
        return self._data(schedules, expandable=["rotation"])

    def _schedule(self, identifier: str, kind: str) -> Item:
        schedule = self.account.find_schedule(unquote(identifier), kind)
        if schedule is None:
            raise ApiProblem(404, f"No schedule exists with {kind} [{unquote(identifier)}]")
        return schedule

    def _get_schedule(self, request: Request, identifier: str) -> Response:
        kind = self._choice(request, "identifierType", ("id", "name"), "id") or "id"
        return self._data(dict(self._schedule(identifier, kind)))

    def _oncall_args(self, request: Request) -> bool:
        date = request.arg("date")
        if date is not None:
            try:
                iso_to_ms(date)
            except ValueError:
                why = {"date": "must be an ISO-8601 date-time"}
                raise ApiProblem(422, f"Invalid date: {date!r}", why) from None
        return self._flag(request, "flat")

    def _oncall(self, schedule: Item, flat: bool) -> Item:
        parent = {"id": schedule["id"], "name": schedule["name"], "enabled": schedule.get("enabled", True)}
        usernames = list(self.account.oncalls.get(schedule["id"], []))
        if flat:
            return {"_parent": parent, "onCallRecipients": usernames}
        participants = []
        for username in usernames:
            user = self.account.find_user(username) or {}
            participants.append({"id": user.get("id", ""), "name": username, "type": "user"})
        return {"_parent": parent, "onCallParticipants": participants}

    def _all_oncalls(self, request: Request) -> Response:
        flat = self._oncall_args(request)
        return self._data([self._oncall(s, flat) for s in self.account.schedules])

    def _schedule_oncalls(self, request: Request, identifier: str) -> Response:
        kind = self._choice(request, "scheduleIdentifierType", ("id", "name"), "id") or "id"
        flat = self._oncall_args(request)
        return self._data(self._oncall(self._schedule(identifier, kind), flat))

    # -- users ---------------------------------------------------------------------------------
    def _list_users(self, request: Request) -> Response:
        window = self._window_args(request, default=100, maximum=100, ceiling=False)
        sort = self._choice(request, "sortField", USER_SORTS, "username") or "username"
        order = self._choice(request, "order", ("asc", "desc"), "asc") or "asc"
        query = parse_query(request.arg("query"), "user", self.account)
        matching = _sorted([u for u in self.account.users if query(u)], USER_SORTS[sort], order)
        offset, limit = window
        page = matching[offset : offset + limit]
        echo = ["query", "sortField", "order"]
        total = len(matching)
        return self._paged(request, page, window, total, echo, ceiling=False, totalCount=total)

    def _get_user(self, request: Request, identifier: str) -> Response:
        user = self.account.find_user(unquote(identifier))
        if user is None:
            raise ApiProblem(404, f"No user exists with identifier [{unquote(identifier)}]")
        return self._data(dict(user))

    # -- request limits ------------------------------------------------------------------------
    def _request_limits(self, request: Request) -> Response:
        limits = []
        for domain, (per_second, per_minute) in self.rate_limits.items():
            pairs = ((per_second, 1), (per_minute, 60))
            entries = [{"limit": n, "periodInSeconds": period} for n, period in pairs if n]
            limits.append({"domain": domain, "limits": entries})
        return self._data({"rateLimits": limits})


__all__ = ["ApiProblem", "OpsgenieEmulator", "Query", "QueryError", "domain_of", "parse_query"]
