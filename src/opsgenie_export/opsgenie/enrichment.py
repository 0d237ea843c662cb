"""Enrichment keys (`__team`, `__incidents`, …) computed from lookups built once per run.

Never one request per item: a listing is fetched once and shared by every kind and enrichment
that needs it; team details once per distinct team; on-calls for all schedules in one call; and
alert→incident links from one linked-alerts pass over the incidents that the link cache
cannot answer for (links.py). Each key is
computed only when the mapping mentions it. When a lookup fails, the items that need it fail
(they are not written), so correct data in Port is never overwritten with blanks.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, overload

from opsgenie_export.errors import ApiError, ExportError
from opsgenie_export.mapping.keys import KEYS_BY_KIND
from opsgenie_export.opsgenie.links import IncidentLinks, LinkCache
from opsgenie_export.sources import Source

# The listings (kinds) each enrichment key is computed from; the keys per kind are in mapping.keys.
KEY_SOURCES: dict[str, frozenset[str]] = {
    "__team": frozenset({"team"}),
    "__members": frozenset({"team"}),
    "__incidents": frozenset({"incident"}),
    "__relatedIncident": frozenset({"incident"}),
    "__impactedServices": frozenset({"service"}),
    "__oncalls": frozenset({"schedule"}),
    "__currentOncalls": frozenset({"schedule"}),
}
# Kinds whose items come from another kind's listing (same endpoint and parameters): listed once.
SAME_LISTING: dict[str, str] = {"schedule-oncall": "schedule"}


class EnrichmentUnavailable(ExportError):
    """A lookup that some items need could not be built; those items fail."""


class CompactItems(Sequence[dict[str, Any]]):
    """A listing kept as compact JSON, one bytes object per item: about a third of the memory of
    the decoded dicts (10,000 incidents: ~9 MB instead of ~30 MB). Each access decodes afresh, so
    every reader gets its own copy and the shared listing stays raw."""

    def __init__(self, items: Iterable[dict[str, Any]]) -> None:
        self._blobs = [json.dumps(item, separators=(",", ":"), ensure_ascii=False).encode() for item in items]

    def __len__(self) -> int:
        return len(self._blobs)

    @overload
    def __getitem__(self, index: int) -> dict[str, Any]: ...

    @overload
    def __getitem__(self, index: slice) -> list[dict[str, Any]]: ...

    def __getitem__(self, index: int | slice) -> dict[str, Any] | list[dict[str, Any]]:
        if isinstance(index, slice):
            return [json.loads(blob) for blob in self._blobs[index]]
        return json.loads(self._blobs[index])


@dataclass
class SharedListing:
    items: CompactItems
    truncated: bool
    reason: str


class _Once:
    """Single-flight memo: the first caller computes, concurrent callers wait, errors are kept."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._futures: dict[Any, Future[Any]] = {}

    def get(self, key: Any, compute: Callable[[], Any]) -> Any:
        with self._lock:
            future = self._futures.get(key)
            owner = future is None
            if owner:
                future = self._futures[key] = Future()
        if owner:
            try:
                future.set_result(compute())
            except BaseException as exc:
                future.set_exception(exc)
        return future.result()


class Lookups:
    """Per-run caches over a source (Opsgenie or JSM Operations, sources.py). Thread-safe;
    everything is fetched on first use."""

    def __init__(
        self,
        source: Source,
        pool: ThreadPoolExecutor,
        parallel: int = 1,
        link_cache: LinkCache | None = None,
    ) -> None:
        self.source = source
        self.pool = pool  # never used by a task it runs (no nested submits), so it cannot deadlock
        self.parallel = parallel  # list pages fetched at once
        self.links = IncidentLinks(self._associated_alerts, pool, 2 * max(1, parallel), link_cache)
        self._once = _Once()
        self._incomplete_kinds: set[str] = set()

    def listing_failed(self, kind: str) -> bool:
        """Whether a shared listing of this kind failed or stopped short during the run."""
        return kind in self._incomplete_kinds

    # -- shared listings -----------------------------------------------------------------
    def shared_listing(self, kind: str, query: str = "") -> SharedListing:
        """One complete listing of a kind (per query), shared by kinds and enrichments."""
        kind = SAME_LISTING.get(kind, kind)

        def fetch() -> SharedListing:
            pages = self.source.listing(kind, query, self.pool, self.parallel)
            try:
                items = CompactItems(item for page in pages for item in page)
            except ApiError:
                self._incomplete_kinds.add(kind)
                raise
            if pages.truncated:
                self._incomplete_kinds.add(kind)
            return SharedListing(items, pages.truncated, pages.truncation_reason)

        return self._once.get(("listing", kind, query), fetch)

    def _complete(self, kind: str, key: str) -> CompactItems:
        try:
            result = self.shared_listing(kind)
        except ApiError as exc:
            raise EnrichmentUnavailable(f"{key} needs the {kind} listing, which failed: {exc}") from exc
        if result.truncated:
            raise EnrichmentUnavailable(f"{key} needs the {kind} listing, which is incomplete: {result.reason}")
        return result.items

    def service(self, service_id: str) -> dict[str, Any] | None:
        """The listed service with this id (a fresh copy), or None."""
        services = self._complete("service", "__impactedServices")
        positions = self._once.get("services_by_id", lambda: {s["id"]: n for n, s in enumerate(services)})
        position = positions.get(service_id)
        return None if position is None else services[position]

    def incidents_of_service(self, service_id: str) -> list[dict[str, Any]]:
        """Every listed incident whose impactedServices names the service, in listing order."""
        incidents = self._complete("incident", "__incidents")

        def build() -> dict[str, list[int]]:
            index: dict[str, list[int]] = defaultdict(list)
            for position, incident in enumerate(incidents):
                for impacted in incident.get("impactedServices") or []:
                    index[impacted].append(position)
            return dict(index)

        return [incidents[n] for n in self._once.get("incidents_by_service", build).get(service_id, [])]

    def schedules_by_team(self) -> dict[str, list[dict[str, Any]]]:
        """Every schedule each team owns, in listing order."""

        def build() -> dict[str, list[dict[str, Any]]]:
            index: dict[str, list[dict[str, Any]]] = defaultdict(list)
            for schedule in self._complete("schedule", "__oncalls"):
                team_id = (schedule.get("ownerTeam") or {}).get("id")
                if team_id:
                    index[team_id].append(schedule)
            return dict(index)

        return self._once.get("schedules_by_team", build)

    def schedule_by_team(self) -> dict[str, dict[str, Any]]:
        """The first schedule each team owns (Port's historical `__oncalls` rule)."""

        def build() -> dict[str, dict[str, Any]]:
            index: dict[str, dict[str, Any]] = {}
            for schedule in self._complete("schedule", "__oncalls"):
                team_id = (schedule.get("ownerTeam") or {}).get("id")
                if team_id and team_id not in index:
                    index[team_id] = schedule
            return index

        return self._once.get("schedule_by_team", build)

    # -- per-run detail calls --------------------------------------------------------------
    def oncalls(self) -> dict[str, dict[str, Any]]:
        """On-calls of every schedule from one call: schedule id → {_parent, onCallRecipients}."""

        def fetch() -> dict[str, dict[str, Any]]:
            try:
                return self.source.oncalls(self._complete("schedule", "on-call lookup"))
            except ApiError as exc:
                raise EnrichmentUnavailable(f"on-call lookup failed: {exc}") from exc

        return self._once.get("oncalls", fetch)

    def team(self, team_id: str) -> dict[str, Any]:
        def fetch() -> dict[str, Any]:
            try:
                return self.source.team(team_id)
            except ApiError as exc:
                raise EnrichmentUnavailable(f"team {team_id} lookup failed: {exc}") from exc

        return self._once.get(("team", team_id), fetch)

    def prefetch_teams(self, team_ids: Iterable[str]) -> None:
        """Fetch the details of these teams concurrently (each once per run)."""
        futures = [self.pool.submit(self.team, team_id) for team_id in set(team_ids) if team_id]
        for future in futures:  # a failure stays in the memo; the items that need that team fail
            with contextlib.suppress(EnrichmentUnavailable):
                future.result()

    def incident_links(self) -> IncidentLinks:
        """Alert→incident links over every listed incident, built once (see links.py)."""

        def build() -> IncidentLinks:
            self.links.build(self._complete("incident", "__relatedIncident"))
            return self.links

        return self._once.get("incident_links", build)

    def prefetch_incident_links(self) -> None:
        """Build the links now (e.g. in a background thread); a failure stays memoised for the
        items that need them."""
        with contextlib.suppress(Exception):
            self.incident_links()

    def _associated_alerts(self, incident_id: str) -> list[str]:
        try:
            return self.source.incident_alert_ids(incident_id)
        except ApiError as exc:
            raise EnrichmentUnavailable(
                f"__relatedIncident: associated alerts of incident {incident_id}: {exc}"
            ) from exc


# -- applying keys to items ----------------------------------------------------------------
Enricher = Callable[[Lookups, dict[str, Any]], None]


def _team(lookups: Lookups, item: dict[str, Any]) -> None:
    team_id = item.get("teamId")
    if team_id:
        item["__team"] = lookups.team(team_id) or None


def _incidents(lookups: Lookups, item: dict[str, Any]) -> None:
    item["__incidents"] = lookups.incidents_of_service(item.get("id") or "")


def _oncalls(lookups: Lookups, item: dict[str, Any]) -> None:
    schedule = lookups.schedule_by_team().get(item.get("teamId") or "")
    if schedule:
        oncall = lookups.oncalls().get(schedule["id"])
        if oncall is not None:
            item["__oncalls"] = oncall


def _team_oncalls(lookups: Lookups, item: dict[str, Any]) -> None:
    """On a team: who is on call across ALL the schedules it owns (Port's default mapping writes
    this from `schedule-oncall`, where a team with two schedules collides on one entity)."""
    oncalls = lookups.oncalls()
    schedules = lookups.schedules_by_team().get(item.get("id") or "", [])
    recipients: list[str] = []
    for schedule in schedules:
        for name in (oncalls.get(schedule["id"]) or {}).get("onCallRecipients") or []:
            if name not in recipients:
                recipients.append(name)
    parents = [{k: schedule.get(k) for k in ("id", "name", "enabled")} for schedule in schedules]
    item["__oncalls"] = {"schedules": parents, "onCallRecipients": recipients}


def _impacted_services(lookups: Lookups, item: dict[str, Any]) -> None:
    """Always a list (Port's old integration left the key out when empty, which made the
    documented `[.__impactedServices[] | …]` mapping fail on such incidents)."""
    services = (lookups.service(service_id) for service_id in item.get("impactedServices") or [])
    item["__impactedServices"] = [service for service in services if service is not None]


def _related_incident(lookups: Lookups, item: dict[str, Any]) -> None:
    incident = lookups.incident_links().incident_for(item)
    if incident is not None:
        item["__relatedIncident"] = incident


def _members(lookups: Lookups, item: dict[str, Any]) -> None:
    item["__members"] = (lookups.team(item["id"]) or {}).get("members") or []


def _current_oncalls(lookups: Lookups, item: dict[str, Any]) -> None:
    oncall = lookups.oncalls().get(item.get("id"))
    item["__currentOncalls"] = oncall


ENRICHERS: dict[str, Enricher] = {
    "__team": _team,
    "__incidents": _incidents,
    "__oncalls": _oncalls,
    "__impactedServices": _impacted_services,
    "__relatedIncident": _related_incident,
    "__members": _members,
    "__currentOncalls": _current_oncalls,
}


# Where a key means something else on another kind.
ENRICHERS_BY_KIND: dict[tuple[str, str], Enricher] = {("team", "__oncalls"): _team_oncalls}


def keys_for(kind: str, referenced: Iterable[str], include_members: bool = False) -> tuple[str, ...]:
    """The enrichment keys to compute for a resource: those its mapping mentions, valid for its kind."""
    wanted = set(referenced) & KEYS_BY_KIND.get(kind, frozenset())
    if kind == "team" and include_members:
        wanted.add("__members")
    return tuple(sorted(wanted))


def enrich_page(
    lookups: Lookups, keys: tuple[str, ...], items: list[dict[str, Any]], kind: str = ""
) -> Iterator[tuple[dict[str, Any], str | None]]:
    """Each item with the keys added — as a shallow copy, since listings are shared and must stay
    raw — and None or why it cannot be enriched. One item at a time: a service's `__incidents`
    can be large, so a page of enriched items is never held at once."""
    if not keys:
        yield from ((item, None) for item in items)
        return
    if "__team" in keys:
        lookups.prefetch_teams(item.get("teamId") for item in items)
    if "__members" in keys:
        lookups.prefetch_teams(item.get("id") for item in items)
    for raw in items:
        item, problem = dict(raw), None
        for key in keys:
            try:
                ENRICHERS_BY_KIND.get((kind, key), ENRICHERS[key])(lookups, item)
            except EnrichmentUnavailable as exc:
                problem = str(exc)
                break
        yield item, problem
