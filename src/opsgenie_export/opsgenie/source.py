"""Which endpoint serves each kind, and how to list it completely.

Alerts and incidents are listed in ascending `createdAt` windows: page with offset until the next
page would cross the 20,000 offset ceiling, then open a new window at the last `createdAt` seen
(`createdAt>=T`) and skip the items already delivered at exactly T. Every item comes out once,
items created during the run arrive at the end, and the request count stays at the floor
(one page per 100 items). Kinds without a time filter (services, users) are marked truncated
when they reach the ceiling — never silently cut.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Generator, Iterator, Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from opsgenie_export.errors import ApiError
from opsgenie_export.opsgenie.client import OpsgenieClient
from opsgenie_export.opsgenie.links import LinkCache
from opsgenie_export.opsgenie.query import iso_to_ms

PAGE_SIZE = 100
OFFSET_CEILING = 20_000


@dataclass(frozen=True)
class PageFormat:
    """How an API pages a list (the pager below is shared by both sources): the page-size
    parameter, the page size, the offset ceiling (`offset + size` may reach it), and where the
    items and the next-page link are in the envelope."""

    items_key: str = "data"
    size_param: str = "limit"
    size: int = PAGE_SIZE
    ceiling: int = OFFSET_CEILING
    links_key: str = "paging"

    def items(self, envelope: dict[str, Any]) -> list[dict[str, Any]]:
        items = envelope.get(self.items_key)
        return items if isinstance(items, list) else []

    def is_full(self, envelope: dict[str, Any]) -> bool:
        """A page that says more may follow: a full page and a `next` link."""
        items = envelope.get(self.items_key)
        links = envelope.get(self.links_key) or {}
        return isinstance(items, list) and len(items) >= self.size and bool(links.get("next"))

    def last_offset(self, envelope: dict[str, Any]) -> int:
        """The offset in the envelope's `last` link (0 when absent or unreadable)."""
        link = (envelope.get(self.links_key) or {}).get("last")
        if not isinstance(link, str):
            return 0
        try:
            values = parse_qs(urlsplit(link).query).get("offset") or ["0"]
            return max(0, int(values[0]))
        except ValueError:
            return 0


OPSGENIE_PAGES = PageFormat()


@dataclass(frozen=True)
class KindEndpoint:
    path: str
    domain: str
    style: str  # "windowed" (createdAt keyset), "paged" (offset), "single" (one response)
    params: tuple[tuple[str, str], ...] = ()
    pages: PageFormat = OPSGENIE_PAGES


ENDPOINTS: dict[str, KindEndpoint] = {
    "alert": KindEndpoint("/v2/alerts", "search", "windowed"),
    "incident": KindEndpoint("/v1/incidents", "incident", "windowed"),
    "service": KindEndpoint("/v1/services", "configuration", "paged"),
    "user": KindEndpoint("/v2/users", "search", "paged"),
    "team": KindEndpoint("/v2/teams", "configuration", "single"),
    "schedule": KindEndpoint("/v2/schedules", "configuration", "single", (("expand", "rotation"),)),
    "escalation": KindEndpoint("/v2/escalations", "configuration", "single"),
}
# schedule-oncall items are schedules (with on-calls added by enrichment): same listing.
ENDPOINTS["schedule-oncall"] = ENDPOINTS["schedule"]


@dataclass
class Listing:
    """Pages of one kind. Iterate it; afterwards `truncated` says whether the API stopped short."""

    client: Any  # OpsgenieClient, or any client with the same `get(path, params, domain=)`
    endpoint: KindEndpoint
    query: str = ""
    truncated: bool = False
    truncation_reason: str = ""
    pool: Executor | None = None  # fetch `parallel` pages at once when given
    parallel: int = 1
    _started: bool = field(default=False, repr=False)

    def __iter__(self) -> Iterator[list[dict[str, Any]]]:
        if self._started:
            raise RuntimeError("a Listing can be iterated once")
        self._started = True
        style = self.endpoint.style
        if style == "windowed":
            yield from self._windowed()
        elif style == "paged":
            yield from self._paged()
        else:
            yield self.endpoint.pages.items(self._get(dict(self.endpoint.params)))

    def _get(self, params: dict[str, Any]) -> dict[str, Any]:
        return self.client.get(self.endpoint.path, params, domain=self.endpoint.domain)

    def _envelopes(self, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """Pages at offsets 0, 100, … up to the ceiling, in order, up to `parallel` requests ahead.

        A page is requested only when an earlier page proved it exists: the first page alone;
        after a full page with `paging.next`, every page up to the offset of its `paging.last`
        (the API's own size of the list), or the next one when `last` is absent. So a listing
        costs exactly its pages, and nothing past a short page is asked for. The caller stops
        at the first short page or page without `paging.next`; pending pages are cancelled.
        """
        pages = self.endpoint.pages
        pending: deque[Future[dict[str, Any]]] = deque()
        next_offset, known_last = 0, 0  # known_last: the highest offset known to hold items
        try:
            while True:
                while (
                    len(pending) < max(1, self.parallel)
                    and next_offset <= known_last
                    and next_offset + pages.size <= pages.ceiling
                ):
                    page_params = {**params, "offset": next_offset, pages.size_param: pages.size}
                    pending.append(self._submit(page_params))
                    next_offset += pages.size
                if not pending:
                    return
                offset = next_offset - pages.size * len(pending)
                envelope = pending.popleft().result()
                if pages.is_full(envelope):
                    known_last = max(known_last, offset + pages.size, pages.last_offset(envelope))
                yield envelope
        finally:
            for future in pending:
                future.cancel()

    def _submit(self, params: dict[str, Any]) -> Future[dict[str, Any]]:
        if self.pool is None or self.parallel <= 1:
            future: Future[dict[str, Any]] = Future()
            try:
                future.set_result(self._get(params))
            except BaseException as exc:
                future.set_exception(exc)
            return future
        return self.pool.submit(self._get, params)

    def _paged(self) -> Iterator[list[dict[str, Any]]]:
        params: dict[str, Any] = dict(self.endpoint.params)
        if self.query:
            params["query"] = self.query
        for envelope in self._envelopes(params):
            items = self.endpoint.pages.items(envelope)
            if items:
                yield items
            if not self.endpoint.pages.is_full(envelope):
                return
        ceiling = self.endpoint.pages.ceiling
        self._truncate(f"more than {ceiling} items; the API cannot page past its offset ceiling")

    def _windowed(self) -> Iterator[list[dict[str, Any]]]:
        cursor, delivered = 0, set[str]()  # window = createdAt >= cursor (epoch ms), ascending
        while True:
            last_ms, ids_at_last, reached_ceiling = yield from self._window(cursor, delivered)
            if not reached_ceiling:
                return
            if last_ms == cursor:
                self._truncate(f"more than {self.endpoint.pages.ceiling} items share createdAt {cursor} ms")
                return
            cursor, delivered = last_ms, ids_at_last

    def _window(
        self, cursor: int, already: set[str]
    ) -> Generator[list[dict[str, Any]], None, tuple[int, set[str], bool]]:
        """Yield the pages of one window; return (last createdAt ms, ids at it, hit the ceiling)."""
        params = {"query": _and(self.query, f"createdAt>={cursor}"), "sort": "createdAt", "order": "asc"}
        last_ms, ids_at_last = cursor, set(already)
        for envelope in self._envelopes(params):
            items = self.endpoint.pages.items(envelope)
            fresh = []
            for item in items:
                created = created_ms(item)
                if created == cursor and item.get("id") in already:
                    continue
                if created != last_ms:
                    last_ms, ids_at_last = created, set()
                ids_at_last.add(item.get("id"))
                fresh.append(item)
            if fresh:
                yield fresh
            if not self.endpoint.pages.is_full(envelope):
                return last_ms, ids_at_last, False
        return last_ms, ids_at_last, True

    def _truncate(self, reason: str) -> None:
        self.truncated = True
        self.truncation_reason = reason


def is_full(envelope: dict[str, Any]) -> bool:
    """An Opsgenie page that says more may follow: PAGE_SIZE items and a `paging.next` link."""
    return OPSGENIE_PAGES.is_full(envelope)


def last_offset(envelope: dict[str, Any]) -> int:
    """The offset in an Opsgenie envelope's `paging.last` link (0 when absent or unreadable)."""
    return OPSGENIE_PAGES.last_offset(envelope)


def created_ms(item: dict[str, Any]) -> int:
    """An item's createdAt as epoch milliseconds (ISO string or number)."""
    value = item.get("createdAt")
    if isinstance(value, int | float):
        return int(value)
    if not isinstance(value, str):
        return 0
    return iso_to_ms(value)


def _and(left: str, right: str) -> str:
    if not left:
        return right
    return f"({left}) AND {right}"


def listing(
    client: OpsgenieClient, kind: str, query: str = "", pool: Executor | None = None, parallel: int = 1
) -> Listing:
    return Listing(client, ENDPOINTS[kind], query, pool=pool, parallel=parallel)


ASSOCIATED_PAGE = 25


class OpsgenieSource:
    """Opsgenie behind the source seam (sources.py): items come as the API gives them."""

    name = "opsgenie"
    title = "Opsgenie"

    def __init__(self, client: OpsgenieClient, api_key: str = "") -> None:
        self.client = client
        self._api_key = api_key  # only to name the link cache file, by digest

    def listing(self, kind: str, query: str = "", pool: Executor | None = None, parallel: int = 1) -> Listing:
        return listing(self.client, kind, query, pool, parallel)

    def team(self, team_id: str) -> dict[str, Any]:
        try:
            return self.client.get(f"/v2/teams/{team_id}", None, domain="configuration")["data"]
        except ApiError as exc:
            if exc.status == 404:
                return {}
            raise

    def oncalls(self, schedules: Sequence[dict[str, Any]] = ()) -> dict[str, dict[str, Any]]:
        """On-calls of every schedule from one call (the listed schedules are not needed)."""
        data = self.client.get("/v2/schedules/on-calls", {"flat": "true"}, domain="schedule-oncalls")
        return {entry["_parent"]["id"]: entry for entry in data.get("data") or []}

    def incident_alert_ids(self, incident_id: str) -> list[str]:
        alert_ids: list[str] = []
        offset = 0
        while True:
            params = {"offset": offset, "limit": ASSOCIATED_PAGE}
            try:
                envelope = self.client.get(
                    f"/v1/incidents/{incident_id}/associated-alert-ids", params, domain="incident"
                )
            except ApiError as exc:
                if exc.status == 404:
                    return []  # deleted since it was listed: it links no alert any more
                raise
            page = envelope.get("data") or []
            alert_ids.extend(page)
            if not page or not (envelope.get("paging") or {}).get("next"):
                return alert_ids
            offset += len(page)

    def learn_rate_limits(self) -> dict[str, Any]:
        return self.client.learn_rate_limits()

    def link_cache(self, cache_dir: Path) -> LinkCache:
        return LinkCache.for_account(cache_dir, self.client.base_url, self._api_key)

    def request_counts(self) -> dict[str, Any]:
        stats = self.client.stats
        return {"opsgenie": dict(stats.requests), "opsgenieThrottled": dict(stats.throttled), "retries": stats.retries}

    def close(self) -> None:
        self.client.close()
