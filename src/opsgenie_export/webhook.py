"""Opsgenie webhook events: parsing, a bounded coalescing queue, and the two ways to apply an event.

An event is one POST from Opsgenie's Webhook integration (docs/opsgenie-api.md §9): `action`
plus a partial `alert` keyed by `alert.alertId`. Events wait in `EventQueue`, at most one per
alert: a newer event for an alert that is still waiting replaces the older one, so a burst on one
alert costs one fetch and one write. A single worker applies them:

- `RefetchProcessor` (default): `Delete` removes the alert's entities; any other action, known or
  not, fetches `GET /v2/alerts/{id}` (404 = deleted), enriches it as `sync` does and maps it with
  every alert resource of the mapping — upserting what passes the selector and deleting what no
  longer does (Port's integration dropped those deletes: lessons 10-11).
- `PayloadProcessor` (`--mode payload`): maps the webhook body itself (no Opsgenie key needed).
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import quote

from opsgenie_export.errors import ApiError, AuthError, ExportError, Interrupted
from opsgenie_export.mapping import CompiledResource, Entity, MappingConfig
from opsgenie_export.mapping.jq_engine import compile_expression
from opsgenie_export.opsgenie.client import OpsgenieClient
from opsgenie_export.opsgenie.enrichment import Lookups, enrich_page, keys_for
from opsgenie_export.opsgenie.links import LinkCache
from opsgenie_export.opsgenie.query import build_query
from opsgenie_export.opsgenie.source import OpsgenieSource
from opsgenie_export.port.client import PortClient
from opsgenie_export.transport import WaitBudget

MAX_ALERT_ID = 200
PERMANENT_STATUSES = frozenset(range(400, 500)) - {404, 408, 409, 429}


class BadEvent(ValueError):
    """The body is not an Opsgenie webhook event (answered 400)."""


class ProcessingFailed(ExportError):
    """The event cannot be applied and retrying will not help (e.g. a JQ error on this alert)."""


class RetryLater(ExportError):
    """The event could not be applied now (enrichment lookup failed); requeue it."""


# --------------------------------------------------------------------------- events


@dataclass
class WebhookEvent:
    alert_id: str
    action: str
    payload: dict[str, Any]
    updated_ms: int | None = None  # alert.updatedAt normalised to epoch ms, to order events
    received: float = field(default_factory=time.monotonic)
    attempts: int = 0
    not_before: float = 0.0
    coalesced: int = 0  # older events this one replaced while waiting


def parse_event(body: bytes) -> WebhookEvent:
    """A webhook body → event; BadEvent naming what is wrong."""
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadEvent(f"malformed JSON: {exc}") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("alert"), dict):
        raise BadEvent("expected a JSON object with an 'alert' object")
    alert_id = payload["alert"].get("alertId")
    if not isinstance(alert_id, str) or not alert_id.strip() or len(alert_id) > MAX_ALERT_ID:
        raise BadEvent("alert.alertId is missing or not a non-empty string")
    action = payload.get("action")
    action = action if isinstance(action, str) else ""
    return WebhookEvent(alert_id, action, payload, epoch_ms(payload["alert"].get("updatedAt")))


def epoch_ms(value: Any) -> int | None:
    """Epoch seconds, ms, µs or ns (payloads mix ms and 19-digit ns) → ms, by magnitude."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = int(float(value))
    except ValueError:
        return None
    if number <= 0:
        return None
    while number >= 10**14:  # µs or ns
        number //= 1000
    return number * 1000 if number < 10**11 else number  # seconds → ms


# --------------------------------------------------------------------------- the queue


class EventQueue:
    """At most one waiting event per alert, at most `capacity` alerts waiting.

    An event becomes ready `settle` seconds after its alert started waiting (later events for that
    alert do not postpone it, so a busy alert is still written every `settle` seconds). Retries go
    back in with a delay and are never refused for capacity: nothing accepted is dropped here.
    """

    def __init__(self, capacity: int, settle: float = 0.0) -> None:
        self.capacity = capacity
        self.settle = settle
        self._waiting: dict[str, WebhookEvent] = {}
        self._cond = threading.Condition()
        self._closed = False
        self._busy = 0
        self.accepted = 0
        self.coalesced = 0

    def __len__(self) -> int:
        with self._cond:
            return len(self._waiting)

    def offer(self, event: WebhookEvent) -> bool:
        """Queue an event; False when the queue is full (or closed) and the sender should retry."""
        with self._cond:
            current = self._waiting.get(event.alert_id)
            if current is None:
                if self._closed or len(self._waiting) >= self.capacity:
                    return False
                event.not_before = event.received + self.settle
                self._waiting[event.alert_id] = event
            else:
                self._coalesce(older=current, newer=event, queued=current)
            self.accepted += 1
            self._cond.notify_all()
            return True

    def retry_later(self, event: WebhookEvent, delay: float) -> None:
        with self._cond:
            event.not_before = 0.0 if self._closed else time.monotonic() + delay
            current = self._waiting.get(event.alert_id)
            if current is None:
                self._waiting[event.alert_id] = event
            else:  # a newer event arrived while this one was being applied
                self._coalesce(older=event, newer=current, queued=current)
            self._cond.notify_all()

    def _coalesce(self, *, older: WebhookEvent, newer: WebhookEvent, queued: WebhookEvent) -> None:
        """Keep one event per alert: the later one, unless both carry `updatedAt` and the later
        arrival is the older change (an out-of-order delivery). It keeps the queued one's turn."""
        out_of_order = older.updated_ms is not None and newer.updated_ms is not None
        out_of_order = out_of_order and newer.updated_ms < older.updated_ms  # type: ignore[operator]
        kept, dropped = (older, newer) if out_of_order else (newer, older)
        kept.coalesced += dropped.coalesced + 1
        kept.not_before = 0.0 if self._closed else queued.not_before
        self._waiting[kept.alert_id] = kept
        self.coalesced += 1

    def take(self) -> WebhookEvent | None:
        """The next ready event (oldest deadline first); None once closed and empty."""
        with self._cond:
            while True:
                if self._waiting:
                    event = min(self._waiting.values(), key=lambda e: e.not_before)
                    delay = event.not_before - time.monotonic()
                    if delay <= 0:
                        del self._waiting[event.alert_id]
                        self._busy += 1
                        return event
                    self._cond.wait(delay)
                elif self._closed:
                    return None
                else:
                    self._cond.wait()

    def done(self) -> None:
        with self._cond:
            self._busy -= 1
            self._cond.notify_all()

    def close(self) -> None:
        """Accept no new alerts; make every waiting event ready now (one more try each)."""
        with self._cond:
            self._closed = True
            for event in self._waiting.values():
                event.not_before = 0.0
            self._cond.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Block until nothing waits and nothing is being processed (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._waiting or self._busy:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True

    def waiting_ids(self) -> list[str]:
        with self._cond:
            return list(self._waiting)


# --------------------------------------------------------------------------- mapping and writing


@dataclass
class Plan:
    upserts: list[Entity] = field(default_factory=list)
    deletes: list[tuple[str, str]] = field(default_factory=list)  # (blueprint, identifier)


class AlertMapper:
    """Every alert resource of a mapping, with and without its selector."""

    def __init__(self, compiled: list[CompiledResource]) -> None:
        self.resources = [c for c in compiled if c.kind == "alert"]
        always = compile_expression("selector.query", "true")
        self.unselected = [dataclasses.replace(c, selector=always) for c in self.resources]

    def plan(self, item: dict[str, Any], passes: list[bool] | None = None) -> Plan:
        """Entities to upsert, and those the item would produce but no longer passes the selector
        (or the resource's API filter, `passes`) for — to delete."""
        plan = Plan()
        for index, resource in enumerate(self.resources):
            result = resource.map_item(item)
            if result.errors:
                raise ProcessingFailed(str(result.errors[0]))
            kept = result.entities if passes is None or passes[index] else []
            plan.upserts.extend(kept)
            written = {(e.blueprint, e.identifier) for e in kept}
            plan.deletes.extend(k for k in self._keys(self.unselected[index], item) if k not in written)
        return plan

    def tombstone(self, event: WebhookEvent) -> Plan:
        """What to delete for a deleted alert: its entities as the mapping keys them, computed
        from the payload in the REST shape (`id`)."""
        return self.deletions({**event.payload["alert"], "id": event.alert_id}, event.alert_id)

    def deletions(self, item: dict[str, Any], alert_id: str) -> Plan:
        """Every entity the item maps to, selector or not; the bare alert id in the resource's
        blueprint where the mapping cannot key this item (a 404 on delete is fine)."""
        plan = Plan()
        for resource in self.unselected:
            keys = self._keys(resource, item)
            plan.deletes.extend(keys or [(bp, alert_id) for bp in sorted(resource.blueprints_static())])
        return plan

    @staticmethod
    def _keys(resource: CompiledResource, item: dict[str, Any]) -> list[tuple[str, str]]:
        result = resource.map_item(item)
        return [(e.blueprint, e.identifier) for e in result.entities if isinstance(e.identifier, str)]


@dataclass
class PortWriter:
    port: PortClient
    config: MappingConfig

    def apply(self, plan: Plan) -> str:
        done: list[str] = []
        for entity in plan.upserts:
            self.port.upsert(
                entity.blueprint,
                entity.to_port(),
                merge=self.config.enable_merge_entity,
                create_missing=self.config.create_missing_related_entities,
            )
            done.append(f"upserted {entity.blueprint}/{entity.identifier}")
        for blueprint, identifier in dict.fromkeys(plan.deletes):
            verb = "deleted" if self._delete(blueprint, identifier) else "absent"
            done.append(f"{verb} {blueprint}/{identifier}")
        return "; ".join(done) or "nothing to write"

    def _delete(self, blueprint: str, identifier: str) -> bool:
        try:
            self.port.bulk_delete(blueprint, [identifier], delete_dependents=self.config.delete_dependent_entities)
        except ApiError as exc:
            if exc.status == 404:
                return False
            raise
        return True


class Processor(Protocol):
    def process(self, event: WebhookEvent) -> str: ...


@dataclass
class PayloadProcessor:
    """`--mode payload`: the webhook body is the item."""

    mapper: AlertMapper
    writer: PortWriter

    def process(self, event: WebhookEvent) -> str:
        if event.action == "Delete":
            return self.writer.apply(self.mapper.deletions(event.payload, event.alert_id))
        return self.writer.apply(self.mapper.plan(event.payload))


class RefetchProcessor:
    """The default mode: the API's alert is the item; the payload only says which alert."""

    def __init__(
        self, mapper: AlertMapper, writer: PortWriter, opsgenie: OpsgenieClient, *, lookup_ttl: float = 60.0
    ) -> None:
        self.mapper = mapper
        self.writer = writer
        self.opsgenie = opsgenie
        self.lookup_ttl = lookup_ttl
        referenced = (k for r in mapper.resources for k in r.referenced_keys())
        self.keys = keys_for("alert", referenced)
        self.queries = [_resource_query(r) for r in mapper.resources]
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="webhook-lookups")
        self._lookups: tuple[float, Lookups] | None = None
        self._links = LinkCache()  # in memory: unchanged closed incidents are not asked every window

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def process(self, event: WebhookEvent) -> str:
        if event.action == "Delete":
            return self.writer.apply(self.mapper.tombstone(event))
        alert = self._fetch(event.alert_id)
        if alert is None:
            return "gone from Opsgenie: " + self.writer.apply(self.mapper.tombstone(event))
        item = self._enrich(alert)
        passes = [not query or self._matches(query, alert) for query in self.queries]
        return self.writer.apply(self.mapper.plan(item, passes))

    def _fetch(self, alert_id: str) -> dict[str, Any] | None:
        path = f"/v2/alerts/{quote(alert_id, safe='')}"
        try:
            return self.opsgenie.get(path, {"identifierType": "id"}, domain="alert")["data"]
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    def _enrich(self, alert: dict[str, Any]) -> dict[str, Any]:
        """Enrichment as in `sync`; the lookups (incidents, teams…) are reused for `lookup_ttl`
        seconds so a burst does not list the incidents again for every event."""
        if not self.keys:
            return alert
        [(item, problem)] = enrich_page(self._current_lookups(), self.keys, [alert])
        if problem:
            self._retire_lookups()  # a failed lookup is memoised: start afresh on the retry
            raise RetryLater(problem)
        return item

    def _current_lookups(self) -> Lookups:
        now = time.monotonic()
        if self._lookups is None or now - self._lookups[0] > self.lookup_ttl:
            self._retire_lookups()
            source = OpsgenieSource(self.opsgenie)
            self._lookups = (now, Lookups(source, self._pool, parallel=2, link_cache=self._links))
        return self._lookups[1]

    def _retire_lookups(self) -> None:
        """Drop the current lookups, keeping their alert→incident links for the next ones."""
        if self._lookups is not None:
            self._lookups[1].links.save()
        self._lookups = None

    def _matches(self, query: str, alert: dict[str, Any]) -> bool:
        """Whether the alert is inside the resource's API filter (apiQueryParams/opsgenieQuery),
        which `sync` applies server-side: ask the search API for this alert under that filter."""
        params = {"query": f"({query}) AND tinyId:{alert.get('tinyId')}", "limit": 100}
        found = self.opsgenie.get("/v2/alerts", params, domain="search").get("data") or []
        return any(candidate.get("id") == alert.get("id") for candidate in found)


def _resource_query(resource: CompiledResource) -> str:
    selector = resource.resource.selector
    return build_query(selector.api_query_params, selector.opsgenie_query, resource.resource.label)


# --------------------------------------------------------------------------- the worker


@dataclass
class RetryPolicy:
    max_attempts: int = 8
    base: float = 1.0
    cap: float = 60.0

    def delay(self, attempts: int) -> float:
        return min(self.cap, self.base * 2 ** (attempts - 1))


def is_retryable(error: ExportError) -> bool:
    """Refused credentials (401/403) are never retried: the event is dropped and logged once,
    and /healthz reports unhealthy until an event succeeds again."""
    if isinstance(error, ProcessingFailed | Interrupted | AuthError):
        return False
    status = getattr(error, "status", None)
    return not (isinstance(error, ApiError) and status in PERMANENT_STATUSES)


class Health:
    """What `GET /healthz` reports — one object, updated by the worker, read by the HTTP threads.

    Unhealthy (503) while the worker thread is not running, after `failure_limit` events in a row
    failed (Port or Opsgenie refusing or failing every write: a load balancer or monitor should
    see it, not only the log), and after a refused credential (401/403) until an event succeeds.
    """

    def __init__(self, failure_limit: int = 3) -> None:
        self._lock = threading.Lock()
        self.failure_limit = failure_limit
        self.consecutive_failures = 0
        self.last_error = ""
        self.auth_refused = False
        self.worker_alive: Callable[[], bool] = lambda: True

    def succeeded(self) -> None:
        with self._lock:
            self.consecutive_failures, self.last_error, self.auth_refused = 0, "", False

    def failed(self, error: BaseException) -> None:
        with self._lock:
            self.consecutive_failures += 1
            self.last_error = " ".join(str(error).split())[:300]
            self.auth_refused = self.auth_refused or isinstance(error, AuthError)

    def report(self) -> tuple[bool, dict[str, Any]]:
        """(healthy, body without secrets) for `GET /healthz`."""
        with self._lock:
            if not self.worker_alive():
                return False, {"status": "worker stopped"}
            if self.auth_refused:
                return False, {"status": "credentials refused", "error": self.last_error}
            if self.consecutive_failures >= self.failure_limit:
                status = f"failing: the last {self.consecutive_failures} event attempts failed"
                return False, {"status": status, "error": self.last_error}
            return True, {"status": "ok", "consecutiveFailures": self.consecutive_failures}


class Worker(threading.Thread):
    """Applies queued events one at a time; logs one line per event outcome."""

    def __init__(
        self,
        queue: EventQueue,
        processor: Processor,
        budget: WaitBudget,
        log: Callable[[str], None],
        policy: RetryPolicy | None = None,
        health: Health | None = None,
    ) -> None:
        super().__init__(name="webhook-worker", daemon=True)
        self.queue = queue
        self.processor = processor
        self.budget = budget
        self.log = log
        self.policy = policy or RetryPolicy()
        self.health = health or Health()
        self.health.worker_alive = self.is_alive
        self.processed = 0
        self.failures = 0  # events given up on
        self.interrupted: WebhookEvent | None = None

    def run(self) -> None:
        while (event := self.queue.take()) is not None:
            try:
                if not self._handle(event):
                    return
            finally:
                self.queue.done()

    def _handle(self, event: WebhookEvent) -> bool:
        """Apply one event; False when the process is being stopped for good."""
        event.attempts += 1
        self.budget.reset()  # the wait budget (retries inside the clients) is per event
        started = time.monotonic()
        try:
            result = self.processor.process(event)
        except Interrupted:
            self.interrupted = event
            self.log(f"{_describe(event)} interrupted: stopping before it was applied")
            return False
        except ExportError as exc:
            self.health.failed(exc)
            self._failed(event, exc)
            return True
        except Exception as exc:  # a bug must not stop the worker: log it, keep serving
            self.failures += 1
            self.health.failed(exc)
            self.log(f"{_describe(event)} FAILED (internal error {type(exc).__name__}: {_one_line(exc)})")
            return True
        self.processed += 1
        self.health.succeeded()
        took = time.monotonic() - started
        latency = time.monotonic() - event.received
        self.log(f"{_describe(event)} {result} ({took:.3f}s, {latency:.3f}s after receipt)")
        return True

    def _failed(self, event: WebhookEvent, error: ExportError) -> None:
        if is_retryable(error) and event.attempts < self.policy.max_attempts:
            delay = self.policy.delay(event.attempts)
            self.log(f"{_describe(event)} failed, retrying in {delay:.1f}s: {_one_line(error)}")
            self.queue.retry_later(event, delay)
            return
        self.failures += 1
        self.log(
            f"{_describe(event)} FAILED for good: {_one_line(error)}; the next scheduled sync will reconcile this alert"
        )


def _describe(event: WebhookEvent) -> str:
    alert_id = "".join(c if c.isprintable() else "?" for c in event.alert_id)
    action = "".join(c if c.isprintable() else "?" for c in event.action[:40]) or "(none)"
    extra = f" coalesced={event.coalesced}" if event.coalesced else ""
    return f"webhook alert={alert_id} action={action} attempt={event.attempts}{extra}:"


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())[:500]
