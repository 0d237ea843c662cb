"""The Port HTTP layer: token lifecycle, bulk upsert, paged search, bulk delete, blueprints.

Policy (docs/port-api.md §3, §11, §12): the token is cached and refreshed five minutes before it
expires and once on a 401; a 401 from the token route is bad credentials (never retried). 429
honours `Retry-After`, then `x-ratelimit-reset` (an epoch time when large); 408 and 5xx,
timeouts, dropped connections and truncated bodies are retried with backoff; 400/403/404/413/422
are final.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import requests

from opsgenie_export.concurrency import AdaptiveLimit
from opsgenie_export.errors import ApiError, AuthError
from opsgenie_export.transport import (
    REQUEST_FAILURES,
    RETRYABLE_STATUSES,
    Unreachable,
    WaitBudget,
    backoff_delay,
    classify_exception,
    decode_json,
    jittered,
    pooled_session,
    timeouts,
)

REFRESH_MARGIN = 300.0  # seconds before expiry
MAX_BULK_ENTITIES = 20
MAX_BODY_BYTES = 1_048_576
MAX_DELETE_BATCH = 100
SEARCH_PAGE = 1000


@dataclass
class EntityError:
    identifier: str
    status: int | None
    error: str
    message: str

    def __str__(self) -> str:
        return f"{self.identifier}: {self.status or ''} {self.error}: {self.message}".replace("  ", " ")


@dataclass
class BulkResult:
    written: list[str] = field(default_factory=list)  # identifiers, by request index
    failed: dict[int, EntityError] = field(default_factory=dict)  # request index → error


@dataclass
class PortStats:
    """Request counters, updated from every writer and reader thread (under a lock)."""

    requests: Counter[str] = field(default_factory=Counter)  # per route kind
    throttled: int = 0
    retries: int = 0
    token_requests: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    def add(self, counter: str, route: str | None = None) -> None:
        with self._lock:
            if route is not None:
                self.requests[route] += 1
            else:
                setattr(self, counter, getattr(self, counter) + 1)


class PortClient:
    # where the credentials came from, for the 401 message (Settings.origin)
    credentials_origin = "PORT_CLIENT_ID and PORT_CLIENT_SECRET"

    def __init__(
        self,
        base_url: str,
        client_id: str,
        client_secret: str,
        *,
        budget: WaitBudget,
        timeout: float = 30.0,
        max_retries: int = 5,
        pool_size: int = 16,
        ca_bundle: str | None = None,
        clock: Any = time.monotonic,
        max_in_flight: int | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._credentials = {"clientId": client_id, "clientSecret": client_secret}
        self.budget = budget
        self.timeout = timeout
        self.max_retries = max_retries
        self.stats = PortStats()
        self._clock = clock
        self._token: str | None = None
        self._token_deadline = 0.0
        self._token_lock = threading.Lock()
        self._session = pooled_session(pool_size, ca_bundle, {})
        self.unreachable = Unreachable()
        self._window = RateWindow(reserve=2, budget=budget)
        self.in_flight = AdaptiveLimit("port", max_in_flight or pool_size, stop=budget.stop)

    def close(self) -> None:
        self._session.close()

    # -- token -------------------------------------------------------------------------------
    def authenticate(self) -> None:
        """Get a token now (fails fast on bad credentials, before any Opsgenie work)."""
        self._bearer(force=True)

    def _bearer(self, force: bool = False, rejected: str | None = None) -> str:
        with self._token_lock:
            stale = self._token is None or self._clock() >= self._token_deadline
            if force or stale or (rejected is not None and rejected == self._token):
                self._token, lifetime = self._request_token()
                self._token_deadline = self._clock() + max(0.0, lifetime - REFRESH_MARGIN)
            return self._token

    def _request_token(self) -> tuple[str, float]:
        self.stats.add("token_requests")
        _, body = self._send(
            "POST", "/v1/auth/access_token", json_body=self._credentials, authorised=False, expect=("accessToken",)
        )
        return body["accessToken"], float(body.get("expiresIn", 10800))

    # -- core request loop -------------------------------------------------------------------
    def _send(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json_body: Any = None,
        data: bytes | None = None,
        authorised: bool = True,
        accept: tuple[int, ...] = (200, 201),
        expect: tuple[str, ...] = (),
    ) -> tuple[int, Any]:
        """(status, decoded body) of the first accepted answer; the body is decoded once. The body
        must be a JSON object holding a non-null value for each key of `expect` (what the route
        promises); anything else — cut, not UTF-8, HTML, `{"data": null}` — is retried."""
        url = f"{self.base_url}{path}"
        if data is None and json_body is not None:
            data = json.dumps(json_body, separators=(",", ":")).encode("utf-8")
        attempt, refreshed, started = 0, False, time.monotonic()
        while True:
            self.budget.stop.check()
            self.unreachable.check()  # another request already found Port unreachable
            headers = {"Content-Type": "application/json"}
            token = None
            if authorised:
                token = self._bearer()
                headers["Authorization"] = f"Bearer {token}"
            self.stats.add("requests", _route_kind(method, path))
            try:
                with self.in_flight.slot() as slot:
                    if authorised:  # paced after the slot is taken: a request waits in one place
                        self._window.acquire()
                        slot.sending()
                    response = self._session.request(
                        method, url, params=params, data=data, headers=headers, timeout=timeouts(self.timeout)
                    )
                    if response.status_code == 429:
                        slot.throttled()
                    elif response.status_code >= 500:
                        slot.failed()
                    slot.room = RateWindow.room_for(self.in_flight.current, response)
            except REQUEST_FAILURES as exc:
                failure = classify_exception(exc, url)
                if not failure.retryable:
                    raise ApiError(f"Port {method} {path}: {failure.detail}") from None
                if failure.unreachable and Unreachable.give_up_now(failure, attempt):
                    seconds, hint = (
                        time.monotonic() - started,
                        "check the Port URL (--port-url) and the network or proxy",
                    )
                    message = self.unreachable.give_up("Port", attempt + 1, seconds, failure.detail, hint)
                    raise ApiError(message) from None
                detail, wait_hint = failure.detail, None
            else:
                status = response.status_code
                self._window.observe(response.headers, in_flight=self.in_flight.in_flight)
                if status in accept:
                    body, problem = _decoded(response, expect)
                    if problem is None:
                        return status, body
                    detail, wait_hint = f"HTTP {status} with {problem}", None
                elif status == 401 and authorised and not refreshed:
                    self._bearer(rejected=token)
                    refreshed = True
                    continue
                elif status in RETRYABLE_STATUSES:
                    detail, wait_hint = _describe(response), _wait_hint(response)
                    if status == 429:
                        self.stats.add("throttled")
                else:
                    raise _final_error(method, path, response, authorised, self.credentials_origin)
            if wait_hint is None and attempt >= self.max_retries:
                raise ApiError(f"Port {method} {path} failed after {attempt + 1} attempts: {detail}")
            delay = jittered(wait_hint) if wait_hint is not None else backoff_delay(attempt)
            attempt += 1
            self.stats.add("retries")
            self.budget.wait(delay, f"Port {method} {path} ({detail})")

    # -- blueprints --------------------------------------------------------------------------
    def get_blueprint(self, identifier: str) -> dict[str, Any] | None:
        try:
            return self._send("GET", f"/v1/blueprints/{identifier}", expect=("blueprint",))[1]["blueprint"]
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    def list_blueprints(self) -> dict[str, dict[str, Any]]:
        _, body = self._send("GET", "/v1/blueprints", expect=("blueprints",))
        return {bp["identifier"]: bp for bp in body.get("blueprints") or []}

    def create_blueprint(self, blueprint: dict[str, Any]) -> None:
        self._send("POST", "/v1/blueprints", json_body=blueprint, expect=("blueprint",))

    def patch_blueprint(self, identifier: str, changes: dict[str, Any]) -> None:
        self._send("PATCH", f"/v1/blueprints/{identifier}", json_body=changes, expect=("blueprint",))

    # -- entities ----------------------------------------------------------------------------
    def bulk_upsert(
        self, blueprint: str, entities: list[dict[str, Any]], *, merge: bool, create_missing: bool
    ) -> BulkResult:
        """One bulk request (≤20 entities, ≤1 MiB); per-entity outcomes read from 200/207."""
        params = _flags(upsert=True, merge=merge, create_missing_related_entities=create_missing)
        status, body = self._send(
            "POST",
            f"/v1/blueprints/{blueprint}/entities/bulk",
            params=params,
            json_body={"entities": entities},
            accept=(200, 207),
            expect=("entities",),
        )
        body = body or {}
        result = BulkResult()
        for entry in body.get("errors") or []:
            index = entry.get("index")
            if isinstance(index, int):
                result.failed[index] = EntityError(
                    str(entry.get("identifier")),
                    entry.get("statusCode"),
                    str(entry.get("error", "")),
                    str(entry.get("message", "")),
                )
        written = {e.get("index"): e.get("identifier") for e in body.get("entities") or []}
        for index, entity in enumerate(entities):
            if index in written:
                result.written.append(str(written[index]))
            elif index not in result.failed:
                result.failed[index] = EntityError(
                    str(entity.get("identifier")),
                    status,
                    "missing_result",
                    "Port returned no result for this entity",
                )
        return result

    def upsert(self, blueprint: str, entity: dict[str, Any], *, merge: bool, create_missing: bool) -> None:
        params = _flags(upsert=True, merge=merge, create_missing_related_entities=create_missing)
        self._send("POST", f"/v1/blueprints/{blueprint}/entities", params=params, json_body=entity, expect=("entity",))

    def search(self, blueprint: str, include: list[str] | None = None) -> Iterator[dict[str, Any]]:
        """Every entity of a blueprint, paged (1000 per page)."""
        body: dict[str, Any] = {"query": {"combinator": "and", "rules": []}, "limit": SEARCH_PAGE}
        if include:
            body["include"] = include
        while True:
            _, page = self._send(
                "POST", f"/v1/blueprints/{blueprint}/entities/search", json_body=body, expect=("entities",)
            )
            yield from page.get("entities") or []
            cursor = page.get("next")
            if not cursor:
                return
            body["from"] = cursor

    def bulk_delete(self, blueprint: str, identifiers: list[str], *, delete_dependents: bool) -> list[str]:
        """The identifiers Port says it deleted (its `deletedEntities`), not those that were sent."""
        params = _flags(delete_dependents=delete_dependents)
        body = self._send(
            "POST",
            f"/v1/blueprints/{blueprint}/bulk/entities/delete",
            params=params,
            json_body={"entities": identifiers},
            expect=("deletedEntities",),
        )[1]
        return [str(identifier) for identifier in body["deletedEntities"]]


class RateWindow:
    """Proactive pacing from Port's `x-ratelimit-remaining` / `x-ratelimit-reset` headers: when
    the window is nearly spent, wait for its reset instead of collecting 429s."""

    def __init__(self, reserve: int, budget: WaitBudget) -> None:
        self._lock = threading.Lock()
        self._remaining: int | None = None
        self._reset_at = 0.0  # epoch seconds
        self._limit: int | None = None  # x-ratelimit-limit, the budget of every window
        self._period = 0.0  # x-ratelimit-period, seconds
        self._blocked_until = 0.0  # every thread waits for the window's reset once it is spent
        self._reserve = reserve
        self._budget = budget

    def observe(self, headers: Any, in_flight: int = 0) -> None:
        """Learn the window from an answer. The server counted only the requests it has answered:
        the `in_flight` ones still on their way will spend the window too."""
        try:
            remaining = int(headers["x-ratelimit-remaining"]) - in_flight
            reset = float(headers["x-ratelimit-reset"])
            limit = int(headers.get("x-ratelimit-limit") or 0)
            period = float(headers.get("x-ratelimit-period") or 0)
        except (KeyError, ValueError):
            return
        with self._lock:
            if reset < self._reset_at:
                return  # a late answer from a window that is already over
            self._remaining, self._reset_at = remaining, reset
            self._limit, self._period = limit or self._limit, period or self._period

    @staticmethod
    def room_for(in_flight: int, response: requests.Response) -> bool:
        """Whether this answer's window allows more than `in_flight` requests at once: what is
        left, spread until the reset, times the round trip. No headers: no known limit."""
        try:
            remaining = int(response.headers["x-ratelimit-remaining"])
            reset = float(response.headers["x-ratelimit-reset"])
        except (KeyError, ValueError):
            return True
        seconds_left = max(0.05, reset - time.time())
        return remaining / seconds_left * response.elapsed.total_seconds() > in_flight

    def acquire(self) -> None:
        with self._lock:
            now = time.time()
            if self._blocked_until <= now and self._remaining is not None:
                if self._remaining <= self._reserve:
                    self._blocked_until = now + max(0.0, min(self._reset_at - now, 300.0)) + 0.05
                    self._start_next_window()
                else:
                    self._remaining -= 1
            delay = self._blocked_until - now
        if delay > 0:
            self._budget.wait(delay, "Port rate limit window (x-ratelimit-reset)")

    def _start_next_window(self) -> None:
        """After the wait, the next window's budget is its known limit, not unlimited: without
        it every worker would fire at once when the window opens, before any answer tells the
        new budget. Unknown limit or period: the next answer tells (as before)."""
        if self._limit and self._period:
            self._remaining = self._limit
            self._reset_at = self._blocked_until + self._period
        else:
            self._remaining = None


def _flags(**flags: bool) -> dict[str, str]:
    return {name: "true" if value else "false" for name, value in flags.items()}


def _route_kind(method: str, path: str) -> str:
    if path.endswith("/entities/bulk"):
        return "bulk_upsert"
    if path.endswith("/bulk/entities/delete"):
        return "bulk_delete"
    if path.endswith("/entities/search"):
        return "search"
    if path.endswith("/access_token"):
        return "token"
    if "/entities" in path:
        return "entity"
    return "blueprint"


def _decoded(response: requests.Response, expect: tuple[str, ...]) -> tuple[Any, str | None]:
    """(body, None) for a JSON object with every key of `expect` set, else (None, why not)."""
    return decode_json(response, lambda body: isinstance(body, dict) and all(body.get(k) is not None for k in expect))


def _wait_hint(response: requests.Response) -> float | None:
    """Seconds to wait from Retry-After or x-ratelimit-reset (an epoch time when > 10,000)."""
    for header in ("Retry-After", "x-ratelimit-reset"):
        raw = response.headers.get(header)
        try:
            value = float(raw) if raw else None
        except ValueError:
            continue
        if value is None:
            continue
        if value > 10_000:
            value = value - time.time()
        return max(0.0, min(value, 300.0))
    return None


def _describe(response: requests.Response) -> str:
    parts = [f"HTTP {response.status_code}"]
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        parts.extend(str(body[key]) for key in ("error", "message") if body.get(key))
    trace = response.headers.get("X-Trace-Id")
    if trace:
        parts.append(f"trace {trace}")
    return ", ".join(parts)


def _final_error(
    method: str, path: str, response: requests.Response, authorised: bool, credentials_origin: str
) -> ApiError:
    detail = _describe(response)
    status = response.status_code
    if not authorised and status in (401, 403, 422):
        return AuthError(
            f"Port refused the client credentials ({detail}): check {credentials_origin}, "
            "and PORT_BASE_URL for the region"
        )
    if status in (401, 403):
        return AuthError(f"Port denied {method} {path} ({detail}): the credentials lack the rights for it")
    return ApiError(f"Port {method} {path}: {detail}", status=status)
